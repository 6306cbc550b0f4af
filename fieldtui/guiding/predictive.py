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
        self._reset_record()

    # How the two models' predictions fared, sample by sample (see _score).
    RECORD_S = 60.0  # the track record's memory, seconds
    RECORD_MIN = 10  # scored predictions before the periodic model's record counts
    RECORD_VETO = 1.6  # the periodic model is vetoed when its record is this much worse
    RECORD_ADOPT = 1.0  # ... and, not speaking, takes over only once its record is this good
    LONG_ADOPT_CYCLES = 1.5  # ... and on long cycles once this many of its periods were seen
    LOCAL_SWITCH = 1.2  # long cycles: the shorter local window takes over when this much better

    def _reset_record(self) -> None:
        self._last: tuple[float, float] | None = None  # newest (t, g) when the models predicted
        self._cands: dict[str, Any] = {}
        self.record: dict[str, float] = {}  # EWMA of each model's squared prediction error, px²
        self.record_n = 0
        self.periodic_live = False  # the periodic model spoke at the last prediction
        self._long_cycle = False
        # The same for the two local models of long cycles ("short": the 1-s rule,
        # "long": the 40-s parabola), and how many predictions they have.
        self.local_record: dict[str, float] = {}
        self.local_n = 0

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
        self._reset_record()

    def add(self, t: float, g: float) -> None:
        if self.t0 is None:
            self.t0 = t
        self._score(t - self.t0, g)
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
    # Long cycles (long guide exposures): the local model is a parabola through the last
    # LONG_TREND_S seconds (at least LONG_TREND_CYCLES cycles), whatever its curvature's
    # significance.  See :meth:`trend`.
    LONG_CYCLE_S = 2.5
    LONG_TREND_S = 40.0
    LONG_TREND_CYCLES = 8
    # Under this many points the 40-s window's parabola is used only where its curvature
    # is significant (3 sigma), as on short cycles: its slope at the newest point from the
    # first 5 frames of a run (16 s of 4-s frames) swung the star 0.8″ past.
    LONG_PARABOLA_MIN = 8

    def trend(self, dt: float = 0.0, long: bool | None = None) -> tuple[float, float] | None:
        """(slope px/s, value at the newest time) of the local model: a line
        through the last ``trend_s`` seconds (at least 6 cycles of ``dt``),
        or a parabola when the curvature is significant (3 sigma).

        Steep periodic error bends within a window: a line's slope is that
        of the window's middle, half a window late (0.07 px per 1.1-s cycle
        on ±45″ over 240 s at 4.3″/px), a parabola's slope is that of its
        end (0.024 px); on a straight drift the line's smaller noise wins.

        Cycles over :attr:`LONG_CYCLE_S` (long exposures) fit a parabola
        through the last :attr:`LONG_TREND_S` seconds instead: a 24-s window
        holds only 6 frames of 4 s, too few for the curvature ever to be
        significant, and the line's lag is then most of the error (predicted
        change per cycle on the default rig's worm, 4.1-s frames with their
        0.25″ of jitter, seeds 0-3 and 7: RMS error 0.136″ for the 24-s line,
        0.116″ for a 40-s parabola, 0.204″ for a 40-s line).  A steep worm's
        harmonics bend within 40 s, though (±45″ over 240 s: 0.99″ for the
        40-s parabola, 0.46″ over 24 s, 1.42″ for the 24-s line), so with
        ``long=False`` a long cycle's parabola spans the 1-s rule's window
        instead; :meth:`increment` picks between the two by their records."""
        if len(self.t) < 4:
            return None
        long_cycle = dt > self.LONG_CYCLE_S
        # Long cycles: a parabola always, over 40 s, or (long=False) over the 1-s rule's
        # window.
        parabola = long_cycle
        window = (max(self.LONG_TREND_S, self.LONG_TREND_CYCLES * dt) if long_cycle and long is not False
                  else max(self.trend_s, 6.0 * dt))
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
        if len(ts) >= (5 if parabola else 8):
            a = np.column_stack([np.ones_like(t), t, t * t])
            coef, res = _lstsq(a, g)
            if parabola and (long is False or len(ts) >= self.LONG_PARABOLA_MIN):
                return float(coef[1]), float(coef[0])
            # (A long window with fewer points: the parabola only where it bends.)
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

    def _score(self, t: float, g: float) -> None:
        """Score the predictions the local and the periodic model made at the last
        sample against the change seen now (``t`` s since t0, gear ``g`` px).

        Both predicted the same change, so the measurement noise is common to
        their errors and the comparison of their mean squares is paired."""
        last, cands = self._last, self._cands
        self._last, self._cands = None, {}
        if last is None or not cands:
            return
        t_prev, g_prev = last
        h = t - t_prev
        if h <= 0:
            return
        seen = g - g_prev
        a = min(0.2, max(h / self.RECORD_S, 1.0 / 200.0))
        if "short" in cands and "long" in cands:
            for name in ("short", "long"):
                e2 = (cands[name] * h - seen) ** 2
                old = self.local_record.get(name, e2)
                self.local_record[name] = old + a * (e2 - old)
            self.local_n += 1
        if "periodic" not in cands:
            return
        period, coef = cands["periodic"]
        v = _harmonic_design(np.asarray([t_prev, t]), period, self.harmonics) @ coef
        for name, pred in (("trend", cands["trend"] * h), ("periodic", float(v[1] - v[0]))):
            e2 = (pred - seen) ** 2
            old = self.record.get(name, e2)
            self.record[name] = old + a * (e2 - old)
        self.record_n += 1

    @property
    def periodic_proven(self) -> bool:
        """The periodic model holds (:func:`fit_periodic`'s checks) and its record
        over about the last :attr:`RECORD_S` seconds is not clearly worse than the
        local model's (``RECORD_VETO`` times its mean square error, noise included).

        A periodic fit can pass its checks on too short a history: 3 minutes into
        a 480-s worm with 4-s exposures, a fitted ~150-s period predicted each
        cycle's change to 0.28-0.36″ where the local line did 0.14-0.16″ and put
        the star 0.5″ off.  Its record vetoes it until it predicts.  (Choosing by
        the record alone flips between two good models on noise: the mean square
        errors of 1-s cycles are mostly the seeing jitter's.)

        On long cycles (over :attr:`LONG_CYCLE_S`, long exposures) the record holds
        only ~15 predictions, mostly jitter, and catches a wrong fit too late: a periodic
        model not speaking yet takes over only once it was fitted over
        :attr:`LONG_ADOPT_CYCLES` of its periods and its record is at least as good as
        the local model's (``RECORD_ADOPT``); once speaking, the veto is the usual one
        (hysteresis, so the two do not flap).  Default rig, 4-s exposures: at 370 s a
        310-s fit whose record had been twice the local model's for minutes took over
        the moment a noisy frame brought the two within 1.6x (seed 7), at 308 s a
        280-s fit with an equal record did (seed 0); each put the star 2.3-3″ off for
        20-30 s before the veto caught up."""
        if not self.periodic_ok:
            return False
        if self.record_n < self.RECORD_MIN or "periodic" not in self.record:
            return True
        limit = self.RECORD_VETO
        if self._long_cycle and not self.periodic_live:
            if self.period and self.span < self.LONG_ADOPT_CYCLES * self.period:
                return False
            limit = self.RECORD_ADOPT
        return self.record["periodic"] <= limit * self.record.get("trend", math.inf)

    def increment(self, t_abs: float, dt: float) -> tuple[float, str]:
        """Predicted gear-error change from t_abs to t_abs + dt, and which model said so.

        The periodic model speaks when :attr:`periodic_proven`; both models keep
        predicting so their records stay current."""
        cands: dict[str, Any] = {}
        self._long_cycle = dt > self.LONG_CYCLE_S
        if dt > self.LONG_CYCLE_S:
            # Long cycles: the 40-s parabola, or the one over the 1-s rule's shorter window
            # while it has predicted clearly better (a steep worm's harmonics bend within
            # 40 s).
            short, long_ = self.trend(dt, long=False), self.trend(dt, long=True)
            if short is not None and long_ is not None:
                cands.update(short=short[0], long=long_[0])
            rec = self.local_record
            use_short = (short is not None and self.local_n >= self.RECORD_MIN
                         and rec.get("short", math.inf) * self.LOCAL_SWITCH < rec.get("long", math.inf))
            tr = short if use_short else long_
        else:
            tr = self.trend(dt)
        if self.t and tr is not None and self.coef is not None and self.period is not None:
            cands.update(trend=tr[0], periodic=(self.period, self.coef))
        self._cands = cands
        self._last = (self.t[-1], self.g[-1]) if self.t and cands else None
        if self.periodic_proven:
            a = self.value(t_abs)
            b = self.value(t_abs + dt)
            if a is not None and b is not None:
                self.periodic_live = True
                return b - a, "periodic"
        self.periodic_live = False
        if tr is None:
            return 0.0, "none"
        return tr[0] * dt, "trend"


# Long cycles (over GearModel.LONG_CYCLE_S): a gust starts at this many robust sigmas of
# the innovations (8 on short cycles).  A 4-s exposure averages a gust that springs back
# in 4 s down to 0.4-0.5 px on the default rig, under the 8 sigmas (0.56 px) of its
# innovations; unseen, it went into the local model and its correction overshot.
LONG_GUST_ONSET_SIGMA = 5.0


class GustTracker:
    """Sudden offsets the model did not predict (a wind gust, a cable snag), on one axis.

    Fed every frame with the innovation ``x`` (px): the gear error minus what
    the axis's model expected at that time.  Quiet frames give the noise (the
    median and a robust scatter, 1.4826 MAD, of the last :attr:`KEEP`
    innovations); an innovation beyond ``onset_sigma`` of it (and ``min_px``)
    starts a gust, which lasts while the innovation stays beyond ``end_sigma``
    on the same side.  While a gust lasts, its frames stay out of the model (a
    model that learned a gust as periodic error or trend would send it again
    a worm period or a trend window later), and the axis corrects the gust
    itself: the correction attributed to it (:attr:`corr`) is set to what the
    gust is expected to be at the next frame, its size now times the
    relaxation the tracker measured on earlier gusts over that time (a
    wind-pushed tube springs back: from one frame to the next a gust shrinks
    by a steady factor per second; for a snag that does not relax the factor
    is 1, a full correction).  Until :attr:`MIN_RATES` such factors are seen
    (:attr:`learned`) the axis's own feedback meets a gust, its frames still
    kept out of the model.  When the gust is over its correction is taken back.  An
    offset that does not relax (a snag, a bump, or the model falling behind)
    is no gust: its frames go back to the model.

    Why: 20 gusts an hour of 10″ on the default rig (4.3″/px, 1-s frames,
    640x480 guide frames, seeds 0-3) with a gain-0.2 feedback chasing them and
    the trend model learning their relaxation: 1.53-1.64x the seeing floor.  A
    guider that knows the true pointing error and cancels it fully every cycle
    reaches 1.16-1.35x, one that also knows how each gust relaxes 1.12-1.17x:
    the frame a gust begins in is lost to any guider."""

    KEEP = 120
    WARMUP = 40
    PAUSE_FRAMES = 30
    MIN_RATES = 3

    def __init__(self, onset_sigma: float = 8.0, end_sigma: float = 2.5, min_px: float = 0.3,
                 persist_s: float = 15.0) -> None:
        self.onset_sigma = onset_sigma
        self.end_sigma = end_sigma
        self.min_px = min_px
        self.persist_s = persist_s
        # Log of the gust's size ratio per second, from frame to frame (shared by
        # the axes of one mount: the engine hands the Dec tracker the RA one's).
        self.rates: deque[float] = deque(maxlen=30)
        self.count = 0  # gusts seen (offsets that relaxed)
        self.reset()

    def reset(self) -> None:
        """Forget the current gust and the noise (a new guiding run); the
        relaxation learned on earlier gusts is kept."""
        self._quiet: deque[float] = deque(maxlen=self.KEEP)
        self.active = False
        self.since = 0.0
        self.frames = 0
        self.t = 0.0  # time of the gust's last frame, s
        self.x = 0.0  # the gust's size at its last frame, px
        self.corr = 0.0  # correction sent for the current gust, px
        self._dts: deque[float] = deque(maxlen=15)
        self._first = 0.0  # the gust's size on its first full frame, px
        self._pending: list[float] = []  # its relaxation rates, kept if it relaxes
        self._held: list[tuple[float, float]] = []  # its (t, gear) frames
        self.returned: list[tuple[float, float]] = []
        self._paused = 0

    def _noise(self) -> tuple[float, float] | None:
        """(median, robust sigma) of the quiet innovations, px; None while warming up."""
        if len(self._quiet) < self.WARMUP:
            return None
        a = np.asarray(self._quiet)
        med = float(np.median(a))
        return med, float(1.4826 * np.median(np.abs(a - med)))

    def relaxation(self, dt: float) -> float:
        """Measured share of a gust left after ``dt`` seconds (1 until :attr:`learned`)."""
        if len(self.rates) < self.MIN_RATES:
            return 1.0
        return float(math.exp(min(float(np.median(self.rates)), 0.0) * max(dt, 0.0)))

    def update(self, t: float, x: float | None, gear: float = 0.0,
               long_cycle: bool = False) -> bool:
        """Take the frame's innovation (None: no expectation yet) and gear error; True
        while a gust lasts (on ``long_cycle`` frames, over :attr:`GearModel.LONG_CYCLE_S`,
        one starts at :data:`LONG_GUST_ONSET_SIGMA`), and then :attr:`x` is the gust's size (px, the innovation
        less its usual bias).  An offset that does not relax (it grows past its first
        full frame, or lasts ``persist_s``) was no gust but the model falling behind or
        a step that stays: its frames are handed back in :attr:`returned` for the
        model to learn, as if no gust had been seen."""
        self.returned = []
        if x is None:
            self._abort()
            return False
        noise = self._noise()
        if noise is None:
            self._quiet.append(x)
            return False
        med, sig = noise
        xc = x - med
        if not self.active:
            if self._paused > 0:
                self._paused -= 1
                return False
            onset = LONG_GUST_ONSET_SIGMA if long_cycle else self.onset_sigma
            if abs(xc) > max(onset * sig, self.min_px):
                self.active, self.since, self.frames, self.x, self.t = True, t, 1, xc, t
                self._first = 0.0
                self._dts.clear()
                self._pending = []
                self._held = [(t, gear)]
                return True
            self._quiet.append(x)
            return False
        self.frames += 1
        if abs(xc) <= self.end_sigma * sig or (xc > 0) != (self.x > 0):
            # Over: it relaxed, so it was a gust.
            self.active = False
            self.count += 1
            self.rates.extend(self._pending)
            return False
        if self.frames == 2:
            self._first = abs(xc)
        elif abs(xc) > self._first or t - self.since >= self.persist_s:
            self._abort()
            return False
        dt = t - self.t
        if dt > 0:
            self._dts.append(dt)
            if self.frames >= 3:
                # The onset frame holds only part of the gust: rates from the next one on.
                self._pending.append(math.log(xc / self.x) / dt)
        self.x, self.t = xc, t
        self._held.append((t, gear))
        return True

    def pause(self) -> None:
        """The lock moved (a dither): the settling that follows is no gust.  Any gust
        under way ends as not one, and none starts for the next :attr:`PAUSE_FRAMES`."""
        self._abort()
        self._paused = self.PAUSE_FRAMES

    def _abort(self) -> None:
        if self.active:
            self.active = False
            self.returned = self._held
        self._held = []

    @property
    def learned(self) -> bool:
        """Enough gusts were seen relaxing to correct one by what will be left of it."""
        return len(self.rates) >= self.MIN_RATES

    def correction(self, dt: float) -> float:
        """During a gust: the change of correction (px, a guide output) that makes
        the gust's share of the sum what is left of it at the next frame, ``dt``
        seconds on (the last gap between this gust's frames, if any: its long
        corrections lengthen the cycle).  Only once :attr:`learned`: until then
        the axis's own feedback meets the gust (a full correction of a gust that
        springs back overshoots: default rig, 2 gusts an hour of 4″, 1.14x ->
        1.20x)."""
        if self._dts:
            dt = self._dts[-1]
        want = self.x * self.relaxation(dt)
        out = want - self.corr
        self.corr = want
        return out

    def release(self) -> float:
        """The gust is over: take its correction back (px, a guide output)."""
        out, self.corr = -self.corr, 0.0
        return out


class HandOverScore:
    """Which of two guiders on one axis keeps the star closer: the live one, or the one
    replayed beside it on the same gear error.

    Each scored frame adds both displacements (px) to exponential mean squares (px²) over
    about ``cycles`` frames.  The replayed guider should take over (:meth:`other_better`)
    once, after ``cycles`` scored frames, its mean square times ``margin`` is below the
    live one's for ``persist`` scored frames in a row; or, with ``fast_cycles``, once its
    mean square over about that many frames is ``fast_margin`` times smaller.
    """

    def __init__(self, names: tuple[str, str], cycles: float, margin: float = 1.15, persist: int = 1,
                 fast_cycles: float | None = None, fast_margin: float = 3.0) -> None:
        self.names = names
        self.cycles = cycles
        self.margin = margin
        self.persist = persist
        self.fast_cycles = fast_cycles
        self.fast_margin = fast_margin
        self.reset()

    def reset(self) -> None:
        self.ms = dict.fromkeys(self.names, 0.0)
        self.ms_fast = dict.fromkeys(self.names, 0.0)
        self.n = 0
        self.better_for = 0  # scored frames in a row the slow score favoured the other guider

    def add(self, live: str, d_live: float, d_other: float) -> None:
        """Score one frame: the live guider ``live`` saw ``d_live``, the other ``d_other``."""
        other = self.names[1] if live == self.names[0] else self.names[0]
        scores = [(self.ms, self.cycles)]
        if self.fast_cycles:
            scores.append((self.ms_fast, self.fast_cycles))
        for ms, cycles in scores:
            a = 1.0 / cycles
            ms[live] += a * (d_live * d_live - ms[live])
            ms[other] += a * (d_other * d_other - ms[other])
        self.n += 1
        slow = self.n >= self.cycles and self.ms[other] * self.margin < self.ms[live]
        self.better_for = self.better_for + 1 if slow else 0

    def other_better(self, live: str) -> bool:
        other = self.names[1] if live == self.names[0] else self.names[0]
        return (self.better_for >= self.persist
                or (self.fast_cycles is not None and self.n >= self.fast_cycles
                    and self.ms_fast[other] * self.fast_margin < self.ms_fast[live]))

    def handed_over(self) -> None:
        self.better_for = 0


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
    # Set by the engine each frame (None: unknown): the time from this frame's middle to
    # the next frame's without any pulse (s), and the seconds of pulse per px of correction.
    # Also: the longest RA pulse (s), and the Dec pulse expected beside this one's (s).
    cycle_base_s: float | None = None
    pulse_s_per_px: float | None = None
    max_pulse_s: float = math.inf
    other_pulse_s: float = 0.0

    def __init__(self, aggression: float = 0.2, min_move: float = 0.0, prediction_gain: float = 1.0,
                 trend_s: float = 20.0, harmonics: int = 3, period_s: float | None = None,
                 max_prediction_px: float = 1.0, classic_hysteresis: float = 0.1,
                 classic_aggression: float = 0.7, classic_min_move: float = 0.2,
                 compare_cycles: float = 150.0, gain_cycle_s: float = 1.5,
                 gusts: bool = True) -> None:
        from .algorithms import Hysteresis
        self.aggression = aggression
        self.gust = GustTracker() if gusts else None
        self.gain_cycle_s = gain_cycle_s
        self.min_move = min_move
        self.prediction_gain = prediction_gain
        self.max_prediction_px = max_prediction_px
        self.model = GearModel(trend_s=trend_s, harmonics=harmonics, period_s=period_s)
        self._classic = lambda: Hysteresis(classic_hysteresis, classic_aggression, classic_min_move)
        self.settle_aggression = classic_aggression
        self.compare_cycles = compare_cycles
        self.switches = 0
        self.reset()

    def reset(self) -> None:
        self.model.clear()
        if self.gust is not None:
            self.gust.reset()
        self._sum = 0.0  # corrections sent, px
        self._lock = 0.0  # lock-position shifts along this axis, px
        self._last_t: float | None = None
        self._dts: deque[float] = deque(maxlen=15)
        self.last_prediction = 0.0
        self.last_source = "none"
        self.live = "predictive"
        self._hyst = self._classic()  # the classic guider, live or replayed
        self._shadow_sum = 0.0  # the replayed guider's corrections, px
        self._score = HandOverScore(("predictive", "hysteresis"), self.compare_cycles)
        self._held = False

    def hold_comparison(self, on: bool) -> None:
        """While on (settling after a dither, recovering from a lost star), frames are not
        scored and the replayed guider stands where the live one stands: how fast each
        would take up a lock shift says nothing about how either follows the mount (the
        replayed hysteresis, at 0.7 per frame against the predictive 0.2, won every
        settling and took RA over for the night: 60″ of Dec backlash, dithers every 2 min)."""
        self._held = bool(on)

    def _cycle(self, t: float) -> float:
        if self._last_t is not None and t > self._last_t:
            self._dts.append(t - self._last_t)
        self._last_t = t
        if self.next_cycle_s:
            return self.next_cycle_s
        return float(np.median(self._dts)) if self._dts else 0.0

    def _gain(self, dt: float) -> float:
        """Feedback gain for a cycle of ``dt`` seconds.

        ``aggression`` is the fraction of the error corrected per cycle of
        up to ``gain_cycle_s``; a longer cycle (long guide exposures) gets
        the gain that removes the same fraction per second,
        1 - (1 - aggression)^(dt / gain_cycle_s), so the error left by a
        lagging model is not carried for 5 cycles of 4 s (its seeing jitter
        per frame is smaller too).  Default rig, 4-s exposures, 30 min:
        ratio 1.89 -> 1.39 (seeds 1, 2: 1.69 -> 1.35, 1.61 -> 1.57).

        Two exceptions on long cycles, by the model that predicted this cycle
        (:attr:`last_source`):

        * none yet (the first frames of a run): nothing is fed forward, so the whole
          displacement is corrected (gain 1).  Guiding often starts where the worm is
          steep (0.25″/s on the default rig): at 0.46 a 4-s cycle the star lagged
          1.7-2.3″ for the 3 frames before the local model had its points.
        * the periodic model: it predicts the worm to a few hundredths of an arcsecond,
          so the feedback only has the seeing left to chase, and ``aggression`` per
          cycle (0.2) injects less of it than 0.46 (error var (K² r + q) / (2K - K²),
          measurement variance r, model error q: 0.022 -> 0.014″² a axis with r =
          0.25″², q = 0.05″²).  Default rig, 4-s exposures, 640x480 frames, no gusts,
          seeds 0-9, steady state after the first worm cycle: RA 0.023 -> 0.016″²."""
        if dt <= self.gain_cycle_s:
            return self.aggression
        if self.last_source == "none":
            return 1.0
        if self.last_source == "periodic":
            return self.aggression
        return 1.0 - (1.0 - self.aggression) ** (dt / self.gain_cycle_s)

    def _predictive_out(self, distance: float, pred: float, dt: float = 0.0) -> float:
        gain = self._gain(dt)
        if self._held:
            # Settling: the lock shift is taken up at the classic guider's gain.
            gain = max(gain, self.settle_aggression)
        fb = distance * gain if abs(distance) >= self.min_move else 0.0
        return fb + self.prediction_gain * pred

    def result(self, distance: float, t: float | None = None) -> float:
        if t is None:
            # No clock: nothing to learn from; behave as a proportional guider.
            return distance * self.aggression if abs(distance) >= self.min_move else 0.0
        dt = self._cycle(t)
        gear = distance + self._sum + self._lock
        gust = self.gust
        in_gust = False
        if gust is not None:
            in_gust = gust.update(t, self._innovation(t, gear, dt), gear,
                                  long_cycle=dt > GearModel.LONG_CYCLE_S)
            for tt, gg in gust.returned:
                self.model.add(tt, gg)
            if not in_gust:
                self.model.add(t, gear)
        else:
            self.model.add(t, gear)
        pred = 0.0
        if dt > 0:
            pred = self._predict(t, dt, distance)
        self.last_prediction = pred
        # The guider not in charge, replayed on the same gear error.
        other = "hysteresis" if self.live == "predictive" else "predictive"
        d_other = gear - self._shadow_sum - self._lock
        # A gust (once the tracker knows how gusts relax) is the tracker's to
        # correct, whichever guider is in charge; when it is over, its
        # correction is taken back and the guider meets what is left.  On long
        # cycles a sudden jump the tracker does not know yet is not chased on the
        # frame it appears in (only the feed-forward goes out): a gust that springs
        # back within the exposure is mostly gone before the correction lands, and
        # correcting it overshot (default rig, 4-s exposures, 640x480 frames: the
        # star 0.6-1.8″ past for 10-20 s after each gust); a jump that stays is
        # corrected on the next frame.
        back = gust.release() if gust is not None and gust.corr and not in_gust else 0.0
        if other == "hysteresis":
            self._shadow_sum += self._hyst.result(d_other)
            out = self._predictive_out(distance - back, pred, dt) + back
            if in_gust and gust.learned:
                out = self.prediction_gain * pred + gust.correction(dt)
            elif in_gust and dt > GearModel.LONG_CYCLE_S and gust.frames == 1:
                out = self.prediction_gain * pred  # not chased: confirmed next frame
        else:
            self._shadow_sum += self._predictive_out(d_other, pred, dt)
            if in_gust and gust.learned:
                out = gust.correction(dt)
            elif in_gust and dt > GearModel.LONG_CYCLE_S and gust.frames == 1:
                out = 0.0  # not chased: confirmed next frame
            else:
                out = self._hyst.result(distance - back) + back
        if self._held:
            self._shadow_sum = self._sum + out  # the replay follows the live guider
        elif not in_gust:
            # Gusts are the tracker's, whichever guider is in charge: not a test of the model.
            self._score.add(self.live, distance, d_other)
        if not self._held and self._score.other_better(self.live):
            # Hand over: the replayed guider takes the real sum, the other is replayed from it.
            self.live, self.switches = other, self.switches + 1
            self._score.handed_over()
            self._shadow_sum = self._sum + out
            if other == "hysteresis":
                self._hyst._last = out  # the classic carries on from what was sent
        self._sum += out
        return out

    def _predict(self, t: float, dt: float, distance: float) -> float:
        """The feed-forward (px): the model's change from this frame's middle to the next.

        The next frame starts when this frame's pulses end, so with
        :attr:`cycle_base_s` and :attr:`pulse_s_per_px` known (the engine sets them)
        the interval is the base cycle plus this correction's own pulse (or the Dec
        pulse beside it, when longer): the prediction and the pulse length are
        solved together (three passes).  A
        median cycle instead under-predicts exactly where the worm is steepest and
        the pulses longest (±45″ over 240 s with 4-s exposures: 0.6-1 s of pulse,
        the star ~1.5″ behind once per worm cycle).  Only for cycles over
        :attr:`GearModel.LONG_CYCLE_S`: on 1-s cycles it made the table's Dec 85°
        and 30″-backlash rows worse (1.19 -> 1.23, 1.13 -> 1.17; ±45″/240 s 1.17 ->
        1.13), and 1-s cycles stay as they were."""
        base, spp = self.cycle_base_s, self.pulse_s_per_px
        passes = (3 if base and spp and base > 0 and spp > 0 and dt > GearModel.LONG_CYCLE_S
                  else 1)
        pred = 0.0
        for _ in range(passes):
            if passes > 1:
                fb = distance * self._gain(dt) if abs(distance) >= self.min_move else 0.0
                pulse = min(abs(fb + self.prediction_gain * pred) * spp, self.max_pulse_s)  # type: ignore[operator]
                dt = base + max(pulse, self.other_pulse_s)  # type: ignore[operator]
            pred, self.last_source = self.model.increment(t, dt)
            # The cap is per cycle of up to gain_cycle_s: a 4-s cycle on ±45″ over 240 s
            # needs ~1 px of feed-forward and was clipped to 1 px.
            cap = self.max_prediction_px * max(1.0, dt / self.gain_cycle_s)
            pred = max(-cap, min(cap, pred))
        return pred

    def _innovation(self, t: float, gear: float, dt: float) -> float | None:
        """The gear error at ``t`` less what the model expected there (px), before the
        frame joins the model; None while there is no model yet."""
        m = self.model
        if m.t0 is None or len(m.t) < 4:
            return None
        v = m.value(t)
        if v is None:
            tr = m.trend(dt)
            if tr is None:
                return None
            v = tr[1] + tr[0] * ((t - m.t0) - m.t[-1])
        return gear - v

    def applied(self, requested: float, actual: float) -> None:
        """The engine sent ``actual`` instead of ``requested`` (rounding, pulse limits)."""
        self._sum += actual - requested

    def feed_forward(self) -> float:
        return self.prediction_gain * self.last_prediction

    def lock_moved(self, delta: float) -> None:
        self._lock += delta
        if self.gust is not None:
            self.gust.pause()

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

    def would_move(self, out: float) -> float:
        """What :meth:`moved` would give for ``out``, leaving the gear where it is."""
        return self.copy().moved(out)

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
    once it stands out from their scatter (:meth:`_averaged`).  Where the Dec play
    that no compensation adds back (:attr:`play_px`) takes a correction up whole, the
    star does not move: the frames that asked for it stay the evidence and the whole
    displacement is corrected every frame until the axis moves.

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
                 compare_cycles: float = 600.0, gusts: bool = True) -> None:
        self.gust = GustTracker() if gusts else None
        self.min_move = min_move
        self.aggression = aggression
        self.drift_s = drift_s
        self.drift_gain = drift_gain
        self.min_drift_s = min_drift_s
        self.compare_cycles = compare_cycles
        cm = min_move if classic_min_move is None else classic_min_move
        self.classic = ResistSwitch(min_move=cm, aggression=classic_aggression, fast_switch=fast_switch)
        self.play_px = 0.0  # uncompensated Dec play (px), set by the engine from the calibration
        self._live_play = DecPlay()
        self.directions = 0  # 0: both, +1 / -1: only that sign (dec_mode), None: none ("off")
        self.switches = 0
        self.reset()

    def reset(self) -> None:
        self.classic.reset()
        if self.gust is not None:
            self.gust.reset()
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
        self._score = HandOverScore(("predictive", "resist switch"), self.compare_cycles, self.MARGIN,
                                    self.PERSIST, self.FAST_CYCLES, self.FAST_MARGIN)
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

    def _predictive(self, distance: float, clear: bool, back: float = 0.0) -> tuple[float, float]:
        """The predictive guider's correction for ``distance`` and its feed-forward part;
        ``back``: a finished gust's correction being taken back (px), which the caller
        adds to the output."""
        prev, self._prev = self._prev, distance
        big = 3.0 * self.min_move
        self._recent.append(distance)
        distance -= back
        if abs(distance) > big and abs(prev) > big and (distance > 0) == (prev > 0):
            self._recent.clear()  # a confirmed large deflection: correct it whichever side
            return distance, 0.0
        if not clear:
            return self._averaged(), 0.0
        self.side = 1 if self.drift_rate > 0 else -1
        cycle = self.next_cycle_s or float(np.median(self._dts))
        ff = self.drift_gain * self.drift_rate * cycle

        fb = self.aggression * distance
        if (fb > 0) - (fb < 0) != self.side:
            fb = 0.0
        elif self._play().would_move(ff + fb) == 0.0 and self._play().known:
            # The play takes this correction up whole, so it moves nothing: the whole
            # displacement until the axis moves (at the gentle gain, 30″ of uncompensated
            # play took ~90 frames to take up while the star sat off).
            fb = distance
        return ff + fb, ff

    def _play(self) -> "DecPlay":
        """The play model of the predictive guider, live or replayed."""
        return self._live_play if self.live == "predictive" else self._shadow_play

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
        gear = g - self._lost_live
        gust = self.gust
        long_cycle = bool(self._dts) and float(np.median(self._dts)) > GearModel.LONG_CYCLE_S
        in_gust = gust is not None and gust.update(t, self._innovation(t, gear), gear,
                                                   long_cycle=long_cycle)
        if gust is not None:
            self.samples.extend((tt, gg, self._stretch) for tt, gg in gust.returned)
        if not in_gust:
            self.samples.append((t, gear, self._stretch))
        while self.samples and t - self.samples[0][0] > self.drift_s:
            self.samples.popleft()
        span = t - self.samples[0][0] if self.samples else 0.0
        self.drift_rate, self.drift_sigma = self._fit_rate()
        clear = bool(span >= self.min_drift_s and abs(self.drift_rate) > 3.0 * self.drift_sigma
                     and self._dts)
        # A gust's frames say nothing about either guider: not scored, and the replay
        # follows the live guider through them.
        held = self._held or in_gust
        other = "resist switch" if self.live == "predictive" else "predictive"
        if in_gust and gust.learned:
            # A gust: corrected by the tracker (and taken back when it is over).
            cycle = self.next_cycle_s or (float(np.median(self._dts)) if self._dts else 1.0)
            out = gust.correction(cycle)
            ff = self.drift_gain * self.drift_rate * cycle if clear else 0.0
            out += ff
            self.classic.result(distance)
            self._prev = distance
            self._recent.clear()
            other_out = out
            d_other = distance
            self.last_prediction = ff
        else:
            back = gust.release() if gust is not None and gust.corr else 0.0
            # The other guider's displacement: the gear error without the live guider's
            # lost motion, less what the other's corrections would have moved the axis.
            if held:
                d_other = distance - back
            else:
                d_other = g - self._lost_live - self._shadow_moved - self._lock
            # Long cycles: a gust not yet learned is not chased on its first frame (it
            # springs back before the correction lands; see Predictive.result): the
            # live guider sends only the drift's feed-forward (after a gust the one-sided
            # Dec feedback had pushed the star 0.5″ past, against the drift, for 30 s).
            hold = bool(in_gust and long_cycle and gust is not None and gust.frames == 1)
            if self.live == "predictive":
                p_out, ff = self._predictive(distance, clear, back)
                c_out = self.classic.result(d_other)
            else:
                p_out, ff = self._predictive(d_other, clear)
                c_out = self.classic.result(distance - back)
            out, other_out = (p_out, c_out) if self.live == "predictive" else (c_out, p_out)
            if hold:
                out = ff  # the live guider's feedback waits for the next frame
            out += back
            self.last_prediction = ff if self.live == "predictive" else 0.0
        self.last_other = d_other
        if not held:
            self._score.add(self.live, distance, d_other)
        # The live guider's correction through its play (corrected in applied()).
        self._live_play_before = self._live_play.copy()
        self._lost_live += out - self._live_play.moved(out)
        if held:
            # The replay stands where the live guider stands.
            self._shadow_moved = self._sum + out - self._lost_live
            self._shadow_play = self._live_play.copy()
        else:
            self._shadow_moved += self._shadow_play.moved(self._allowed(other_out))
        if not held and self._score.other_better(self.live):
            # Hand over: the new guider takes the axis as it is, the old one is
            # replayed from there.
            self.live, self.switches = other, self.switches + 1
            self._score.handed_over()
            self._shadow_moved = self._sum + out - self._lost_live
            self._shadow_play = self._live_play.copy()
            if self.live == "predictive":
                self._recent.clear()
            self.last_prediction = 0.0
        self._note(out)
        return out

    def _innovation(self, t: float, gear: float) -> float | None:
        """The gear error at ``t`` less what the drift fit expects there (px): the
        mean of the current stretch's last frames carried on at the drift rate.
        None at the start of a stretch (after a reversal the backlash moves it),
        unless a gust lasts: then its own corrections reversed the motor, and the
        frames before it say where the star would be."""
        gust = self.gust
        recent = [(tt, gg) for tt, gg, k in list(self.samples)[-10:]
                  if k == self._stretch or (gust is not None and gust.active)]
        if len(recent) < 5:
            return None
        arr = np.asarray(recent)
        rate = self.drift_rate if math.isfinite(self.drift_sigma) else 0.0
        return gear - float(arr[:, 1].mean()) - rate * (t - float(arr[:, 0].mean()))

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
        # Reversing wants 3/4 of a minimum move: a backlash compensation a little off
        # leaves the star about 0.1-0.4 px past after each reversal, and half a minimum
        # move kept it reversing through the play (60″ of backlash, dithers: a reversal
        # every ~15 s after a dither, each one 0.3-0.8 px off).
        side = 1 if mean > 0 else -1
        floor = 0.75 * self.min_move if self.side and side != self.side else 0.5 * self.min_move
        if abs(mean) <= max(3.0 * sem, floor):
            return 0.0
        # A correction the Dec play takes up whole leaves the star where these frames
        # saw it: they stay the evidence, and the next frame corrects again (with the
        # frames cleared, uncompensated play was taken up one mean every 8 frames: 30″
        # of play, no drift, a 0.1-px offset held for 12 minutes).
        play = self._play()
        if play.would_move(mean) != 0.0 or not play.known:
            self._recent.clear()
        self.side = side
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
            self._lost_live -= requested - self._live_play_before.would_move(requested)
            self._live_play = self._live_play_before.copy()
            self._lost_live += actual - self._live_play.moved(actual)
            if self._held:
                self._shadow_moved = self._sum - self._lost_live
                self._shadow_play = self._live_play.copy()

    def feed_forward(self) -> float:
        return self.last_prediction

    def lock_moved(self, delta: float) -> None:
        self._lock += delta
        if self.gust is not None:
            self.gust.pause()

    def summary(self) -> str:
        return (f"Minimum move = {self.min_move:.3f} Aggression = {self.aggression * 100:.0f}% "
                f"Drift feed-forward {self.drift_gain * 100:.0f}% over {self.drift_s:.0f} s, "
                f"proving itself against Resist Switch (Minimum move = {self.classic.min_move:.3f})")
