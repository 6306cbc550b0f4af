"""Pixel-wise combination of a stack of frames: median, or average with rejection.

The functions here work on one block of rows of ``N`` frames, shape
``(N, ...)`` (any trailing shape: rows × columns, or rows × columns ×
colour), so a caller bounds memory by feeding row chunks. ``NaN`` marks a
pixel a frame does not cover (outside its footprint after registration);
it takes no part in any statistic.

Rejection follows the definitions Siril documents for its stacking
(Siril manual, "Stacking" → "Pixel rejection"):

* ``sigma``: iterated sigma clipping around the median, with the standard
  deviation of the kept values;
* ``winsorized``: as ``sigma`` but the deviation is that of the values
  winsorized at median ± 1.5 σ (Huber's estimator, × 1.134 to stay
  unbiased for a Gaussian), robust when many frames are hit; with few
  values that estimate runs low (measured on Gaussian noise: 0.82 σ at
  4 values, 0.90 at 16, 0.95 at 32, 0.975 at 80), so it is multiplied by
  1 + 2/(n + 3.5): on 16 frames of pure noise (5 passes) the rejected
  fraction falls from 0.84 % to 0.45 % and the stack's noise over a plain
  mean from +4 % to +2 % (Siril 1.0.6 rejects 0.53 % a side on the
  benchmark's lights);
* for both, the deviation is never taken below the frames' noise pooled over
  the block (:func:`pooled_deviation`): estimated from one pixel's 16 values
  it is often low by chance, and every Gaussian value it then rejects pulls
  the mean by ~3σ/15 — rejection is one-sided at a pixel. On 16 frames of
  pure noise winsorized 3σ/3σ rejected 0.44 % of the values and raised the
  noise over a plain mean by 1.9 %; with the floor 0.12 % and 0.7 %, and a
  10σ cosmic-ray hit is still always rejected (a faint 4σ trail 51 % of the
  time instead of 58 %). On the benchmark's 16 lights (bilinear resampling)
  the stack's noise fell by 0.8 % per pixel, 0.7 % on 4×4 and 1.2 % on 16×16
  blocks; Siril 1.0.6, without such a floor, rejects 0.53 % a side there;
* ``linear``: a straight line fitted to the sorted values; values further
  than k × the mean absolute deviation from the line are rejected (best
  with many frames and a sky that changes through the night). The line
  follows sorted Gaussian values closely, so its deviation is small:
  use k ≈ 5 (at 3 it rejects ~5 % of pure noise and loses 13 % of the
  signal-to-noise ratio on 25 frames; at 5, 0.8 % and 3 %).

The values of each pixel are sorted once (with their frame weights); every
rejection above removes values from the two ends of the sorted list only,
so the kept set is a contiguous run ``[lo, hi)``. The kernel is compiled
with numba and runs pixels in parallel: on 2 cores it combines 20 frames
of 60 000 pixels in ~10 ms, against 180 ms (sigma) to 900 ms
(winsorized) for the same algorithm vectorised in numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

REJECTIONS = ("none", "sigma", "winsorized", "linear")
METHODS = ("mean", "median")


@dataclass(frozen=True)
class Rejection:
    """How to reject outliers before averaging.

    ``kind`` is one of :data:`REJECTIONS`; ``low``/``high`` are the
    thresholds in units of the deviation below and above the centre;
    ``iterations`` bounds the clipping passes.
    """

    kind: str = "winsorized"
    low: float = 3.0
    high: float = 3.0
    iterations: int = 5

    def __post_init__(self) -> None:
        if self.kind not in REJECTIONS:
            raise ValueError(f"rejection must be one of {', '.join(REJECTIONS)}, not {self.kind!r}")
        if not (self.low > 0 and self.high > 0):
            raise ValueError("rejection thresholds must be positive")


_KIND = {"none": 0, "sigma": 1, "winsorized": 2, "linear": 3}


@numba.njit(cache=True, nogil=True)
def _pixel(v, w, r, c1, c2, m, kind, k_lo, k_hi, iters, use_median, floor):
    """Combine the ``m`` finite values ``v[:m]`` (weights ``w[:m]``, their frames' relative
    noise ``r[:m]``), sorting the three in place; ``c1``, ``c2`` (length ≥ m + 1) are scratch
    for prefix sums of v and v²; ``floor`` the least deviation sigma and winsorized clipping
    use (0: none). Returns (value, number rejected)."""
    # insertion sort of (v, w, r) by v: N is tens, this beats a general sort
    for i in range(1, m):
        x = v[i]
        y = w[i]
        z = r[i]
        j = i - 1
        while j >= 0 and v[j] > x:
            v[j + 1] = v[j]
            w[j + 1] = w[j]
            r[j + 1] = r[j]
            j -= 1
        v[j + 1] = x
        w[j + 1] = y
        r[j + 1] = z
    if m == 0:
        return np.nan, 0
    if use_median:
        if m % 2:
            return v[m // 2], 0
        return 0.5 * (v[m // 2 - 1] + v[m // 2]), 0
    lo = 0
    hi = m
    if kind != 0:
        # prefix sums relative to the median (no cancellation in float64)
        ref = v[(m - 1) // 2]
        c1[0] = 0.0
        c2[0] = 0.0
        for i in range(m):
            d = v[i] - ref
            c1[i + 1] = c1[i] + d
            c2[i + 1] = c2[i] + d * d
        for _ in range(iters):
            n = hi - lo
            if n < 3:
                break
            med = 0.5 * (v[lo + (n - 1) // 2] + v[lo + n // 2])
            new_lo = lo
            new_hi = hi
            if kind == 3:
                rm = 0.5 * (n - 1)
                s = 0.0
                sxy = 0.0
                for i in range(lo, hi):
                    s += v[i]
                    sxy += (i - lo - rm) * v[i]
                sxx = n * (n * n - 1) / 12.0
                slope = sxy / sxx
                icpt = s / n - slope * rm
                dev = 0.0
                for i in range(lo, hi):
                    dev += abs(v[i] - (icpt + slope * (i - lo)))
                dev /= n
                while new_lo < new_hi and v[new_lo] < icpt + slope * (new_lo - lo) - k_lo * dev:
                    new_lo += 1
                while new_hi > new_lo and v[new_hi - 1] > icpt + slope * (new_hi - 1 - lo) + k_hi * dev:
                    new_hi -= 1
            else:
                s1 = c1[hi] - c1[lo]
                s2 = c2[hi] - c2[lo]
                mean = s1 / n
                sd = np.sqrt(max(s2 - n * mean * mean, 0.0) / (n - 1))
                if kind == 2:
                    mr = med - ref
                    for _w in range(10):
                        a = mr - 1.5 * sd
                        b = mr + 1.5 * sd
                        ia = lo
                        while ia < hi and v[ia] - ref < a:
                            ia += 1
                        ib = hi
                        while ib > ia and v[ib - 1] - ref > b:
                            ib -= 1
                        na = ia - lo
                        nb = hi - ib
                        ws = na * a + (c1[ib] - c1[ia]) + nb * b
                        ws2 = na * a * a + (c2[ib] - c2[ia]) + nb * b * b
                        wm = ws / n
                        nsd = 1.134 * np.sqrt(max(ws2 - n * wm * wm, 0.0) / (n - 1))
                        if abs(nsd - sd) <= 5e-4 * sd:
                            sd = nsd
                            break
                        sd = nsd
                    # small-sample bias: around a median of n values, the winsorized
                    # deviation comes out low (0.90 σ at n = 16, 0.95 at 32), which
                    # rejected ~3× the nominal fraction and cost 3 % of the stack's SNR
                    sd *= 1.0 + 2.0 / (n + 3.5)
                if sd < floor:
                    sd = floor
                # each value against its own frame's noise (rejection peels the ends only)
                while new_lo < new_hi and v[new_lo] < med - k_lo * sd * r[new_lo]:
                    new_lo += 1
                while new_hi > new_lo and v[new_hi - 1] > med + k_hi * sd * r[new_hi - 1]:
                    new_hi -= 1
            if new_hi <= new_lo:  # never reject everything: keep the middle value
                mid = lo + (n - 1) // 2
                new_lo = mid
                new_hi = mid + 1
            if new_lo == lo and new_hi == hi:
                break
            lo = new_lo
            hi = new_hi
    num = 0.0
    den = 0.0
    for i in range(lo, hi):
        num += w[i] * v[i]
        den += w[i]
    if den <= 0:
        return np.nan, m - (hi - lo)
    return num / den, m - (hi - lo)


@numba.njit(parallel=True, cache=True, nogil=True)
def _combine_rows(flat, weights, rel, kind, k_lo, k_hi, iters, use_median, floors, nfloor, out, nrej):
    n, p = flat.shape
    block = 1024
    nblocks = (p + block - 1) // block
    for b in numba.prange(nblocks):
        v = np.empty(n, np.float64)
        w = np.empty(n, np.float64)
        r = np.empty(n, np.float64)
        c1 = np.empty(n + 1, np.float64)
        c2 = np.empty(n + 1, np.float64)
        for q in range(b * block, min(p, (b + 1) * block)):
            m = 0
            for i in range(n):
                x = flat[i, q]
                if np.isfinite(x):
                    v[m] = x
                    w[m] = weights[i]
                    r[m] = rel[i]
                    m += 1
            res, k = _pixel(v, w, r, c1, c2, m, kind, k_lo, k_hi, iters, use_median, floors[q % nfloor])
            out[q] = res
            nrej[q] = k


def combine(
    block: np.ndarray,
    *,
    method: str = "mean",
    rejection: Rejection | None = None,
    weights: np.ndarray | None = None,
    return_rejected: bool = False,
    floor: str | float | np.ndarray | None = "pooled",
    noise: np.ndarray | None = None,
):
    """Combine ``block`` (shape ``(N, *S)``, float) over its first axis.

    ``method`` ``"median"`` takes the median of the finite values;
    ``"mean"`` the weighted average (``weights``, shape ``(N,)``, default
    equal) of the values that survive ``rejection`` (default winsorized
    3σ/3σ). A pixel no frame covers is NaN. Returns an array of shape
    ``S`` (float32), and with ``return_rejected`` also the number of
    values rejected at each pixel (int16, shape ``S``). Runs on every core
    (numba, one pixel at a time: sort, clip, average).

    ``floor`` is the least deviation sigma and winsorized clipping use:
    ``"pooled"`` (default) the frames' noise measured on the block
    (:func:`pooled_deviation`, per channel for a ``(N, rows, columns,
    channels)`` block), a number, one number per channel (the last axis),
    or None (the pixel's own estimate alone, as Siril). ``noise`` (shape
    ``(N,)``, any unit) is each frame's per-pixel noise when they differ
    (resampling smooths each frame by its own sub-pixel shift: the
    reference, not resampled, has 1.5× the others' noise per pixel with
    bilinear): sigma and winsorized clipping then hold each value to k ×
    its own frame's share of the deviation (the noise ÷ its rms over the
    frames), where one threshold for all would reject the noisiest frame's
    honest values — a loss on every scale, as those frames are no noisier
    on scales of a few pixels.

    Raises ValueError for an unknown method, a weights or noise length ≠ N,
    a noise that is not positive or a floor of another length.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    block = np.asarray(block)
    n = block.shape[0]
    shape = block.shape[1:]
    flat = np.ascontiguousarray(block.reshape(n, -1), dtype=np.float32)
    rej = rejection or Rejection()
    if weights is None:
        w = np.ones(n, np.float64)
    else:
        w = np.asarray(weights, np.float64)
        if w.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    p = flat.shape[1]
    out = np.empty(p, np.float32)
    nrej = np.empty(p, np.int16)
    if isinstance(floor, str):
        if floor != "pooled":
            raise ValueError(f"floor must be 'pooled', a number, per-channel numbers or None, not {floor!r}")
        floors = pooled_deviation(block) if rej.kind in ("sigma", "winsorized") and method == "mean" else None
    else:
        floors = floor
    floors = np.zeros(1) if floors is None else np.atleast_1d(np.asarray(floors, np.float64))
    if floors.ndim != 1 or p % len(floors):
        raise ValueError(f"floor must be one number or one per channel (the last axis), got shape {floors.shape}")
    if noise is None:
        rel = np.ones(n, np.float64)
    else:
        rel = np.asarray(noise, np.float64)
        if rel.shape != (n,) or not (rel > 0).all():
            raise ValueError(f"noise must be {n} positive numbers, got {rel}")
        rel = rel / math.sqrt(float(np.mean(rel * rel)))
    _combine_rows(flat, w, rel, _KIND[rej.kind], float(rej.low), float(rej.high), int(rej.iterations),
                  method == "median", np.nan_to_num(floors), len(floors), out, nrej)
    if return_rejected:
        return out.reshape(shape), nrej.reshape(shape)
    return out.reshape(shape)


def pooled_deviation(block: np.ndarray, samples: int = 20000) -> np.ndarray:
    """The standard deviation of one frame's value of a pixel, pooled over the pixels of
    ``block`` (shape ``(N, *S)``; a block of four or more axes is ``(N, rows, columns,
    channels)`` and gets one figure per channel): the robust rms of the differences between
    consecutive frames' values of the same pixel, ÷ √2, on up to ``samples`` pixels spread
    over the block. A difference cancels the signal, so stars and gradients do not count;
    outliers (a cosmic ray, a trail) spoil two differences of one pixel and the median
    ignores them. Returns ``(C,)`` float64 (C = 1 for a block of fewer than four axes),
    0 where it cannot be measured (fewer than two frames or no finite pair)."""
    block = np.asarray(block)
    n = block.shape[0]
    nch = block.shape[-1] if block.ndim >= 4 else 1
    out = np.zeros(nch)
    if n < 2:
        return out
    v = block.reshape(n, -1, nch)
    step = max(1, v.shape[1] // samples)
    for c in range(nch):
        sub = v[:, ::step, c]
        d = np.abs(sub[1:] - sub[:-1]).ravel()
        d = d[np.isfinite(d)]
        if d.size:
            out[c] = 1.4826 * float(np.median(d)) / math.sqrt(2.0)
    return out


def rows_per_chunk(n_frames: int, row_pixels: int, budget_bytes: int = 128 * 2**20) -> int:
    """How many rows of ``n_frames`` frames (``row_pixels`` values per row, all
    planes) fit one combination pass in ``budget_bytes`` (the float32 block
    and its warped sources: about 8 bytes per value)."""
    per_row = max(1, n_frames) * max(1, row_pixels) * 8
    return max(1, int(budget_bytes // per_row))
