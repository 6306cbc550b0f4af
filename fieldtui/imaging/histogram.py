"""Histogram statistics of raw frames: clipping, saturation, median, mode,
and whether the left edge of the distribution was recorded.

Percentages of clipped and saturated pixels are exact counts over every
pixel of the channel. For integer data the median, mode and percentiles
come from the exact histogram; float data use percentiles of the values.

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


def _finish(n, clipped, saturated, p, mode, mean, black, min_spread) -> dict:
    spread = max(p[50.0] - p[15.865], min_spread)
    margin = (p[LEFT_EDGE_PCT] - black) / spread
    clipped_pct = 100.0 * clipped / n
    return {
        "pixels": int(n),
        "clipped_black_pct": clipped_pct,
        "saturated_pct": 100.0 * saturated / n,
        "median": p[50.0],
        "mode": mode,
        "mean": mean,
        "p0_5": p[LEFT_EDGE_PCT],
        "left_width": spread,
        "left_edge_margin": float(margin),
        "left_edge_visible": bool(margin >= 1.0 and clipped_pct < MAX_CLIPPED_FOR_EDGE),
    }


def hist_stats(hist: np.ndarray, lo: int, black: float, white: float) -> dict:
    """Statistics from an exact integer histogram (``hist[i]`` counts value ``lo + i``)."""
    n = int(hist.sum())
    if n == 0:
        raise ValueError("no pixels")
    values = np.arange(hist.size, dtype=np.float64) + lo
    clipped = int(hist[values <= black].sum())
    saturated = int(hist[values >= white].sum())
    cum = np.cumsum(hist)
    p = {q: _hist_percentile(cum, n, q) + lo for q in (LEFT_EDGE_PCT, 15.865, 50.0)}
    spread = max(p[50.0] - p[15.865], 1.0)
    # mode of the histogram smoothed over about half a sigma (raw histograms comb)
    k = max(1, int(spread / 2))
    sm = np.convolve(hist, np.ones(k), mode="same") if k > 1 else hist
    # the sky's peak, not the spike of pixels clipped at black
    start = int(max(0, np.floor(black) - lo + 1)) if clipped < n else 0
    seg = sm[start:]
    mode = float(int(np.argmax(seg)) + start + lo) if seg.size and seg.max() > 0 else p[50.0]
    mean = float(np.dot(values, hist) / n)
    return _finish(n, clipped, saturated, p, mode, mean, float(black), 1.0)


def stats(values: np.ndarray, black: float, white: float) -> dict:
    """Statistics of one channel (or a mono frame) in data units."""
    v = np.asarray(values)
    if v.size == 0:
        raise ValueError("no pixels")
    if np.issubdtype(v.dtype, np.integer):
        hist, lo = _int_hist(v)
        return hist_stats(hist, lo, black, white)
    f = v[np.isfinite(v)].astype(np.float64)
    if f.size == 0:
        raise ValueError("no finite pixels")
    clipped = int(np.count_nonzero(f <= black))
    saturated = int(np.count_nonzero(f >= white))
    pv = np.percentile(f, [LEFT_EDGE_PCT, 15.865, 50.0])
    p = dict(zip((LEFT_EDGE_PCT, 15.865, 50.0), map(float, pv)))
    h, edges = np.histogram(f, bins=min(1024, max(16, f.size // 50)))
    i = int(np.argmax(h))
    mode = float(0.5 * (edges[i] + edges[i + 1]))
    return _finish(f.size, clipped, saturated, p, mode, float(f.mean()), float(black), 1e-6 * max(1.0, abs(p[50.0])))


def frame_histogram(data: np.ndarray, black: float, white: float, bayer: str | None) -> dict:
    """Whole-frame stats plus, for a Bayer mosaic, one entry per colour channel."""
    data = np.asarray(data)
    if not bayer:
        return stats(data, black, white)
    planes = bayer_channels(data, bayer)
    if not np.issubdtype(data.dtype, np.integer):
        out = stats(data, black, white)
        out["channels"] = {name: stats(ch, black, white) for name, ch in planes.items()}
        return out
    # one exact histogram per channel; the frame's is their sum
    hists = {name: _int_hist(ch) for name, ch in planes.items()}
    lo = min(l for _, l in hists.values())
    size = max(h.size + l - lo for h, l in hists.values())
    total = np.zeros(size, dtype=np.int64)
    for h, l in hists.values():
        total[l - lo : l - lo + h.size] += h
    out = hist_stats(total, lo, black, white)
    out["channels"] = {name: hist_stats(h, l, black, white) for name, (h, l) in hists.items()}
    return out
