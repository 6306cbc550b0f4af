"""Everything worth knowing about one frame, as a plain dict."""

from __future__ import annotations

import math

import numpy as np

from ..frame import Frame
from . import levels
from . import histogram
from .stars import Star, background, bayer_star_sizes, bin_bayer, detect_stars

# frames above this many pixels get a background map (vignetting, gradients)
_MAP_ABOVE_PX = 2_500_000


def is_empty(frame: Frame) -> bool:
    """No image data at all: every pixel zero (or not finite)."""
    d = np.asarray(frame.data)
    if d.size == 0:
        return True
    if d.dtype.kind == "f":
        finite = np.isfinite(d)
        return not finite.any() or not np.any(d[finite])
    return not np.any(d)


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def axial_mean(angles_deg: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean of axial angles (a line at 10° is the line at 190°), in [0, 180)."""
    a = np.radians(np.asarray(angles_deg, float)) * 2.0
    w = np.ones_like(a) if weights is None else np.asarray(weights, float)
    c = float(np.sum(w * np.cos(a)))
    s = float(np.sum(w * np.sin(a)))
    return math.degrees(math.atan2(s, c) / 2.0) % 180.0


def measure_frame_stars(frame: Frame, *, threshold_sigma: float = 5.0, max_fit: int | None = None) -> list[Star]:
    """Stars of a frame in sensor pixel coordinates, brightest first.

    A Bayer mosaic (any pattern) is searched on its 2×2 super-pixel
    luminance (sum of each quad) and positions and half-flux radii are
    scaled back to sensor pixels; the trusted (``fitted``) stars' FWHM,
    elongation and angle are then measured on the full-resolution green
    pixels (:func:`fieldtui.imaging.stars.bayer_star_sizes`).
    """
    data = np.asarray(frame.data)
    plane_sat = None
    if data.ndim == 3:
        # an RGB stack: sum the colour planes, whichever axis they are on; a star is
        # saturated when any plane reaches the white level (the sum of planes exceeds it
        # long before)
        axis = 2 if data.shape[2] <= 4 else 0
        if frame.white_level and math.isfinite(frame.white_level):
            plane_sat = (data >= frame.white_level).any(axis=axis)
        data = data.sum(axis=axis, dtype=np.float32)
    big = data.size > _MAP_ABOVE_PX
    if max_fit is None:
        max_fit = 30
    if frame.bayer:
        lum = bin_bayer(data)
        h2, w2 = lum.shape
        white = frame.white_level
        sat = None
        if white:
            d = data[: h2 * 2, : w2 * 2]
            sat = d[0::2, 0::2] >= white
            sat |= d[0::2, 1::2] >= white
            sat |= d[1::2, 0::2] >= white
            sat |= d[1::2, 1::2] >= white
        stars = detect_stars(
            lum,
            threshold_sigma=threshold_sigma,
            max_fit=max_fit,
            saturated_pixels=sat,
            background_map_box=64 if big else None,
        )
        # super-pixel (i, j) covers sensor pixels 2i..2i+1: its centre is at 2i + 0.5
        stars = [s.scaled(2.0, 0.5) for s in stars]
        return bayer_star_sizes(data, stars, frame.bayer, white_level=white or None)
    return detect_stars(
        data,
        threshold_sigma=threshold_sigma,
        max_fit=max_fit,
        saturation=frame.white_level if frame.white_level else None,
        saturated_pixels=plane_sat,
        background_map_box=64 if big else None,
    )


def summarize_stars(stars: list[Star]) -> dict:
    """The frame's star size: medians over the stars that deserve trust.

    Those are the ``fitted`` stars of :func:`measure_frame_stars` (bright,
    unsaturated, isolated, not hot pixels, bell-shaped: see
    :func:`fieldtui.imaging.stars.detect_stars`); without any, the
    unsaturated stars (a defocused frame's rings), and without those none
    (``None``: a clipped star's width is the clipping's, not the star's).
    ``fwhm`` (of the fitted elliptical Gaussian, pixel box removed),
    ``hfr``/``hfd`` (flux-based) and ``elongation`` are in sensor pixels;
    ``stars_measured`` counts the trusted stars (0 when the figures come
    from the fallback, so no trailing advice rests on them).
    """
    trusted = [s for s in stars if s.fitted and not s.saturated]
    # a saturated star's flat top says nothing of the star size: only
    # saturated stars, no figure
    good = trusted or [s for s in stars if not s.saturated]
    out: dict = {
        "stars": len(stars),
        "stars_measured": len(trusted),
        "saturated_stars": sum(1 for s in stars if s.saturated),
        "hfr": _median([s.hfr for s in good]),
        "hfd": _median([s.hfd for s in good]),
        "fwhm": _median([s.fwhm for s in good]),
        "elongation": _median([s.elongation for s in good]),
        "elongation_pa": None,
        "snr": _median([s.snr for s in good]),
    }
    if good:
        e = np.array([s.elongation for s in good])
        pa = np.array([s.pa for s in good])
        out["elongation_pa"] = axial_mean(pa, np.maximum(e - 1.0, 1e-6))
    return out


def frame_metrics(frame: Frame, *, threshold_sigma: float = 5.0, stars: bool = True) -> dict:
    """Star, background and histogram metrics of one frame.

    Sizes are in sensor pixels; ``fwhm_arcsec`` is added when the frame
    knows its pixel size and focal length. An all-zero frame gives
    ``{"empty": True, ...}`` and no further measurement.

    The white level is first lowered to a clip found in the data
    (:func:`levels.settle_white`, which updates ``frame.white_level``);
    ``white_level_source`` and ``black_level_source`` say where each level
    came from ("declared"/"data"; "raw metadata", "PEDESTAL", "BLKLEVEL",
    "overscan", "estimated from the data", or None when the camera set it).
    A colour frame (height × width × 3) is measured per plane in data units.
    """
    levels.settle_white(frame)
    data = np.asarray(frame.data)
    colour = frame.meta.get("colour") or ("RGB" if data.ndim == 3 else None)
    out: dict = {
        "width": int(data.shape[1]) if data.ndim >= 2 else 0,
        "height": int(data.shape[0]) if data.ndim >= 1 else 0,
        "kind": frame.kind,
        "bayer": frame.bayer,
        "exposure": frame.exposure,
        "iso": frame.iso,
        "gain": frame.gain,
        "temperature": frame.temperature,
        "colour": colour,
        "black_level": frame.black_level,
        "black_level_source": frame.meta.get("black_level_source"),
        "white_level": frame.white_level,
        "white_level_source": frame.meta.get("white_level_source"),
        "white_level_declared": frame.meta.get("white_level_declared"),
        "calibrated": bool(frame.meta.get("calibrated")),
        "offset_setting": frame.meta.get("OFFSET"),
        "empty": is_empty(frame),
    }
    if out["empty"]:
        return out
    estimated = out["black_level_source"] == levels.BLACK_ESTIMATED
    hist = histogram.frame_histogram(data, frame.black_level, frame.white_level,
                                     frame.bayer if data.ndim == 2 else None, colour,
                                     clip_at=0.0 if estimated else None)
    if estimated:
        # the left edge is judged against a black level; an estimate cannot say
        for h in (hist, *(hist.get("channels") or {}).values()):
            h["left_edge_visible"] = None
    out.update(hist)
    plane = data if data.ndim == 2 else data.mean(axis=2, dtype=np.float32)
    level, rms = background(plane)
    out["background"] = level
    out["noise"] = rms
    if stars and frame.kind in ("light", "guide", "focus", "test"):
        st = measure_frame_stars(frame, threshold_sigma=threshold_sigma)
        out.update(summarize_stars(st))
        scale = frame.arcsec_per_px
        if scale and out.get("fwhm"):
            out["fwhm_arcsec"] = out["fwhm"] * scale
            out["hfr_arcsec"] = out["hfr"] * scale
    return out
