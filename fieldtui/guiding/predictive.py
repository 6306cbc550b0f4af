"""Predictive guiding: learn the mount's own error and correct it ahead of time.

A reactive algorithm only corrects an error once the star has moved, so it
always lags behind the periodic error and pays the star's seeing jitter on
every correction.  The mount's uncorrected ("gear") error is, however,
mostly predictable: periodic error of the worm (a fundamental and a few
harmonics), a slow drift, and only then the unpredictable bits (gusts, a
cable snag).  It is observable too: the star's displacement plus all the
corrections sent so far,

    gear(t) = displacement(t) + sum of corrections before t (+ lock shifts)

so the algorithm fits a model to that history and, every cycle, sends the
change the model predicts for the next cycle (the feed-forward) plus a
gentle proportional correction of what is left (the feedback, with a
minimum move so seeing alone does not drive the mount).

The model is, in order of trust:

* a straight line through the last ``trend_s`` seconds (slope × cycle), from
  the first few frames;
* once at least ``period_cycles`` worm periods have been seen, a linear
  trend plus ``harmonics`` harmonics of a period found in the data itself
  (a scan of candidate periods for the least-squares fit); used only when
  it explains the gear error at least as well as the local line does.

Units are pixels along the axis and seconds; times come from the engine.

The periodic fit (:func:`fit_periodic`, a scan over candidate periods) is
the one costly step: tens of milliseconds with an hour of history, seconds
on a busy machine.  It is a pure function of the history, so a caller that
must not wait for it (the guide worker) sets ``GearModel.defer`` and runs
the :class:`RefitJob` from :meth:`GearModel.refit_job` in a worker thread;
until the new model is accepted the last finished one keeps predicting.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .algorithms import GuideAlgorithm, ResistSwitch


def _lstsq(a: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    r = y - a @ coef
    return coef, float(np.sqrt(np.mean(r * r))) if len(r) else 0.0


def _harmonic_design(t: np.ndarray, period: float, harmonics: int) -> np.ndarray:
    """Columns 1, t, then sin and cos of each harmonic, shape (n, 2 + 2 harmonics).

    Higher harmonics by the angle-addition recurrence (two trig calls in all)."""
    a = np.empty((len(t), 2 + 2 * harmonics))
    a[:, 0] = 1.0
    a[:, 1] = t
    x = (2.0 * math.pi / period) * t
    s1, c1 = np.sin(x), np.cos(x)
    sk, ck = s1, c1
    for k in range(harmonics):
        if k:
            sk, ck = sk * c1 + ck * s1, ck * c1 - sk * s1
        a[:, 2 + 2 * k] = sk
        a[:, 3 + 2 * k] = ck
    return a


@dataclass(frozen=True)
class PeriodicFit:
    """A finished periodic fit: the model :meth:`GearModel.value` evaluates.

    ``coef`` (intercept, slope, then sin/cos per harmonic; px, px/s) is in the
    history's time base (seconds since the model's ``t0``); ``ok`` says the
    model explains and predicts the gear error at least as well as a local
    line (otherwise the trend is used)."""

    period: float | None
    coef: np.ndarray | None
    ok: bool
    residual_periodic: float = math.nan
    residual_trend: float = math.nan


@dataclass(frozen=True)
class RefitJob:
    """A periodic refit to run anywhere (a worker thread): :meth:`run` is pure.

    ``t``, ``g``: copies of the history (s since the model's t0, px), shape (n,)."""

    model: "GearModel"
    generation: int
    t: np.ndarray
    g: np.ndarray
    params: dict[str, Any]

    def run(self) -> PeriodicFit:
        return fit_periodic(self.t, self.g, **self.params)


def fit_periodic(t: np.ndarray, g: np.ndarray, *, harmonics: int = 3, period_min_s: float = 60.0,
                 period_max_s: float = 1500.0, period_cycles: float = 1.1,
                 fixed_period: float | None = None, prior_period: float | None = None) -> PeriodicFit:
    """Fit a linear trend plus ``harmonics`` harmonics of the worm period to
    the gear error ``g`` (px) at times ``t`` (s, increasing), shape (n,).

    The period is ``fixed_period`` or found in the data (a least-squares scan
    over candidate periods between ``period_min_s`` and the span divided by
    ``period_cycles``).  ``prior_period`` (the period fitted last time) is
    kept unless another one fits clearly better, so a long night never
    swaps the worm period for one of its multiples.  Pure: arrays in, a
    :class:`PeriodicFit` out."""
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    lo = period_min_s
    hi = min(period_max_s, span / period_cycles)
    if fixed_period is None and hi < lo * 1.05:
        return PeriodicFit(None, None, False)
    if fixed_period is not None:
        if span < period_cycles * fixed_period:
            return PeriodicFit(fixed_period, None, False)
        period = fixed_period
    else:
        period = _find_period(t, g, lo, hi, harmonics, span, prior_period)
    coef, res = _lstsq(_harmonic_design(t, period, harmonics), g)
    # Compare with what the local line leaves (seeing, gusts): the
    # harmonic model must explain the gear error about as well, and it
    # must also predict: fitted without the newest fifth of the data, it
    # has to follow that fifth too (a short stretch of smooth error is
    # fitted by almost any period; only a real one extrapolates).
    res_trend = _local_residual(t, g)
    cut = t[-1] - max(60.0, 0.2 * span)
    old = t < cut
    ok = res <= 1.5 * res_trend + 1e-9 and old.sum() > 20 and (~old).sum() > 10
    if ok:
        c_old, _ = _lstsq(_harmonic_design(t[old], period, harmonics), g[old])
        r_new = g[~old] - _harmonic_design(t[~old], period, harmonics) @ c_old
        # Its prediction must stay within 1.5x the scatter about local lines
        # (2x let a wrong 314-s period through on a 480-s worm seen for
        # 6 minutes in 4-s frames).
        ok = float(np.sqrt(np.mean(r_new * r_new))) <= 1.5 * res_trend
    return PeriodicFit(period, coef, bool(ok), res, res_trend)


def _residuals(t: np.ndarray, g: np.ndarray, periods: np.ndarray, harmonics: int) -> np.ndarray:
    """RMS residual of the harmonic fit for each candidate period, shape (len(periods),).

    Normal equations on times centred and scaled to ±1 (well conditioned for
    the 8 columns): ~20x faster than an SVD per period, and no BLAS threads."""
    tc = (t - t.mean()) / max(float(np.ptp(t)) / 2.0, 1e-9)
    gg = float(g @ g)
    n = len(t)
    out = np.empty(len(periods))
    for i, p in enumerate(periods):
        a = _harmonic_design(t, float(p), harmonics)
        a[:, 1] = tc
        ata = a.T @ a
        aty = a.T @ g
        try:
            coef = np.linalg.solve(ata, aty)
        except np.linalg.LinAlgError:
            out[i] = math.inf
            continue
        out[i] = math.sqrt(max(gg - float(coef @ aty), 0.0) / n)
    return out


def _find_period(t: np.ndarray, g: np.ndarray, lo: float, hi: float, harmonics: int,
                 span: float, prior: float | None = None) -> float:
    """The worm period: a scan on a grid even in frequency, fine enough that
    a candidate is never more than an eighth of a cycle out of phase over
    the span (a coarser grid steps over the narrow dip of the true period
    in an hour of data and lands on a multiple), then a refinement."""
    # Decimate to ~1 sample per 4 s for the scan (5 a cycle of the 3rd
    # harmonic of the shortest period).
    step = max(1, int(len(t) // max(1.0, span / 4.0)))
    ts, gs = t[::step], g[::step]
    df = 1.0 / (8.0 * max(span, 1.0))
    freqs = np.arange(1.0 / hi, 1.0 / lo + df, df)
    grid = np.sort(1.0 / freqs)
    res = _residuals(ts, gs, grid, harmonics)
    # A multiple of the worm period fits as well (its harmonics include
    # the worm's): take the shortest period that fits about as well as
    # the best one, then the best candidate next to it.
    good = np.nonzero(res <= 1.02 * res.min() + 1e-12)[0]
    i = int(good[0])
    while i + 1 < len(grid) and res[i + 1] < res[i]:
        i += 1
    best, best_res = _refine(t, g, grid, i, harmonics)
    if prior is not None and lo <= prior <= hi:
        j = int(np.argmin(np.abs(grid - prior)))
        p2, r2 = _refine(t, g, grid, j, harmonics)
        # Keep the period already in use unless the new one is clearly better.
        if r2 <= 1.05 * best_res:
            return p2
    return best


def _refine(t: np.ndarray, g: np.ndarray, grid: np.ndarray, i: int, harmonics: int) -> tuple[float, float]:
    a = float(grid[max(i - 1, 0)])
    b = float(grid[min(i + 1, len(grid) - 1)])
    fine = np.linspace(a, b, 21)
    fres = _residuals(t, g, fine, harmonics)
    k = int(np.argmin(fres))
    return float(fine[k]), float(fres[k])


def _local_residual(t: np.ndarray, g: np.ndarray, window: float = 20.0) -> float:
    """RMS scatter about straight lines through consecutive windows."""
    if len(t) < 8:
        return math.inf
    edges = np.arange(t[0], t[-1] + window, window)
    idx = np.searchsorted(t, edges)
    sq, n = 0.0, 0
    for a, b in zip(idx[:-1], idx[1:]):
        if b - a < 5:
            continue
        tt = t[a:b] - t[a]
        _, r = _lstsq(np.column_stack([np.ones_like(tt), tt]), g[a:b])
        # Unbias for the two fitted parameters.
        sq += r * r * (b - a) * (b - a) / max(b - a - 2, 1)
        n += b - a
    return math.sqrt(sq / n) if n else math.inf


class GearModel:
    """The gear-error history of one axis and the models fitted to it.

    The history keeps ``history_s`` seconds and at most ``max_samples``
    samples (the oldest go first), so it is bounded however long the night
    and however short the exposures.  With ``defer`` set, a due refit is not
    run inside :meth:`add`: :meth:`refit_job` hands it out and
    :meth:`accept` installs its result (the last model predicts until then)."""

    def __init__(self, *, trend_s: float = 20.0, harmonics: int = 3, period_min_s: float = 60.0,
                 period_max_s: float = 1500.0, period_cycles: float = 1.1, refit_s: float = 30.0,
                 history_s: float = 3600.0, period_s: float | None = None,
                 max_samples: int = 7200) -> None:
        self.trend_s = trend_s
        self.harmonics = harmonics
        self.period_min_s = period_min_s
        self.period_max_s = period_max_s
        self.period_cycles = period_cycles
        self.refit_s = refit_s
        self.history_s = history_s
        self.fixed_period = period_s
        self.max_samples = max_samples
        self.t: deque[float] = deque(maxlen=max_samples)
        self.g: deque[float] = deque(maxlen=max_samples)
        self.t0: float | None = None
        self.period: float | None = period_s
        self.coef: np.ndarray | None = None  # harmonic model, or None
        self.periodic_ok = False
        self._fit_at = -math.inf
        self.residual_periodic = math.nan
        self.residual_trend = math.nan
        self.defer = False
        self._due = False
        self._in_flight = False
        self._generation = 0

    def clear(self) -> None:
        self.t.clear()
        self.g.clear()
        self.t0 = None
        self.period = self.fixed_period
        self.coef = None
        self.periodic_ok = False
        self._fit_at = -math.inf
        self._due = False
        self._in_flight = False
        self._generation += 1  # a refit running on the old history is dropped

    def add(self, t: float, g: float) -> None:
        if self.t0 is None:
            self.t0 = t
        self.t.append(t - self.t0)
        self.g.append(g)
        while self.t and self.t[-1] - self.t[0] > self.history_s:
            self.t.popleft()
            self.g.popleft()
        # Until a periodic model holds, refit three times as often: the
        # first worm cycle is where a lagging model costs most.
        every = self.refit_s if self.periodic_ok or self.span > 1200.0 else self.refit_s / 3.0
        if self.t[-1] - self._fit_at >= every:
            self._fit_at = self.t[-1]
            if self.defer:
                self._due = True
            else:
                self._fit_periodic()

    def _params(self) -> dict[str, Any]:
        return {"harmonics": self.harmonics, "period_min_s": self.period_min_s,
                "period_max_s": self.period_max_s, "period_cycles": self.period_cycles,
                "fixed_period": self.fixed_period,
                "prior_period": self.period if self.periodic_ok and self.fixed_period is None else None}

    def refit_job(self) -> RefitJob | None:
        """The due refit (deferred mode), or None (not due, or one still running)."""
        if not self._due or self._in_flight or len(self.t) < 2:
            return None
        self._due = False
        self._in_flight = True
        return RefitJob(self, self._generation, np.asarray(self.t, dtype=float),
                        np.asarray(self.g, dtype=float), self._params())

    def accept(self, job: RefitJob, fit: PeriodicFit | None) -> bool:
        """Install a finished refit (None: it failed; the last model stays).
        False when the history was cleared since the job was made."""
        if job.generation != self._generation:
            return False
        self._in_flight = False
        if fit is not None:
            self._apply(fit)
        return fit is not None

    def _apply(self, fit: PeriodicFit) -> None:
        if fit.coef is None:
            self.periodic_ok = False
            return
        self.period = fit.period
        self.coef = fit.coef
        self.residual_periodic = fit.residual_periodic
        self.residual_trend = fit.residual_trend
        self.periodic_ok = fit.ok

    @property
    def span(self) -> float:
        return self.t[-1] - self.t[0] if len(self.t) > 1 else 0.0

    # ------------------------------------------------------------ the models
    def trend(self, dt: float = 0.0) -> tuple[float, float] | None:
        """(slope px/s, value at the newest time) of the local model: a line
        through the last ``trend_s`` seconds (at least 6 cycles of ``dt``),
        or a parabola when the curvature is significant (3 sigma).

        Steep periodic error bends within a window: a line's slope is that
        of the window's middle, half a window late (0.07 px per 1.1-s cycle
        on ±45″ over 240 s at 4.3″/px), a parabola's slope is that of its
        end (0.024 px); on a straight drift the line's smaller noise wins."""
        if len(self.t) < 4:
            return None
        window = max(self.trend_s, 6.0 * dt)
        tn = self.t[-1]
        ts, gs = [], []
        for tt, gg in zip(reversed(self.t), reversed(self.g)):
            if tn - tt > window:
                break
            ts.append(tt)
            gs.append(gg)
        if len(ts) < 4:
            return None
        t = np.asarray(ts) - tn
        g = np.asarray(gs)
        if len(ts) >= 8:
            a = np.column_stack([np.ones_like(t), t, t * t])
            coef, res = _lstsq(a, g)
            n = len(ts)
            sigma = res * math.sqrt(n / (n - 3))
            try:
                cov = np.linalg.inv(a.T @ a) * sigma * sigma
            except np.linalg.LinAlgError:
                cov = None
            if cov is not None and abs(coef[2]) > 3.0 * math.sqrt(max(cov[2, 2], 0.0)):
                return float(coef[1]), float(coef[0])
        coef, _ = _lstsq(np.column_stack([np.ones_like(t), t]), g)
        return float(coef[1]), float(coef[0])

    def _fit_periodic(self) -> None:
        if len(self.t) < 2:
            self.periodic_ok = False
            return
        self._apply(fit_periodic(np.asarray(self.t), np.asarray(self.g), **self._params()))

    def value(self, t_abs: float) -> float | None:
        if not self.periodic_ok or self.coef is None or self.t0 is None or self.period is None:
            return None
        tt = np.asarray([t_abs - self.t0])
        return float((_harmonic_design(tt, self.period, self.harmonics) @ self.coef)[0])

    def increment(self, t_abs: float, dt: float) -> tuple[float, str]:
        """Predicted gear-error change from t_abs to t_abs + dt, and which model said so."""
        if self.periodic_ok:
            a = self.value(t_abs)
            b = self.value(t_abs + dt)
            if a is not None and b is not None:
                return b - a, "periodic"
        tr = self.trend(dt)
        if tr is None:
            return 0.0, "none"
        return tr[0] * dt, "trend"


class Predictive(GuideAlgorithm):
    """RA: feed-forward of the learned gear error plus proportional feedback,
    proving itself all night against the classic hysteresis guider.

    ``aggression`` is the feedback gain on the displacement (errors under
    ``min_move`` get no feedback), ``prediction_gain`` the fraction of the
    predicted change sent ahead of time.

    Never worse than the classic: the gear error ``g`` (displacement plus
    corrections sent plus lock shifts) does not depend on the corrections
    on the RA axis, so what the other guider would have done is known
    exactly by replaying it on ``g`` (its own sum of corrections ``S``, its
    displacement ``g - S - lock``, the same seeing in every frame).  The
    guider in charge is whichever kept the smaller mean square displacement
    over about the last ``compare_cycles`` cycles (15 % hysteresis so it
    does not flap); :attr:`live` says which, :attr:`switches` counts the
    changes.  Gusts, a mount with no periodic error and no drift, or a model
    that stopped predicting hand the axis to hysteresis; the model keeps
    learning meanwhile and takes it back once it would have done better.
    """

    name = "Predictive"
    uses_time = True

    def __init__(self, aggression: float = 0.2, min_move: float = 0.0, prediction_gain: float = 1.0,
                 trend_s: float = 20.0, harmonics: int = 3, period_s: float | None = None,
                 max_prediction_px: float = 1.0, classic_hysteresis: float = 0.1,
                 classic_aggression: float = 0.7, classic_min_move: float = 0.2,
                 compare_cycles: float = 150.0, gain_cycle_s: float = 1.5) -> None:
        from .algorithms import Hysteresis
        self.aggression = aggression
        self.gain_cycle_s = gain_cycle_s
        self.min_move = min_move
        self.prediction_gain = prediction_gain
        self.max_prediction_px = max_prediction_px
        self.model = GearModel(trend_s=trend_s, harmonics=harmonics, period_s=period_s)
        self._classic = lambda: Hysteresis(classic_hysteresis, classic_aggression, classic_min_move)
        self.compare_cycles = compare_cycles
        self.switches = 0
        self.reset()

    def reset(self) -> None:
        self.model.clear()
        self._sum = 0.0  # corrections sent, px
        self._lock = 0.0  # lock-position shifts along this axis, px
        self._last_t: float | None = None
        self._dts: deque[float] = deque(maxlen=15)
        self.last_prediction = 0.0
        self.last_source = "none"
        self.live = "predictive"
        self._hyst = self._classic()  # the classic guider, live or replayed
        self._shadow_sum = 0.0  # the replayed guider's corrections, px
        self._ms = {"predictive": 0.0, "hysteresis": 0.0}  # mean square displacement, px²
        self._n = 0

    def _cycle(self, t: float) -> float:
        if self._last_t is not None and t > self._last_t:
            self._dts.append(t - self._last_t)
        self._last_t = t
        return float(np.median(self._dts)) if self._dts else 0.0

    def _gain(self, dt: float) -> float:
        """Feedback gain for a cycle of ``dt`` seconds.

        ``aggression`` is the fraction of the error corrected per cycle of
        up to ``gain_cycle_s``; a longer cycle (long guide exposures) gets
        the gain that removes the same fraction per second,
        1 - (1 - aggression)^(dt / gain_cycle_s), so the error left by a
        lagging model is not carried for 5 cycles of 4 s (its seeing jitter
        per frame is smaller too).  Default rig, 4-s exposures, 30 min:
        ratio 1.89 -> 1.39 (seeds 1, 2: 1.69 -> 1.35, 1.61 -> 1.57)."""
        if dt <= self.gain_cycle_s:
            return self.aggression
        return 1.0 - (1.0 - self.aggression) ** (dt / self.gain_cycle_s)

    def _predictive_out(self, distance: float, pred: float, dt: float = 0.0) -> float:
        fb = distance * self._gain(dt) if abs(distance) >= self.min_move else 0.0
        return fb + self.prediction_gain * pred

    def result(self, distance: float, t: float | None = None) -> float:
        if t is None:
            # No clock: nothing to learn from; behave as a proportional guider.
            return distance * self.aggression if abs(distance) >= self.min_move else 0.0
        dt = self._cycle(t)
        gear = distance + self._sum + self._lock
        self.model.add(t, gear)
        pred = 0.0
        if dt > 0:
            pred, self.last_source = self.model.increment(t, dt)
            pred = max(-self.max_prediction_px, min(self.max_prediction_px, pred))
        self.last_prediction = pred
        # The guider not in charge, replayed on the same gear error.
        other = "hysteresis" if self.live == "predictive" else "predictive"
        d_other = gear - self._shadow_sum - self._lock
        if other == "hysteresis":
            self._shadow_sum += self._hyst.result(d_other)
            out = self._predictive_out(distance, pred, dt)
        else:
            self._shadow_sum += self._predictive_out(d_other, pred, dt)
            out = self._hyst.result(distance)
        a = 1.0 / self.compare_cycles
        self._ms[self.live] += a * (distance * distance - self._ms[self.live])
        self._ms[other] += a * (d_other * d_other - self._ms[other])
        self._n += 1
        if self._n >= self.compare_cycles and self._ms[other] * 1.15 < self._ms[self.live]:
            # Hand over: the replayed guider takes the real sum, the other is replayed from it.
            self.live, self.switches = other, self.switches + 1
            self._shadow_sum = self._sum + out
            if other == "hysteresis":
                self._hyst._last = out  # the classic carries on from what was sent
        self._sum += out
        return out

    def applied(self, requested: float, actual: float) -> None:
        """The engine sent ``actual`` instead of ``requested`` (rounding, pulse limits)."""
        self._sum += actual - requested

    def feed_forward(self) -> float:
        return self.prediction_gain * self.last_prediction

    def lock_moved(self, delta: float) -> None:
        self._lock += delta

    def summary(self) -> str:
        per = f"{self.model.period:.0f} s" if self.model.period else "learning"
        return (f"Aggression = {self.aggression:.3f}, Prediction gain = {self.prediction_gain:.3f}, "
                f"Minimum move = {self.min_move:.3f}, Period = {per}")


class DecPlay:
    """Where a Dec gear sits in its play, for the replay of a Dec guider (px).

    ``gap_px``: play no compensation takes up (0: none, every correction
    moves the axis by what was asked).  A correction toward one side first
    takes up what is left of the play on that side, and only the rest moves
    the axis, as the simulator's and a real mount's Dec gear do.  Where the
    gear sits is unknown until the first correction, which is taken to meet
    no play (it leaves the gear resting on its side, as the backlash
    compensator assumes)."""

    def __init__(self, gap_px: float = 0.0) -> None:
        self.gap_px = max(float(gap_px), 0.0)
        self.pos = 0.0  # 0: against the side negative corrections push on, gap_px: the other
        self.known = False

    def copy(self) -> "DecPlay":
        c = DecPlay(self.gap_px)
        c.pos, c.known = self.pos, self.known
        return c

    def moved(self, out: float) -> float:
        """How far a correction of ``out`` px moves the axis (same sign, never longer)."""
        if out == 0.0 or self.gap_px <= 0.0:
            return out
        d = 1.0 if out > 0 else -1.0
        if not self.known:
            self.known = True
            self.pos = self.gap_px if d > 0 else 0.0
            return out
        play = self.gap_px - self.pos if d > 0 else self.pos
        take = min(abs(out), play)
        self.pos = min(max(self.pos + d * take, 0.0), self.gap_px)
        return out - d * take


class PredictiveDec(GuideAlgorithm):
    """Dec: a feed-forward of the steady drift, and gentle one-sided feedback,
    proving itself all night against the classic resist-switch guider.

    Polar misalignment drifts Dec at a steady rate.  A resist-switch guider
    lets the star walk a minimum move before it pushes it back, and each
    push carries that frame's seeing jitter, so the star rocks in a
    sawtooth.  This one measures the drift rate from the gear error
    (displacement + corrections sent + lock shifts) over the last
    ``drift_s`` seconds, sends ``drift_gain`` of it every cycle, and
    corrects what is left with a small gain, ``aggression``, only toward the
    drift (the side resist switch would pick): the Dec motor never reverses,
    so backlash never enters.  Backlash still shows up after a reversal (a
    dither, a big bump): the rate is fitted with one common slope and a
    separate offset for each stretch between reversals, so lost motion
    does not bias it.  A large confirmed deflection (two frames beyond three
    minimum moves) is corrected at once, whichever side.  While no drift is
    clear (a well polar-aligned mount, near the pole), chasing each frame's
    seeing would only shake the star and reverse the motor through its
    backlash: the mean of the last :attr:`AVERAGE_FRAMES` frames is corrected
    once it stands out from their scatter (:meth:`_averaged`).

    Never worse than the classic: what resist switch (``classic_min_move``,
    ``classic_aggression``, fast switch) would have done is replayed on the
    same gear error, as :class:`Predictive` replays hysteresis on RA, with
    two things RA does not have.  The Dec gear has play: a replayed reversal
    moves the star only once the play is taken up (:class:`DecPlay` with
    :attr:`play_px`, the measured backlash that no compensation adds back;
    the live guider's own lost motion is taken out of the gear error the
    same way), and the one-direction ``dec_mode`` blocks the replay's
    pulses as it blocks the live ones (:attr:`directions`).  And while
    :meth:`hold_comparison` is on (settling after a dither, recovering from
    a lost star) nothing is scored: those frames say nothing about either
    guider, so the replay follows the live guider and starts again from
    where it is.  The guider in charge is whichever kept the smaller mean
    square displacement over about the last ``compare_cycles`` scored
    cycles (15 % hysteresis, for :attr:`PERSIST` cycles in a row), or half of
    it over the last :attr:`FAST_CYCLES`; :attr:`live` says which,
    :attr:`switches` counts the changes.  The drift model keeps learning
    either way.
    """

    name = "Predictive Dec"
    uses_time = True
    AVERAGE_FRAMES = 8  # frames averaged while no drift is clear
    MARGIN = 1.15  # the replayed guider must keep the star this much closer (mean square)
    # ... or, over the last FAST_CYCLES scored cycles already, FAST_MARGIN times closer.
    FAST_CYCLES = 150.0
    FAST_MARGIN = 3.0
    # The slow score must say so this many scored cycles in a row: a gust's few
    # frames tip a 600-cycle mean over the margin for a moment, and the classic then
    # guides the calm that follows worse (20 gusts/h of 10": 1.57 -> 1.61 without).
    PERSIST = 300

    def __init__(self, min_move: float = 0.2, aggression: float = 0.2, drift_s: float = 120.0,
                 drift_gain: float = 0.3, min_drift_s: float = 30.0, fast_switch: bool = True,
                 classic_min_move: float | None = None, classic_aggression: float = 1.0,
                 compare_cycles: float = 600.0) -> None:
        self.min_move = min_move
        self.aggression = aggression
        self.drift_s = drift_s
        self.drift_gain = drift_gain
        self.min_drift_s = min_drift_s
        self.compare_cycles = compare_cycles
        cm = min_move if classic_min_move is None else classic_min_move
        self.classic = ResistSwitch(min_move=cm, aggression=classic_aggression, fast_switch=fast_switch)
        self.fallback = self.classic  # the name older code used
        self.play_px = 0.0  # uncompensated Dec play (px), set by the engine from the calibration
        self._live_play = DecPlay()
        self.directions = 0  # 0: both, +1 / -1: only that sign (dec_mode), None: none ("off")
        self.switches = 0
        self.reset()

    def reset(self) -> None:
        self.classic.reset()
        self.samples: deque[tuple[float, float, int]] = deque()  # t, gear, stretch
        self._sum = 0.0
        self._lock = 0.0
        self._stretch = 0
        self._last_dir = 0
        self._last_t: float | None = None
        self._dts: deque[float] = deque(maxlen=15)
        self._prev = 0.0
        self._recent: deque[float] = deque(maxlen=self.AVERAGE_FRAMES)
        self.drift_rate = 0.0  # px/s
        self.drift_sigma = math.inf
        self.side = 0
        self.last_prediction = 0.0
        # The replay: the live guider's modelled lost motion and play, the other's
        # sum of motion and play, the mean square displacements and their count.
        self.live = "predictive"
        # Where the live gear sits in its play is the mount's, kept over a reset.
        self._live_play_before = self._live_play.copy()
        self._lost_live = 0.0
        self._shadow_moved = 0.0
        self._shadow_play = self._live_play.copy()
        self._ms = {"predictive": 0.0, "resist switch": 0.0}
        self._ms_fast = {"predictive": 0.0, "resist switch": 0.0}
        self._n = 0
        self._better_for = 0  # scored cycles in a row the slow score favoured the other guider
        self._held = False
        self.last_other = 0.0  # the replayed guider's displacement on the last frame (px)

    def set_play(self, play_px: float, resting: int | None = None) -> None:
        """The Dec play (px) that no backlash compensation adds back; the replay's
        reversals, and the live guider's, lose this much motion.  ``resting``: the
        sign of the corrections that last moved the gear (+1: positive ones, the
        calibration's south leg), None: unknown."""
        self.play_px = max(float(play_px), 0.0)
        self._live_play = DecPlay(self.play_px)
        if resting:
            self._live_play.known = True
            self._live_play.pos = self.play_px if resting > 0 else 0.0
        self._live_play_before = self._live_play.copy()
        self._shadow_play = self._live_play.copy()

    def hold_comparison(self, on: bool) -> None:
        """While on, frames are not scored and the replay follows the live guider
        (dithers, settling, star-loss recovery)."""
        self._held = bool(on)

    def _fit_rate(self) -> tuple[float, float]:
        """Common slope over the stretches (px/s) and its standard error."""
        if len(self.samples) < 10:
            return 0.0, math.inf
        arr = np.asarray(self.samples)
        t, g, k = arr[:, 0], arr[:, 1], arr[:, 2].astype(int)
        sxx = sxy = 0.0
        n_used = 0
        for seg in np.unique(k):
            m = k == seg
            if m.sum() < 3:
                continue
            tt = t[m] - t[m].mean()
            gg = g[m] - g[m].mean()
            sxx += float(tt @ tt)
            sxy += float(tt @ gg)
            n_used += int(m.sum())
        if sxx <= 0 or n_used < 10:
            return 0.0, math.inf
        slope = sxy / sxx
        res = []
        for seg in np.unique(k):
            m = k == seg
            if m.sum() < 3:
                continue
            tt = t[m] - t[m].mean()
            res.append(g[m] - g[m].mean() - slope * tt)
        r = np.concatenate(res)
        sigma = float(np.sqrt(r @ r / max(len(r) - 2, 1)) / math.sqrt(sxx))
        return slope, sigma

    def _allowed(self, out: float) -> float:
        """``out`` as the Dec mode lets it through (what the engine does to a pulse)."""
        if self.directions is None:
            return 0.0
        if self.directions and out * self.directions < 0:
            return 0.0
        return out

    def _predictive(self, distance: float, clear: bool) -> tuple[float, float]:
        """The predictive guider's correction for ``distance`` and its feed-forward part."""
        prev, self._prev = self._prev, distance
        big = 3.0 * self.min_move
        self._recent.append(distance)
        if abs(distance) > big and abs(prev) > big and (distance > 0) == (prev > 0):
            self._recent.clear()  # a confirmed large deflection: correct it whichever side
            return distance, 0.0
        if not clear:
            return self._averaged(), 0.0
        self.side = 1 if self.drift_rate > 0 else -1
        ff = self.drift_gain * self.drift_rate * float(np.median(self._dts))
        fb = self.aggression * distance
        if (fb > 0) - (fb < 0) != self.side:
            fb = 0.0
        return ff + fb, ff

    def result(self, distance: float, t: float | None = None) -> float:  # type: ignore[override]
        distance = float(distance)
        if t is None:
            out = self.classic.result(distance)  # no clock: nothing to learn, resist switch
            self._note(out)
            return out
        if self._last_t is not None and t > self._last_t:
            self._dts.append(t - self._last_t)
        self._last_t = t
        g = distance + self._sum + self._lock
        self.samples.append((t, g - self._lost_live, self._stretch))
        while self.samples and t - self.samples[0][0] > self.drift_s:
            self.samples.popleft()
        span = t - self.samples[0][0]
        self.drift_rate, self.drift_sigma = self._fit_rate()
        clear = bool(span >= self.min_drift_s and abs(self.drift_rate) > 3.0 * self.drift_sigma
                     and self._dts)
        # The other guider's displacement: the gear error without the live guider's
        # lost motion, less what the other's corrections would have moved the axis.
        other = "resist switch" if self.live == "predictive" else "predictive"
        if self._held:
            d_other = distance
        else:
            d_other = g - self._lost_live - self._shadow_moved - self._lock
        self.last_other = d_other
        d_p, d_c = (distance, d_other) if self.live == "predictive" else (d_other, distance)
        p_out, ff = self._predictive(d_p, clear)
        c_out = self.classic.result(d_c)
        out, other_out = (p_out, c_out) if self.live == "predictive" else (c_out, p_out)
        self.last_prediction = ff if self.live == "predictive" else 0.0
        if not self._held:
            for ms, cycles in ((self._ms, self.compare_cycles), (self._ms_fast, self.FAST_CYCLES)):
                a = 1.0 / cycles
                ms[self.live] += a * (distance * distance - ms[self.live])
                ms[other] += a * (d_other * d_other - ms[other])
            self._n += 1
        # The live guider's correction through its play (corrected in applied()).
        self._live_play_before = self._live_play.copy()
        self._lost_live += out - self._live_play.moved(out)
        if self._held:
            # The replay stands where the live guider stands.
            self._shadow_moved = self._sum + out - self._lost_live
            self._shadow_play = self._live_play.copy()
        else:
            self._shadow_moved += self._shadow_play.moved(self._allowed(other_out))
        if not self._held:
            slow = self._n >= self.compare_cycles and self._ms[other] * self.MARGIN < self._ms[self.live]
            self._better_for = self._better_for + 1 if slow else 0
        better = (self._better_for >= self.PERSIST
                  or (self._n >= self.FAST_CYCLES
                      and self._ms_fast[other] * self.FAST_MARGIN < self._ms_fast[self.live]))
        if not self._held and better:
            # Hand over: the new guider takes the axis as it is, the old one is
            # replayed from there.
            self.live, self.switches = other, self.switches + 1
            self._better_for = 0
            self._shadow_moved = self._sum + out - self._lost_live
            self._shadow_play = self._live_play.copy()
            if self.live == "predictive":
                self._recent.clear()
            self.last_prediction = 0.0
        self._note(out)
        return out

    def _averaged(self) -> float:
        """No clear drift: correct the mean of the last frames once it stands out
        from their scatter (3 standard errors, and at least half the minimum
        move), both ways.  Seeing alone then rarely moves the Dec motor, so it
        rarely reverses through the backlash, and a real offset (after a gust or
        a dither) still goes away within a few frames."""
        n = len(self._recent)
        if n < self.AVERAGE_FRAMES:
            return 0.0
        arr = np.asarray(self._recent)
        mean = float(arr.mean())
        sem = float(arr.std(ddof=1)) / math.sqrt(n)
        if abs(mean) <= max(3.0 * sem, 0.5 * self.min_move):
            return 0.0
        self._recent.clear()
        self.side = 1 if mean > 0 else -1
        return mean

    def _note(self, out: float) -> None:
        self._sum += out
        d = (out > 0) - (out < 0)
        if d and d != self._last_dir:
            if self._last_dir:
                self._stretch += 1  # reversal: backlash makes a new offset
            self._last_dir = d

    def applied(self, requested: float, actual: float) -> None:
        self._sum += actual - requested
        if actual != requested:
            # Redo the live correction's way through the play with what was sent.
            self._lost_live -= requested - (self._live_play_before.copy().moved(requested))
            self._live_play = self._live_play_before.copy()
            self._lost_live += actual - self._live_play.moved(actual)
            if self._held:
                self._shadow_moved = self._sum - self._lost_live
                self._shadow_play = self._live_play.copy()

    def feed_forward(self) -> float:
        return self.last_prediction

    def lock_moved(self, delta: float) -> None:
        self._lock += delta

    def summary(self) -> str:
        return (f"Minimum move = {self.min_move:.3f} Aggression = {self.aggression * 100:.0f}% "
                f"Drift feed-forward {self.drift_gain * 100:.0f}% over {self.drift_s:.0f} s, "
                f"proving itself against Resist Switch (Minimum move = {self.classic.min_move:.3f})")
