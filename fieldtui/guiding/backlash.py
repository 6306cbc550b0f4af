"""Dec backlash: measure it, say what to do about it, and compensate it.

Measurement (:func:`measure_backlash`) follows PHD2's backlash tool (the
Guiding Assistant's last step, backlash_comp.cpp): the backlash is first
cleared with north pulses, then the star is pulsed north for a number of
equal steps and south for as many; the south pulses first take up the play
in the Dec gear, so they bring the star back less far than the north pulses
took it.  The pulse time that moved nothing is the backlash:

    backlash_ms = south pulse time - south return / north rate

The calibration's Backlash, North and South legs are exactly that sequence,
so every calibration measures it; the guiding assistant can call the same
function with its own legs.

Compensation (:class:`BacklashCompensator`) adds pulse time to a Dec pulse
that reverses direction, as PHD2's backlash compensation does, and adapts
the amount from what the star did next (undershoot: more, overshoot: less;
averaged over the last corrections, at most +10 % / -20 % a step, never
above twice the measured value).  Unlike PHD2 it keeps track of where the
gear sits in its play: a reversal after a short run the other way only
needs the part of the gap that run crossed, not the whole gap.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

# Play (arc-seconds) above which the guider warns; a few arc-seconds are
# normal on any geared mount and compensation handles tens.
LARGE_BACKLASH_ARCSEC = 20.0
# Without a pixel scale: pulse time above which the guider warns.
LARGE_BACKLASH_MS = 3000.0


@dataclass(frozen=True)
class BacklashMeasurement:
    """The result of :func:`measure_backlash`.

    ``backlash_ms``: pulse time the play swallows at the guide rate (ms);
    ``backlash_px``: the same as star motion on the camera (px);
    ``backlash_arcsec``: on the sky (None without a pixel scale);
    ``north_rate_px_s``: Dec rate fitted on the north steps (px/s);
    ``north_px`` / ``south_px``: how far the north steps moved the star and
    how far the south steps brought it back (px, along the north motion);
    ``lower_bound``: the south steps never moved the star measurably, so
    the backlash is *at least* ``backlash_ms`` (all the south pulse time);
    ``sigma_ms``: the measurement's 1-sigma uncertainty (ms) from the scatter
    of the north steps about their line.
    """

    backlash_ms: float
    backlash_px: float
    backlash_arcsec: float | None
    north_rate_px_s: float
    north_px: float
    south_px: float
    lower_bound: bool
    sigma_ms: float

    @property
    def south_fraction(self) -> float:
        """South return over north travel (1 without backlash; PHD2 warns under 0.25)."""
        return self.south_px / self.north_px if self.north_px > 0 else 0.0

    @property
    def large(self) -> bool:
        """Large enough to hurt Dec guiding: over :data:`LARGE_BACKLASH_ARCSEC`
        (or, without a pixel scale, :data:`LARGE_BACKLASH_MS` of pulse)."""
        if self.backlash_arcsec is not None:
            return self.backlash_arcsec > LARGE_BACKLASH_ARCSEC
        return self.backlash_ms > LARGE_BACKLASH_MS

    def describe(self) -> str:
        """The amount: 'about 60″ (8.0 s of guide pulse, 14.0 px)'."""
        at_least = "at least " if self.lower_bound else "about "
        if self.backlash_arcsec is not None:
            return (f"{at_least}{self.backlash_arcsec:.0f}″ ({self.backlash_ms / 1000.0:.1f} s of "
                    f"guide pulse, {self.backlash_px:.1f} px)")
        return f"{at_least}{self.backlash_ms / 1000.0:.1f} s of guide pulse ({self.backlash_px:.1f} px)"

    def warning(self) -> str | None:
        """The warning for a :attr:`large` backlash with what to do, else None."""
        if not self.large:
            return None
        return (f"Dec backlash is large: {self.describe()} is taken up whenever Dec reverses. "
                + ADVICE)


ADVICE = ("To take it out of guiding: balance the scope a little east-heavy on the Dec axis (or "
          "leave the polar alignment a little off) so Dec always drifts one way, and guide Dec in "
          "that direction only (dec_mode = \"north\" or \"south\" in [guiding]); have the Dec "
          "gear mesh adjusted. Meanwhile the guider adds the measured play to every Dec pulse "
          "that reverses direction")


def _fit_with_drift(pn: np.ndarray, xn: np.ndarray, tn: np.ndarray, ps: np.ndarray,
                    ss: np.ndarray, ts: np.ndarray,
                    prior: tuple[float, float]) -> tuple[float, float, float, float]:
    """Rate, drift and play from both legs at once: positions along the north motion
    ``pn`` (north leg, after ``xn`` s of north pulse, at times ``tn`` s) and ``ps``
    (south leg, after ``ss`` s of south pulse, at ``ts``) follow

        p = a + rate * (north pulse s - max(0, south pulse s - play)) + drift * t

    (a scan over the play, least squares for the rest).  Within one leg the pulses
    and the drift both grow with time, so a play as long as the south leg and a
    drift that makes up for it fit as well as no play and no drift: ``prior``
    (drift px/s, its standard error), measured while Dec was not pulsed, decides
    (a weighted row of the least squares).  Returns (rate px/s of pulse, drift px/s,
    play s, residual RMS px)."""
    y = np.concatenate([pn, ps])
    t = np.concatenate([tn, ts])
    t0 = float(t.mean())
    t = t - t0
    total = float(ss[-1]) if len(ss) else 0.0
    # Weight of the prior row: position noise over the drift's standard error, the
    # noise from a first fit on no play (refined once).
    v0, sv = prior
    noise = 0.1

    def solve(play: float, w: float) -> tuple[float, np.ndarray, float]:
        x = np.concatenate([xn, xn[-1] - np.maximum(ss - play, 0.0)])
        a = np.column_stack([np.ones_like(x), x, t])
        a = np.vstack([a, [0.0, 0.0, w]])
        yy = np.concatenate([y, [w * v0]])
        coef, *_ = np.linalg.lstsq(a, yy, rcond=None)
        r = yy - a @ coef
        data = r[:-1]
        return float(r @ r), coef, float(data @ data)

    grid = np.linspace(0.0, total, 201)
    for _ in range(2):
        w = noise / max(sv, 1e-6)
        errs = [solve(float(b), w)[0] for b in grid]
        k = int(np.argmin(errs))
        fine = np.linspace(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)], 41)
        play = min(fine, key=lambda b: solve(float(b), w)[0])
        _, coef, data_sse = solve(float(play), w)
        noise = max(math.sqrt(data_sse / max(len(y) - 4, 1)), 1e-3)
    return float(coef[1]), float(coef[2]), float(play), noise


def measure_backlash(north_xy: np.ndarray, north_ms: np.ndarray | float, south_xy: np.ndarray,
                     south_ms: np.ndarray | float, pixel_scale: float | None = None,
                     noise_px: float | None = None, north_t: np.ndarray | None = None,
                     south_t: np.ndarray | None = None,
                     drift: tuple[float, float, float] | None = None) -> BacklashMeasurement | None:
    """Dec backlash from a north leg and the south leg that follows it.

    ``north_xy``: star positions (px), shape (n + 1, 2): where the north leg
    started, then after each of its n pulses; ``north_ms``: the pulse lengths
    (ms), a scalar or shape (n,).  ``south_xy`` / ``south_ms`` the same for
    the south leg, which must start where the north leg ended, with the Dec
    backlash cleared northward before the north leg (so the north pulses
    all move the star).  ``pixel_scale`` (″/px) adds arc-seconds;
    ``noise_px`` the per-position scatter, otherwise estimated from the
    north leg.  Returns None when the north leg did not move the star (no
    rate to measure against).

    ``north_t`` / ``south_t``: the times (s) of the positions, shapes (n + 1,)
    and (m + 1,), and ``drift``: the star's drift on the camera (vx, vy px/s)
    measured while Dec was not pulsed, and its standard error (px/s).  With
    them the mount's own Dec drift over the legs (polar misalignment) is fitted
    with the rate and the play, all at once (:func:`_fit_with_drift`): the
    north rate alone carries the drift, and the difference of two legs run at
    opposite pulses doubles it, so 4′ of polar error read as 90–360 ms of
    backlash on a mount with none.

    Pure; the source is PHD2's backlash tool (backlash_comp.cpp,
    BacklashTool::DecMeasurementStep): backlash = south pulse time minus the
    time the north rate needs for the distance the star came back.
    """
    n_xy = np.asarray(north_xy, dtype=float).reshape(-1, 2)
    s_xy = np.asarray(south_xy, dtype=float).reshape(-1, 2)
    n_steps, s_steps = len(n_xy) - 1, len(s_xy) - 1
    if n_steps < 1 or s_steps < 1:
        return None
    n_ms = np.broadcast_to(np.asarray(north_ms, dtype=float), (n_steps,))
    s_ms = np.broadcast_to(np.asarray(south_ms, dtype=float), (s_steps,))
    travel = n_xy[-1] - n_xy[0]
    north_px = float(math.hypot(*travel))
    if north_px <= 0:
        return None
    u = travel / north_px
    # Rate: least-squares line of the position along u against pulse time.
    tn = np.concatenate([[0.0], np.cumsum(n_ms)]) / 1000.0
    pn = (n_xy - n_xy[0]) @ u
    tm = tn - tn.mean()
    sxx = float(tm @ tm)
    if sxx <= 0:
        return None
    rate = float(tm @ (pn - pn.mean())) / sxx
    if rate <= 0:
        return None
    south_raw = float(-(s_xy[-1] - s_xy[0]) @ u)
    south_px = max(south_raw, 0.0)
    south_s = float(s_ms.sum()) / 1000.0
    drift_back = 0.0  # how far the drift alone took the star back over the south leg (px)
    fit: tuple[float, float, float, float] | None = None
    if (north_t is not None and south_t is not None and drift is not None
            and len(north_t) == len(n_xy) and len(south_t) == len(s_xy)
            and n_steps >= 3 and s_steps >= 3):
        ps = (s_xy - n_xy[0]) @ u
        xs = np.concatenate([[0.0], np.cumsum(s_ms)]) / 1000.0
        prior = (drift[0] * u[0] + drift[1] * u[1], drift[2])
        fit = _fit_with_drift(pn, tn, np.asarray(north_t, float), ps, xs, np.asarray(south_t, float),
                              prior)
        if fit[0] > 0:
            rate = fit[0]
            noise_px = fit[3] if noise_px is None else noise_px
            drift_back = -fit[1] * float(south_t[-1] - south_t[0])
        else:
            fit = None
    if noise_px is None:
        resid = pn - pn.mean() - rate * tm
        noise_px = float(np.sqrt(resid @ resid / max(len(pn) - 2, 1))) if len(pn) > 2 else 0.0
    # Moved at all (the drift's share aside)?  Three sigma of the difference of two positions.
    lower = south_raw - drift_back < 3.0 * math.sqrt(2.0) * noise_px + 0.05
    if lower:
        back_s = south_s
    elif fit is not None:
        back_s = min(max(fit[2], 0.0), south_s)
    else:
        back_s = min(max(south_s - south_px / rate, 0.0), south_s)
    back_px = back_s * rate
    sigma_ms = 1000.0 * math.sqrt(2.0) * noise_px / rate
    return BacklashMeasurement(
        backlash_ms=1000.0 * back_s, backlash_px=back_px,
        backlash_arcsec=back_px * pixel_scale if pixel_scale else None,
        north_rate_px_s=rate, north_px=north_px, south_px=south_px, lower_bound=bool(lower),
        sigma_ms=sigma_ms)


class BacklashCompensator:
    """Extra pulse time for a Dec pulse that reverses direction, adapted as it goes.

    ``gap_ms``: the play as guide-pulse time (from :func:`measure_backlash`);
    ``ceiling_ms``: the most it may grow to (default twice ``gap_ms``, as PHD2).
    The gear's place in the play is tracked from the pulses sent
    (:meth:`sent`): a north pulse of t ms crosses up to t ms of the play
    left on the north side, and so on, so :meth:`extra_ms` asks for exactly
    the play a new pulse would meet.  :meth:`outcome` takes the Dec error
    (px, positive = the correction wanted is north) measured on the frame after a
    compensated pulse and adapts ``gap_ms``.
    """

    HISTORY = 10

    def __init__(self, gap_ms: float, ceiling_ms: float | None = None, *,
                 gear_at: float | None = None) -> None:
        self.gap_ms = max(float(gap_ms), 0.0)
        self.ceiling_ms = max(ceiling_ms if ceiling_ms is not None else 2.0 * self.gap_ms, 0.0)
        # 0: against the south side (after south pulses), gap_ms: the north side.
        # Unknown (``gear_at`` None: a calibration reused after a slew or a flip): the
        # first pulse gets nothing added and the gear is then taken to rest on that
        # pulse's side, as PHD2 does (adding half the play blindly jolts the star by up
        # to half the backlash when the gear was already on that side).
        self.known = gear_at is not None
        self.pos_ms = self.gap_ms / 2.0 if gear_at is None else min(max(gear_at, 0.0), 1.0) * self.gap_ms
        self._pending: tuple[int, float] | None = None  # (direction, extra ms) awaiting its outcome
        self._misses: deque[float] = deque(maxlen=self.HISTORY)
        self.adjustments = 0

    def play_ms(self, direction: int) -> float:
        """Play (ms) a pulse toward ``direction`` (+1 north, -1 south) meets now."""
        pos = min(max(self.pos_ms, 0.0), self.gap_ms)
        return self.gap_ms - pos if direction > 0 else pos

    def extra_ms(self, direction: int) -> float:
        """Pulse time to add to a Dec pulse toward ``direction`` (0 when it does not reverse,
        or while the gear's place is unknown)."""
        return self.play_ms(direction) if direction and self.known else 0.0

    def sent(self, direction: int, ms: float, extra_ms: float = 0.0, limited: bool = False) -> None:
        """A Dec pulse of ``ms`` (including ``extra_ms`` of compensation) went out;
        ``limited``: its correction was cut to the pulse limit, so the star is still short
        of where it was sent and the next frame says nothing about the compensation (a
        dither's 5 px against 2.5 s at most: 0.5 px "short" each time grew the gap 3 %,
        which then overshot every reversal)."""
        if not direction or ms <= 0:
            return
        if not self.known:
            self.known = True
            self.pos_ms = self.gap_ms if direction > 0 else 0.0
            self._pending = None
            return
        self.pos_ms = min(max(self.pos_ms + direction * ms, 0.0), self.gap_ms)
        self._pending = (direction, extra_ms) if extra_ms > 0 and not limited else None

    def outcome(self, dec_error_px: float, rate_px_s: float, min_move_px: float) -> None:
        """The Dec error on the frame after a pulse (px; + wants a north pulse);
        adapts the gap when that pulse was compensated."""
        if self._pending is None or rate_px_s <= 0:
            self._pending = None
            return
        direction, _extra = self._pending
        self._pending = None
        # + : more of the same was needed (undershoot); - : overshoot.
        miss = dec_error_px * direction
        self._misses.append(miss)
        if abs(miss) < min_move_px or len(self._misses) < 2:
            return
        avg = sum(self._misses) / len(self._misses)
        if abs(avg) <= min_move_px or (avg > 0) != (miss > 0):
            return
        corr = abs(avg) / rate_px_s * 1000.0
        if miss > 0:
            new = min(self.gap_ms * 1.1, self.ceiling_ms, self.gap_ms + corr)
        else:
            new = max(self.gap_ms * 0.8, 0.0, self.gap_ms - corr)
        if new != self.gap_ms:
            if len(self._misses) > 2:
                self._misses.popleft()
            # Keep the gear's side: scale its place with the gap.
            frac = self.pos_ms / self.gap_ms if self.gap_ms > 0 else 0.5
            self.gap_ms = new
            self.pos_ms = frac * new
            self.adjustments += 1
