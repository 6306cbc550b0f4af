"""The guiding assistant's analysis: what a few unguided minutes say about the mount and sky.

As PHD2's Guiding Assistant does, the guider watches the star for a few
minutes with no corrections (after a calibration, so the motion splits into
RA and Dec) and then measures the Dec backlash with a north and a south
leg.  From that:

* **the axes**: the calibration's, or, when the periodic error is clear, the
  direction the worm moves the star along (RA) and the one square to it (Dec):
  a calibration bent by a steep periodic error mixes the polar drift into RA;
* **seeing jitter**: the star's frame-to-frame scatter about lines through
  20-s windows, per axis, of what the fits below leave (what no guider can
  correct);
* **drift**: the slope of RA, fitted together with the periodic error (trend
  plus worm harmonics, the period refined under the final weights) so neither
  leaks into the other, and of Dec; both fits robust (Tukey's biweight), so a
  gust does not tilt them;
* **polar alignment error** from the Dec drift by Barrett's rule,
  error (′) ≈ 3.8 × Dec drift (″/min) / cos δ;
* **periodic error**: period and the worm fundamental's amplitude, from the
  same least-squares harmonic fit the predictive guider uses
  (:func:`fieldtui.guiding.predictive.fit_periodic`), on the RA axis
  (the star moves cos δ of it);
* **backlash** (:func:`fieldtui.guiding.backlash.measure_backlash`, the
  calibration's own measurement);

and recommends minimum moves, exposure, aggressiveness and a Dec mode.
Pure: arrays in, :class:`AssistantFindings` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .predictive import _local_residual, fit_periodic


@dataclass
class AssistantFindings:
    """What the assistant measured (arc-seconds, minutes and seconds as named)
    and what it recommends (``recommendations``: setting → value, ``advice``:
    sentences).  ``pe_*`` and ``polar_error_arcmin`` are None when not
    measurable (too short a run, unknown Dec); ``backlash`` is a
    :class:`~fieldtui.guiding.backlash.BacklashMeasurement` or None."""

    duration_s: float
    frames: int
    exposure_s: float
    jitter_ra_arcsec: float
    jitter_dec_arcsec: float
    ra_drift_arcsec_min: float
    dec_drift_arcsec_min: float
    polar_error_arcmin: float | None
    pe_period_s: float | None
    pe_amplitude_arcsec: float | None      # worm fundamental, ± on the RA axis
    pe_peak_to_peak_arcsec: float | None   # of the whole fitted periodic error, RA axis
    backlash: Any = None
    recommendations: dict[str, Any] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The findings as sentences for the screen and the guide log."""
        out = [f"Guiding assistant: {self.duration_s / 60:.1f} min unguided, {self.frames} frames of "
               f"{self.exposure_s:g} s",
               f"Seeing jitter {self.jitter_ra_arcsec:.2f}″ RA, {self.jitter_dec_arcsec:.2f}″ Dec (RMS)",
               f"Drift {self.ra_drift_arcsec_min:+.2f}″/min RA, {self.dec_drift_arcsec_min:+.2f}″/min Dec"
               + ("" if self.pe_period_s is not None else
                  " (the RA drift includes the periodic error: the run was shorter than a worm cycle)")]
        if self.polar_error_arcmin is not None:
            out.append(f"Polar alignment error about {self.polar_error_arcmin:.1f}′ (from the Dec drift)")
        if self.pe_period_s is not None and self.pe_amplitude_arcsec is not None:
            out.append(f"Periodic error ±{self.pe_amplitude_arcsec:.1f}″ (worm fundamental; "
                       f"{self.pe_peak_to_peak_arcsec:.1f}″ peak to peak) over {self.pe_period_s:.0f} s")
        else:
            out.append("Periodic error: not measured (run longer than 1.1 worm periods)")
        b = self.backlash
        if b is not None:
            out.append(f"Dec backlash {b.describe()}")
        else:
            out.append("Dec backlash: not measured")
        rec = ", ".join(f"{k} = {v}" for k, v in self.recommendations.items())
        if rec:
            out.append(f"Recommended: {rec}")
        out.extend(self.advice)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "duration_s", "frames", "exposure_s", "jitter_ra_arcsec", "jitter_dec_arcsec",
            "ra_drift_arcsec_min", "dec_drift_arcsec_min", "polar_error_arcmin", "pe_period_s",
            "pe_amplitude_arcsec", "pe_peak_to_peak_arcsec")}
        b = self.backlash
        d["backlash_arcsec"] = getattr(b, "backlash_arcsec", None) if b is not None else None
        d["backlash_ms"] = getattr(b, "backlash_ms", None) if b is not None else None
        d["recommendations"] = dict(self.recommendations)
        d["advice"] = list(self.advice)
        return d


def analyze_unguided(t: np.ndarray, ra_px: np.ndarray, dec_px: np.ndarray, *, pixel_scale: float,
                     dec_deg: float | None, exposure_s: float, backlash: Any = None,
                     min_frames: int = 30, camera_px: np.ndarray | None = None,
                     axes: tuple[tuple[float, float], tuple[float, float]] | None = None
                     ) -> AssistantFindings:
    """Findings from unguided star offsets along the mount axes.

    ``t`` (s, increasing), ``ra_px``, ``dec_px`` (px, the star's offset from
    where it started, as the guide steps give them), all shape (n,).  The
    drifts are the star's, along the calibrated axes (+: the way a guide
    step's positive RA / Dec offset points, i.e. corrected by East / South
    pulses); the RA one on the RA axis (divided by cos δ);
    ``pixel_scale`` ″/px; ``dec_deg`` the pointing's declination (None: no
    polar error, PE on the sky); ``backlash`` a BacklashMeasurement or None.

    ``camera_px`` (n, 2): the same offsets on the camera (px), and ``axes``: the
    calibration's RA and Dec vectors on the camera (the way West and North pulses move
    the star).  With them, when the periodic error is clear, the axes are taken from
    the star's own motion instead (:func:`axes_from_periodic_error`): only the RA axis
    carries the worm's error, so its direction on the camera is the RA axis and Dec is
    square to it.  A calibration run while a steep periodic error bent its RA legs
    (±45″/240 s: 11.7° from square, under the 12.5° warning) mixed the polar drift into
    the RA drift (0.23″/min for 0.50).
    Raises ValueError for fewer than ``min_frames`` frames."""
    t = np.asarray(t, dtype=float)
    ra = np.asarray(ra_px, dtype=float) * pixel_scale
    dec = np.asarray(dec_px, dtype=float) * pixel_scale
    if len(t) < min_frames:
        raise ValueError(f"only {len(t)} unguided frames: the assistant needs at least {min_frames}")
    t = t - t[0]
    if camera_px is not None and axes is not None:
        xy = np.asarray(camera_px, dtype=float) * pixel_scale
        own = axes_from_periodic_error(t, xy, axes)
        if own is not None:
            ra, dec = xy @ own[0], xy @ own[1]
    span = float(t[-1])
    cosd = abs(math.cos(math.radians(dec_deg))) if dec_deg is not None else 1.0
    cosd = max(cosd, 1e-3)

    # Dec: a straight line (polar drift); RA: trend + worm harmonics, fitted together so
    # the periodic error does not leak into the drift nor the drift into it; both robust
    # (:func:`_robust_fit`), so a gust's few seconds do not tilt the lines.
    a = np.column_stack([np.ones_like(t), t])
    dcoef, dres, dw = _robust_fit(a, dec)
    dec_drift = float(dcoef[1]) * 60.0
    fit = fit_periodic(t, ra, period_cycles=1.1)
    pe_period = pe_amp = pe_p2p = None
    if fit.coef is not None and fit.ok:
        from .predictive import _harmonic_design
        harmonics = (len(fit.coef) - 2) // 2
        pe_period, coef, rres, rw = _robust_periodic(t, ra, float(fit.period), harmonics)
        pe_amp = float(math.hypot(coef[2], coef[3])) / cosd
        tt = np.linspace(0.0, pe_period, 400)
        c = coef.copy()
        c[:2] = 0.0
        wave = _harmonic_design(tt, pe_period, harmonics) @ c
        pe_p2p = float(np.ptp(wave)) / cosd
        ra_slope = float(coef[1])
    else:
        rcoef, rres, rw = _robust_fit(a, ra)
        ra_slope = float(rcoef[1])
    ra_drift = ra_slope * 60.0 / cosd  # RA-axis ″/min (the star moves cos δ of it)
    # Seeing jitter: the scatter about local lines of what the fits leave (a steep
    # periodic error curves within the lines' 20 s: ±45″/240 s read 0.72″ for 0.50″),
    # without the frames a gust took.
    jit_ra = _local_residual(t[rw > 0], rres[rw > 0])
    jit_dec = _local_residual(t[dw > 0], dres[dw > 0])
    polar = 3.8 * abs(dec_drift) / cosd if dec_deg is not None else None

    f = AssistantFindings(span, len(t), exposure_s, jit_ra, jit_dec, ra_drift, dec_drift, polar,
                          pe_period, pe_amp, pe_p2p, backlash)
    _recommend(f, pixel_scale, cosd)
    return f


def axes_from_periodic_error(t: np.ndarray, xy: np.ndarray,
                             axes: tuple[tuple[float, float], tuple[float, float]]
                             ) -> tuple[np.ndarray, np.ndarray] | None:
    """The RA and Dec axes on the camera found from the star's own unguided motion: the
    worm's periodic error moves it along the RA axis only, so the direction of the
    periodic part of its camera track (trend plus harmonics fitted to x and y at the
    period found along the calibration's RA vector; the first singular vector of their
    harmonic coefficients) is the RA axis, and Dec is square to it.  Each keeps the sign
    of the calibration's vector in ``axes`` ((RA x, y), (Dec x, y)).  ``t`` (n,) s,
    ``xy`` (n, 2) camera offsets (px or arcsec).  Returns the unit vectors (e_ra, e_dec),
    shape (2,) each, or None when no periodic error is clear, or it does not move the
    star along one line."""
    from .predictive import _harmonic_design
    (rx, ry), (qx, qy) = axes
    n_ra = math.hypot(rx, ry)
    if n_ra <= 0 or len(t) < 30:
        return None
    along = xy @ np.array([rx, ry]) / n_ra
    fit = fit_periodic(t, along, period_cycles=1.1)
    if fit.coef is None or not fit.ok or fit.period is None:
        return None
    harmonics = (len(fit.coef) - 2) // 2
    d = _harmonic_design(t, float(fit.period), harmonics)
    cx, _, _ = _robust_fit(d, xy[:, 0])
    cy, _, _ = _robust_fit(d, xy[:, 1])
    u, sv, _ = np.linalg.svd(np.vstack([cx[2:], cy[2:]]))
    if sv[0] <= 0 or (len(sv) > 1 and sv[1] > 0.3 * sv[0]):
        return None
    e_ra = u[:, 0]
    if e_ra @ np.array([rx, ry]) < 0:
        e_ra = -e_ra
    e_dec = np.array([-e_ra[1], e_ra[0]])
    if e_dec @ np.array([qx, qy]) < 0:
        e_dec = -e_dec
    return e_ra, e_dec


def _robust_fit(a: np.ndarray, y: np.ndarray, iterations: int = 6,
                c: float = 4.685) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``y`` (n,) on the columns of ``a`` (n, k), reweighted with Tukey's
    biweight (``c`` times the residuals' robust scale, 1.4826 × their median absolute
    value): frames far off the model (a gust, a bad centroid) lose their weight.
    Returns the coefficients (k,), the residuals (n,) and the final weights (n,), 0
    for the frames left out.  Source: the textbook IRLS with Tukey's biweight (Holland
    and Welsch 1977)."""
    w = np.ones(len(y))
    coef = np.zeros(a.shape[1])
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
        r = y - a @ coef
        scale = 1.4826 * float(np.median(np.abs(r)))
        if scale <= 0:
            break
        u = r / (c * scale)
        w = np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)
    return coef, y - a @ coef, w


def _robust_periodic(t: np.ndarray, y: np.ndarray, period: float,
                     harmonics: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Trend plus ``harmonics`` harmonics at about ``period`` (s), robust (:func:`_robust_fit`),
    with the period refined on a fine grid (±1 %) under the robust weights: a period
    0.2 s off over 2.5 worm cycles of ±45″ left its error in the drift.  Returns (period,
    coefficients as :func:`~fieldtui.guiding.predictive._harmonic_design`'s columns,
    residuals, weights)."""
    from .predictive import _harmonic_design
    coef, r, w = _robust_fit(_harmonic_design(t, period, harmonics), y)
    sw = np.sqrt(w)
    best, best_sse = period, math.inf
    for p in np.linspace(0.99 * period, 1.01 * period, 81):
        d = _harmonic_design(t, float(p), harmonics)
        c, *_ = np.linalg.lstsq(d * sw[:, None], y * sw, rcond=None)
        rr = (y - d @ c) * sw
        sse = float(rr @ rr)
        if sse < best_sse:
            best, best_sse = float(p), sse
    coef, r, w = _robust_fit(_harmonic_design(t, best, harmonics), y)
    return best, coef, r, w


def _recommend(f: AssistantFindings, scale: float, cosd: float) -> None:
    """PHD2-like recommendations: minimum moves from the seeing jitter (0.65
    sigma, at least 0.1 px), a longer exposure when the jitter is large, the
    predictive RA guider for periodic error, and a one-direction Dec mode
    when a clear drift meets large backlash."""
    rec, adv = f.recommendations, f.advice
    rec["ra_min_move"] = round(max(0.1, 0.65 * f.jitter_ra_arcsec / scale), 2)
    rec["dec_min_move"] = round(max(0.1, 0.65 * f.jitter_dec_arcsec / scale), 2)
    jitter = math.hypot(f.jitter_ra_arcsec, f.jitter_dec_arcsec)
    if jitter > 1.5 and f.exposure_s < 2.0:
        rec["exposure_s"] = 2.0
        adv.append(f"The star jumps {jitter:.1f}″ from frame to frame: 2-4 s guide exposures "
                   "average the seeing out")
    else:
        rec["exposure_s"] = f.exposure_s
    if f.pe_amplitude_arcsec is not None and f.pe_amplitude_arcsec > 2.0 * max(jitter, 0.1):
        rec["ra_algorithm"] = "predictive"
        rec["ra_predictive_aggression"] = 0.2
        adv.append(f"The worm's periodic error (±{f.pe_amplitude_arcsec:.0f}″ over "
                   f"{f.pe_period_s:.0f} s) is predictable: the predictive RA guider follows it "
                   "ahead of time")
    elif f.pe_period_s is None:
        # Shorter than 1.1 worm periods: the periodic error is neither measured nor ruled
        # out, and what the run saw of it reads as RA drift (2 min of a ±15″/480-s worm:
        # -11″/min for 0.5″/min). No RA algorithm can be chosen from that.
        adv.append("Periodic error not measured: run the assistant for more than 1.1 worm "
                   "periods (the worm period is in the mount's manual) before choosing the RA "
                   "algorithm; the RA drift above includes part of a worm cycle")
    else:
        rec["ra_algorithm"] = "hysteresis"
        rec["ra_aggression"] = 0.7
    drift_clear = abs(f.dec_drift_arcsec_min) * f.duration_s / 60.0 > 3.0 * max(f.jitter_dec_arcsec, 0.05)
    b = f.backlash
    large = bool(getattr(b, "large", False)) if b is not None else False
    if drift_clear and large:
        # A positive Dec offset is corrected by south pulses (the engine's convention).
        rec["dec_mode"] = "south" if f.dec_drift_arcsec_min > 0 else "north"
        adv.append(f"Dec drifts steadily ({f.dec_drift_arcsec_min:+.2f}″/min) and the backlash is "
                   f"large: guide Dec {rec['dec_mode']} only so the Dec motor never reverses")
    else:
        rec["dec_mode"] = "auto"
    if large and b is not None:
        w = b.warning() if hasattr(b, "warning") else None
        if w:
            adv.append(w)
    if f.polar_error_arcmin is not None and f.polar_error_arcmin > 10.0:
        adv.append(f"Polar alignment is {f.polar_error_arcmin:.0f}′ off: redo it for less Dec drift "
                   "and field rotation")
