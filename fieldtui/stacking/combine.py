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
  blocks; Siril 1.0.6, without such a floor, rejects 0.53 % a side there.
  Where there is signal the floor grows with it (:func:`shot_noise`: the frames'
  variance grows by a measured slope per ADU of the pixel's median above the
  sky): a star's values are noisier than the sky's, and with the sky's floor
  its brightest ones were clipped four times as often as the sky's, pulling its
  peak down (the benchmark's stack: FWHM 3.34123 → 3.33889 px, noise unchanged);
* ``linear``: a straight line fitted to the sorted values; values further
  than k × the mean absolute deviation from the line are rejected (best
  with many frames and a sky that changes through the night). The line
  follows sorted Gaussian values closely, so its deviation is small:
  use k ≈ 5 (at 3 it rejects ~5 % of pure noise and loses 13 % of the
  signal-to-noise ratio on 25 frames; at 5, 0.8 % and 3 %).

The values of each pixel are sorted once (with their frame weights); every
rejection above removes values from the two ends of the sorted list only,
so the kept set is a contiguous run ``[lo, hi)``. The kernel is compiled
C (``_combine.c``, built by ``setup.py``; the same algorithm line for line),
run on pixel ranges in threads (it releases the GIL). Where the C extension
was not built, the same kernel compiled by numba runs instead (imported
only then). Why C rather than numba: numba and its LLVM cost ~130 MB of
resident memory in the stacking process (66 MB to import, 47-58 MB more
to load a cached kernel), 0.13 GB of the 0.24 GB the whole stack of 16
lights of 4.3 MP may use (0.7 × Siril's peak); the C kernel is ~40 KB and as
fast (16 frames × 400 000 pixels, winsorized, one core: C 16 ns a value,
numba 23; the same algorithm vectorised in numpy gave identical results at
117 ns a value, its winsorized deviation iterating over every value of
every pixel where the kernel steps along the sorted ends).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .. import _kernels

#: the digest of the ``_combine.c`` this module calls (a test checks it against the file):
#: a build from another source is left aside and numba runs until it is rebuilt, as
#: where no C compiler built it
COMBINE_SHA = "242692a8d1f09642"
_ckernel = _kernels.load("stacking._combine", COMBINE_SHA)

#: threads :func:`combine` splits its pixels over (``set_threads``)
_THREADS = max(1, os.cpu_count() or 1)


def set_threads(n: int) -> None:
    """Use at most ``n`` threads (≥ 1) in :func:`combine` (and numba's kernel, when it runs)."""
    global _THREADS
    _THREADS = max(1, int(n))
    if _ckernel is None or "numba" in __import__("sys").modules:
        try:
            import numba
            numba.set_num_threads(min(_THREADS, numba.config.NUMBA_NUM_THREADS))
        except (ImportError, ValueError):
            pass


def threads() -> int:
    """The number of threads :func:`combine` uses."""
    return _THREADS


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


def combine(
    block: np.ndarray,
    *,
    method: str = "mean",
    rejection: Rejection | None = None,
    weights: np.ndarray | None = None,
    return_rejected: bool = False,
    threads: int | None = None,
    floor: str | float | np.ndarray | None = "pooled",
    noise: np.ndarray | None = None,
):
    """Combine ``block`` (shape ``(N, *S)``, float) over its first axis.

    ``method`` ``"median"`` takes the median of the finite values;
    ``"mean"`` the weighted average (``weights``, shape ``(N,)``, default
    equal) of the values that survive ``rejection`` (default winsorized
    3σ/3σ). A pixel no frame covers is NaN. Returns an array of shape
    ``S`` (float32), and with ``return_rejected`` also the number of
    values rejected at each pixel (int16, shape ``S``). Runs on ``threads``
    threads (default :func:`threads`: every core unless :func:`set_threads`
    said otherwise), one pixel at a time: sort, clip, average.

    ``floor`` is the least deviation sigma and winsorized clipping use:
    ``"pooled"`` (default) the frames' noise measured on the block
    (:func:`pooled_deviation`, per channel for a ``(N, rows, columns,
    channels)`` block) raised at each pixel by the shot noise of its signal
    (:func:`shot_noise`), a number or one number per channel (the last axis)
    without that term, or None (the pixel's own estimate alone, as Siril).
    ``noise`` (shape
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
        signal = shot_noise(block, floors) if floors is not None else None
    else:
        floors, signal = floor, None
    floors = np.zeros(1) if floors is None else np.atleast_1d(np.asarray(floors, np.float64))
    if floors.ndim != 1 or p % len(floors):
        raise ValueError(f"floor must be one number or one per channel (the last axis), got shape {floors.shape}")
    slopes, levels = (np.zeros(len(floors)), np.zeros(len(floors))) if signal is None else signal
    slopes = np.ascontiguousarray(slopes, np.float64)
    levels = np.ascontiguousarray(levels, np.float64)
    if noise is None:
        rel = np.ones(n, np.float64)
    else:
        rel = np.asarray(noise, np.float64)
        if rel.shape != (n,) or not (rel > 0).all():
            raise ValueError(f"noise must be {n} positive numbers, got {rel}")
        rel = rel / math.sqrt(float(np.mean(rel * rel)))
    floors = np.ascontiguousarray(np.nan_to_num(floors), np.float64)
    if _ckernel is None:
        from ._combine_numba import _combine_rows
        _combine_rows(flat, w, rel, _KIND[rej.kind], float(rej.low), float(rej.high), int(rej.iterations),
                      method == "median", floors, len(floors), out, nrej, slopes, levels)
    else:
        args = (rel, _KIND[rej.kind], float(rej.low), float(rej.high), int(rej.iterations), method == "median",
                floors, len(floors))
        _run_c(flat, w, args, out, nrej, _THREADS if threads is None else max(1, int(threads)), (slopes, levels))
    if return_rejected:
        return out.reshape(shape), nrej.reshape(shape)
    return out.reshape(shape)


def _run_c(flat: np.ndarray, w: np.ndarray, args: tuple, out: np.ndarray, nrej: np.ndarray, nthreads: int,
           signal: tuple) -> None:
    """The C kernel on ``flat`` (N, P), its pixels split in ``nthreads`` ranges run at once."""
    n, p = flat.shape
    if nthreads <= 1 or p < 4096:
        _ckernel.combine_rows(flat, n, p, 0, p, w, *args, out, nrej, True, *signal)
        return
    from concurrent.futures import ThreadPoolExecutor
    edges = [p * i // nthreads for i in range(nthreads + 1)]
    with ThreadPoolExecutor(nthreads) as pool:
        for f in [pool.submit(_ckernel.combine_rows, flat, n, p, a, b, w, *args, out, nrej, True, *signal)
                  for a, b in zip(edges[:-1], edges[1:])]:
            f.result()


def pooled_deviation(block: np.ndarray, samples: int = 32768) -> np.ndarray:
    """The standard deviation of one frame's value of a pixel, pooled over the pixels of
    ``block`` (shape ``(N, *S)``; a block of four or more axes is ``(N, rows, columns,
    channels)`` and gets one figure per channel): the robust rms of the differences between
    consecutive frames' values of the same pixel, ÷ √2, from at most ``samples`` differences
    spread over the block (a few hundred kB of temporaries, whatever the block). A difference
    cancels the signal, so stars and gradients do not count; outliers (a cosmic ray, a
    trail) spoil two differences of one pixel and the median ignores them. Returns ``(C,)``
    float64 (C = 1 for a block of fewer than four axes), 0 where it cannot be measured
    (fewer than two frames or no finite pair)."""
    block = np.asarray(block)
    n = block.shape[0]
    nch = block.shape[-1] if block.ndim >= 4 else 1
    out = np.zeros(nch)
    if n < 2:
        return out
    v = block.reshape(n, -1, nch)
    step = max(1, -(-(n - 1) * v.shape[1] // samples))
    for c in range(nch):
        sub = v[:, ::step, c]
        d = np.subtract(sub[1:], sub[:-1], dtype=np.float32).ravel()
        np.abs(d, out=d)
        d = d[np.isfinite(d)]
        if d.size:
            out[c] = 1.4826 * float(np.median(d)) / math.sqrt(2.0)
    return out


#: the median of a χ² variable of one degree of freedom (d² / 2 over its variance, for the
#: difference d of two values of one pixel)
_CHI2_1_MEDIAN = 0.4549


def shot_noise(block: np.ndarray, floors: np.ndarray, pixels: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """How one frame's value of a pixel scatters more where there is signal: ``(slopes,
    levels)``, each ``(C,)`` float64 like :func:`pooled_deviation`'s ``floors`` (the
    frames' noise on the sky), such that the variance of a value at level ``m`` above
    ``level`` is ``floor² + slope · (m − level)``. Photon (shot) noise makes the variance
    grow with the signal (slope = ADU per electron, where the frames are in ADU); pixels
    of a star also differ from frame to frame by how each frame's resampling and seeing
    reshaped it, which this measures with it. From at most ``pixels`` pixels well above
    the sky in two frames (a cosmic ray hits only one): the squared differences of
    consecutive frames' values, χ²-scaled, less the floor's variance, over the pixel's
    median level above ``level`` (the median of the block's values); the slope is their
    median (0 when under 50 differences or for fewer than three frames).

    Why: the floor keeps rejection from cutting the sky's honest values where one pixel's
    few values give too low a deviation, but a star's pixels have more noise than the
    sky, and its brightest values are then cut the same way: the stars of a stack came
    out wider (the small mono benchmark: FWHM 3.34123 px with the sky floor alone,
    3.33875 without rejection, 3.33938 with this term; noise unchanged, 8.752 / 11.968
    / 12.794 → 8.749 / 11.962 / 12.795 per pixel / 4×4 / 16×16)."""
    block = np.asarray(block)
    n = block.shape[0]
    nch = block.shape[-1] if block.ndim >= 4 else 1
    slopes, levels = np.zeros(nch), np.zeros(nch)
    floors = np.broadcast_to(np.asarray(floors, np.float64), (nch,))
    if n < 3:
        return slopes, levels
    v = block.reshape(n, -1, nch)
    step = max(1, v.shape[1] // 65536)
    for c in range(nch):
        f0 = float(floors[c])
        sample = v[n // 2, ::step, c]
        sample = sample[np.isfinite(sample)]
        if not sample.size or not f0 > 0:
            continue
        level = float(np.median(sample))
        levels[c] = level
        a, b = v[n // 2, :, c], v[n // 2 - 1, :, c]
        idx = np.flatnonzero(np.minimum(a, b) > level + 5.0 * f0)  # NaN compares False
        if idx.size > pixels:
            idx = idx[:: -(-idx.size // pixels)]
        if idx.size < 4:
            continue
        x = v[:, idx, c].astype(np.float64)
        m = np.nanmedian(x, axis=0) - level
        d = x[1:] - x[:-1]
        ok = np.isfinite(d) & (m > 5.0 * f0)
        if ok.sum() < 50:
            continue
        mm = np.broadcast_to(m, d.shape)[ok]
        est = (d[ok] ** 2 / (2.0 * _CHI2_1_MEDIAN) - f0 * f0) / mm
        slopes[c] = max(0.0, float(np.median(est)))
    return slopes, levels


def rows_per_chunk(n_frames: int, row_pixels: int, budget_bytes: int = 128 * 2**20) -> int:
    """How many rows of ``n_frames`` frames (``row_pixels`` values per row, all
    planes) fit one combination pass in ``budget_bytes`` (the float32 block
    and its warped sources: about 8 bytes per value)."""
    per_row = max(1, n_frames) * max(1, row_pixels) * 8
    return max(1, int(budget_bytes // per_row))
