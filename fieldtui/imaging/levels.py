"""Where a frame's black and white (saturation) levels really are.

A file declares a white level (a raw file's ``white_level``, a FITS
``SATURATE`` key, or just the sample type: 65535 for 16 bits, 1.0 for
normalised floats), but sensors often clip below it: 12-bit data stored
in 16-bit FITS stop at 4095, raw files of many cameras clip a few per cent
below the declared white, a processed float frame stops at 1.0. What gives
the clip away is in the data: a **pile-up at the maximum**, many pixels at
(or within 0.1 % of) the largest value where a light source fading out
would leave one or two. :func:`clip_level` finds it; :func:`settle_white`
makes it the frame's ``white_level`` so saturation counts and the star
engine's saturated-star flags follow the real clip.

The black level is read where it is really known (raw metadata, a
``PEDESTAL``, keys that are ADU, an overscan region; see ``io.py``). When
nothing says, :func:`estimate_black` gives what the data allow: 0 when the
frame has a pile of zeros (the zero *is* the floor), otherwise an upper
bound from the darkest pixels; the frame's ``meta["black_level_source"]``
then says ``"estimated from the data"`` so the advice can say so too.
"""

from __future__ import annotations

import math

import numpy as np

from ..frame import Frame

PILE_MIN_PIXELS = 5  # fewer pixels at the top is a star's peak, not a clip
PILE_RATIO = 4.0  # the top band holds this many times the density just below it
PILE_BAND = 0.001  # an integer clip may smear over 0.1 % of its level (per-channel black, rounding)
BELOW_BANDS = 10  # the density below is measured over this many band widths
DARKEST_PCT = 0.1  # the black-level bound: this percentile of the pixels
ZERO_PILE_PCT = 0.1  # this share of pixels exactly at 0 makes 0 the floor

BLACK_ESTIMATED = "estimated from the data"


def _finite_max(data: np.ndarray) -> float | None:
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        return float(finite.max()) if finite.size else None
    return float(data.max()) if data.size else None


def clip_level(data: np.ndarray, declared: float = math.inf) -> tuple[float, int] | None:
    """The level where the brightest pixels pile up, and how many pixels are in the pile.

    ``data``: any 2-D or 3-D numeric array (a mosaic, a mono frame or colour
    planes). ``declared``: the white level the file or camera claims; a clip
    at or above it is the declared one and not searched for.

    A pile-up is at least ``PILE_MIN_PIXELS`` pixels in the top band, the
    band holding ``PILE_RATIO`` times the pixel density of the ten band
    widths just below it. The band is the values within 0.1 % of the data
    maximum for integer data (a clip smeared by per-channel black levels or
    rounding) and the maximum itself for float data (a clip is an exact
    value there). The pile's level is the lowest value in the band that
    holds ``PILE_RATIO`` times the pixels an occupied value below holds on
    average. Returns ``(that level, pixels at or above it)``, or None when
    the brightest pixels fade out as light does.
    """
    a = np.asarray(data)
    if a.size == 0:
        return None
    top = _finite_max(a)
    if top is None or top >= declared:
        return None
    if a.dtype.kind in "ui":
        width = max(1.0, math.floor(PILE_BAND * abs(top)) + 1.0)  # values in the band
        lo = top - width + 1.0
        below_lo = lo - BELOW_BANDS * width
        near = a[a >= below_lo]
        in_band = near[near >= lo]
        n_band = int(in_band.size)
        n_below = int(near.size) - n_band
        expected = n_below / BELOW_BANDS
        if n_band >= PILE_MIN_PIXELS and n_band >= PILE_RATIO * max(expected, 1.0):
            # the pile's own values: those far above the density per occupied value below
            below = near[near < lo]
            per_value = below.size / max(np.unique(below).size, 1) if below.size else 0.0
            values, counts = np.unique(in_band, return_counts=True)
            piled = values[counts >= max(2.0, PILE_RATIO * per_value)]
            level = float(piled.min()) if piled.size else top
            return level, int(np.count_nonzero(in_band >= level))
        return None
    # float: the clip is the exact maximum; the density below is per 0.1 % of the level
    step = PILE_BAND * max(abs(top), 1e-30)
    near = a[(a >= top - BELOW_BANDS * step) & np.isfinite(a)]
    n_top = int(np.count_nonzero(near == top))
    expected = (near.size - n_top) / BELOW_BANDS
    if n_top >= PILE_MIN_PIXELS and n_top >= PILE_RATIO * max(expected, 1.0):
        return top, n_top
    return None


def near_white(data: np.ndarray, declared: float) -> tuple[float, int] | None:
    """Pixels within 0.1 % below a finite declared white level, too few for a pile-up:
    a clip smeared by dark subtraction in the camera (Seestar subs stop at 65495–65511
    of 65535). Returns ``(the lowest such value, how many)`` or None."""
    a = np.asarray(data)
    if not math.isfinite(declared) or declared <= 0 or a.size == 0:
        return None
    lo = declared * (1.0 - PILE_BAND)
    top = _finite_max(a)
    if top is None or top < lo:
        return None
    band = a[(a >= lo) & (a < declared)]
    if band.size == 0:
        return None
    return float(band.min()), int(np.count_nonzero(a >= band.min()))


def declared_white(data: np.ndarray) -> float:
    """The white level the sample type implies: the integer maximum, 1.0 for
    floats normalised to 0..1, otherwise unknown (``inf``)."""
    a = np.asarray(data)
    if a.dtype.kind in "ui":
        return float(np.iinfo(a.dtype).max)
    top = _finite_max(a)
    if top is not None and top <= 1.0:
        return 1.0
    return math.inf


def settle_white(frame: Frame) -> Frame:
    """Lower ``frame.white_level`` to a clip found in the data, and say where it came from.

    Sets ``meta["white_level_declared"]`` (what the file or camera said) and
    ``meta["white_level_source"]`` (``"declared"`` or ``"data"``: a pile-up
    below the declared level, or pixels within 0.1 % below it, see
    :func:`near_white`; ``meta["saturated_pixels"]`` of them). Idempotent;
    returns the frame.
    """
    if "white_level_source" in frame.meta:
        return frame
    declared = float(frame.white_level) if frame.white_level else math.inf
    frame.meta["white_level_declared"] = declared
    found = clip_level(frame.data, declared) or near_white(frame.data, declared)
    if found is not None:
        frame.white_level, frame.meta["saturated_pixels"] = found
        frame.meta["white_level_source"] = "data"
    else:
        frame.meta["white_level_source"] = "declared"
    return frame


def zero_pile_pct(data: np.ndarray) -> float:
    """Percentage of pixels exactly at 0 (what a missing pedestal or a too-low offset leaves)."""
    a = np.asarray(data)
    return 100.0 * np.count_nonzero(a == 0) / max(a.size, 1)


def estimate_black(data: np.ndarray) -> float:
    """A black level from the data alone, for a frame whose file does not record one.

    0 when at least 0.1 % of the pixels are exactly 0 (the data were cut
    there: calibration without a pedestal, or an offset set too low);
    otherwise the 0.1th percentile of the pixels, an upper bound (read
    noise puts the darkest pixels within a few sigma of black, the sky
    lifts them above it). Same units as ``data``. A subsample of about a
    million pixels is used for large frames.
    """
    a = np.asarray(data)
    if zero_pile_pct(a) >= ZERO_PILE_PCT:
        return 0.0
    flat = a.reshape(-1)
    step = max(1, flat.size // 1_000_000)
    sample = flat[::step]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0
    if sample.dtype in (np.uint8, np.uint16):
        low = _low_order_pair(sample, DARKEST_PCT)
        if low is not None:
            return low
    return float(np.percentile(sample, DARKEST_PCT))


def _low_order_pair(sample: np.ndarray, pct: float) -> float | None:
    """``np.percentile(sample, pct)`` of 8- or 16-bit samples from a histogram (a
    bincount instead of a partial sort: ~3 ms instead of 10 for a million samples) when
    the two sorted values numpy interpolates between are equal (dense integer data: the
    answer is then that value, whatever the interpolation); None otherwise (the caller
    asks numpy)."""
    n = sample.size
    # numpy's "linear" method: virtual index (n − 1) × q, between its floor and the next
    pos = (n - 1) * (np.true_divide(pct, 100))
    k = int(np.floor(pos))
    k1 = min(k + 1, n - 1)
    cum = np.cumsum(np.bincount(sample))
    v, v1 = np.searchsorted(cum, [k + 1, k1 + 1])  # the k-th and k1-th smallest (from 0)
    return float(v) if v == v1 else None
