"""Histogram statistics of raw frames: clipping, saturation, median, mode,
and whether the left edge of the distribution was recorded.

Percentages of clipped and saturated pixels are exact counts over every
pixel of the channel. For integer data the median, mode and percentiles
come from the exact histogram; float data use percentiles of the values.

**Clipped at black** counts the pixels the camera or the software could not
record: those at the lowest value of the data when that value is at or
below the black level (the ADC's zero, a camera that cuts at black, or a
calibration that cut negative values to 0), and a pile exactly at the black
level when a few dead pixels sit lower. Pixels merely below the black
level are read noise, recorded faithfully; ``below_black_pct`` counts
those. **Saturated** counts pixels at or above the white level, which
``levels.settle_white`` has already lowered to a clip found in the data.

**Left edge visible.** A well exposed light frame records the whole rising
(left) edge of the sky's histogram above the black level. Concretely: the
0.5th percentile must sit at least one "left width" above the black level,
where the left width is ``median - 15.87th percentile`` (one sigma of a
Gaussian sky), and fewer than 0.5 % of the pixels may be clipped at black.
For a Gaussian sky of sigma ``s`` that means the peak sits at least
``3.6 s`` above black.
"""

from __future__ import annotations

import numpy as np

LEFT_EDGE_PCT = 0.5
MAX_CLIPPED_FOR_EDGE = 0.5  # percent


def bayer_channels(data: np.ndarray, pattern: str) -> dict[str, np.ndarray]:
    """The four colour planes of a Bayer mosaic, named from ``pattern`` (e.g. "RGGB").

    The two greens are called G1 (the first in the pattern's reading order: in
    the first row, for RGGB the row with red, for BGGR the row with blue) and G2.
    """
    pattern = pattern.upper()
    if len(pattern) != 4 or set(pattern) - set("RGB"):
        raise ValueError(f"not a Bayer pattern: {pattern!r}")
    names: list[str] = []
    greens = 0
    for c in pattern:
        if c == "G":
            greens += 1
            names.append(f"G{greens}")
        else:
            names.append(c)
    offsets = [(0, 0), (0, 1), (1, 0), (1, 1)]
    return {name: data[dy::2, dx::2] for name, (dy, dx) in zip(names, offsets)}


def _int_hist(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact histogram of integer values: counts and the value of bin 0."""
    v = values.ravel()
    lo = int(v.min())
    if lo < 0:
        return np.bincount(v.astype(np.int64) - lo), lo
    return np.bincount(v), 0


def _hist_percentile(cum: np.ndarray, total: int, pct: float) -> float:
    target = pct / 100.0 * total
    i = int(np.searchsorted(cum, target, side="left"))
    return float(min(i, len(cum) - 1))


def _spike(hist: np.ndarray, i: int) -> bool:
    """Whether ``hist[i]`` is a pile: at least 5 pixels and 4× the mean of the next 3 values up."""
    nxt = hist[i + 1 : i + 4]
    return bool(hist[i] >= 5 and hist[i] >= 4.0 * max(float(nxt.mean()) if nxt.size else 0.0, 1.0))


def _finish(n, clipped, below, floor, saturated, p, mode, mean, black, min_spread) -> dict:
    spread = max(p[50.0] - p[15.865], min_spread)
    right = max(p[84.135] - p[50.0], min_spread)
    margin = (p[LEFT_EDGE_PCT] - black) / spread
    clipped_pct = 100.0 * clipped / n
    return {
        "pixels": int(n),
        "clipped_black_pct": clipped_pct,
        "below_black_pct": 100.0 * below / n,
        "floor": float(floor),
        "zero_pct": 100.0 * clipped / n if floor == 0 else 0.0,
        "saturated_pct": 100.0 * saturated / n,
        "right_width": right,
        "median": p[50.0],
        "mode": mode,
        "mean": mean,
        "p0_5": p[LEFT_EDGE_PCT],
        "left_width": spread,
        "left_edge_margin": float(margin),
        "left_edge_visible": bool(margin >= 1.0 and clipped_pct < MAX_CLIPPED_FOR_EDGE),
    }


def hist_stats(hist: np.ndarray, lo: int, black: float, white: float, clip_at: float | None = None) -> dict:
    """Statistics from an exact integer histogram (``hist[i]`` counts value ``lo + i``).

    ``clip_at`` (default ``black``): the lowest value counts as clipped when it is at or below this.
    """
    n = int(hist.sum())
    if n == 0:
        raise ValueError("no pixels")
    values = np.arange(hist.size, dtype=np.float64) + lo
    below = int(hist[values <= black].sum())
    first = int(np.flatnonzero(hist)[0])
    floor = float(first + lo)
    cut = black if clip_at is None else clip_at
    clipped = int(hist[first]) if floor <= cut else 0
    # a camera cutting at black piles pixels there even when a few dead ones sit lower
    b = int(round(cut)) - lo
    if b > first and b == cut - lo and b < hist.size and _spike(hist, b):
        clipped += int(hist[b])
    saturated = int(hist[values >= white].sum())
    cum = np.cumsum(hist)
    p = {q: _hist_percentile(cum, n, q) + lo for q in (LEFT_EDGE_PCT, 15.865, 50.0, 84.135)}
    spread = max(p[50.0] - p[15.865], 1.0)
    # mode of the histogram smoothed over about half a sigma (raw histograms comb)
    k = max(1, int(spread / 2))
    sm = np.convolve(hist, np.ones(k), mode="same") if k > 1 else hist
    # the sky's peak, not the spike of pixels clipped at black
    start = first + 1 if 0 < clipped < n else 0
    seg = sm[start:]
    mode = float(int(np.argmax(seg)) + start + lo) if seg.size and seg.max() > 0 else p[50.0]
    mean = float(np.dot(values, hist) / n)
    return _finish(n, clipped, below, floor, saturated, p, mode, mean, float(black), 1.0)


def stats(values: np.ndarray, black: float, white: float, clip_at: float | None = None) -> dict:
    """Statistics of one channel (or a mono frame) in data units; ``clip_at`` as in :func:`hist_stats`."""
    v = np.asarray(values)
    if v.size == 0:
        raise ValueError("no pixels")
    if np.issubdtype(v.dtype, np.integer):
        hist, lo = _int_hist(v)
        return hist_stats(hist, lo, black, white, clip_at)
    f = v[np.isfinite(v)].astype(np.float64)
    if f.size == 0:
        raise ValueError("no finite pixels")
    below = int(np.count_nonzero(f <= black))
    floor = float(f.min())
    cut = black if clip_at is None else clip_at
    clipped = int(np.count_nonzero(f == floor)) if floor <= cut else 0
    if floor < cut:
        at_cut = int(np.count_nonzero(f == cut))  # an exact value repeated is a cut in float data
        clipped += at_cut if at_cut >= 5 else 0
    saturated = int(np.count_nonzero(f >= white))
    qs = (LEFT_EDGE_PCT, 15.865, 50.0, 84.135)
    p = dict(zip(qs, map(float, np.percentile(f, qs))))
    h, edges = np.histogram(f, bins=min(1024, max(16, f.size // 50)))
    i = int(np.argmax(h))
    mode = float(0.5 * (edges[i] + edges[i + 1]))
    return _finish(f.size, clipped, below, floor, saturated, p, mode, float(f.mean()), float(black),
                   1e-6 * max(1.0, abs(p[50.0])))


def colour_channels(data: np.ndarray, names: str = "RGB") -> dict[str, np.ndarray]:
    """The planes of a colour frame stored height × width × planes, named from ``names``."""
    return {name: data[..., i] for i, name in enumerate(names[: data.shape[-1]])}


def frame_histogram(data: np.ndarray, black: float, white: float, bayer: str | None,
                    colour: str | None = None, clip_at: float | None = None) -> dict:
    """Whole-frame stats plus one entry per colour channel.

    ``data``: a mono frame or a Bayer mosaic named by ``bayer`` (height ×
    width), or a colour frame (height × width × planes, planes named by
    ``colour``, e.g. "RGB"). The whole-frame figures are over every pixel
    of every channel, in data units (a colour frame's planes are not summed).
    ``clip_at`` as in :func:`hist_stats` (0 when the black level is only an estimate).
    """
    data = np.asarray(data)
    if data.ndim == 3:
        planes = colour_channels(data, colour or "RGB")
    elif bayer:
        planes = bayer_channels(data, bayer)
    else:
        return stats(data, black, white, clip_at)
    if not np.issubdtype(data.dtype, np.integer):
        out = stats(data, black, white, clip_at)
        out["channels"] = {name: stats(ch, black, white, clip_at) for name, ch in planes.items()}
        return out
    # one exact histogram per channel; the frame's is their sum
    hists = {name: _int_hist(ch) for name, ch in planes.items()}
    lo = min(l for _, l in hists.values())
    size = max(h.size + l - lo for h, l in hists.values())
    total = np.zeros(size, dtype=np.int64)
    for h, l in hists.values():
        total[l - lo : l - lo + h.size] += h
    out = hist_stats(total, lo, black, white, clip_at)
    out["channels"] = {name: hist_stats(h, l, black, white, clip_at) for name, (h, l) in hists.items()}
    return out
