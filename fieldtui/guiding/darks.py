"""Guide-camera darks and bad-pixel map: pure numpy, no files.

A guide camera is small and uncooled: its hot pixels are bright, fixed
points that a star search can take for a star and a centroid can be pulled
by.  As PHD2 does (its dark library and defect map), the guider takes a few
dark frames per exposure and gain with the scope covered, keeps their
median (the master dark), subtracts it from every guide frame, and maps the
pixels whose dark signal stands far above the rest (hot) so they are
replaced by their neighbours' median and can never become a guide star.

Storage (a file per exposure and gain, written atomically) is the service's
business: :mod:`fieldtui.service.guide_darks`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np

HOT_SIGMA = 8.0  # a pixel's dark this many robust sigmas above the median is hot


@dataclass
class GuideDark:
    """A master dark and its bad-pixel map for one exposure and gain.

    ``dark``: (h, w) float32 ADU (bias included); ``bad``: (h, w) bool, True
    for a hot pixel; ``frames``: how many darks the median took."""

    exposure_s: float
    gain: int
    dark: np.ndarray
    bad: np.ndarray
    frames: int = 0
    temperature_c: float | None = None

    @property
    def hot_pixels(self) -> int:
        return int(self.bad.sum())

    @cached_property
    def level(self) -> np.float32:
        """The master dark's median (ADU), added back after the subtraction: computed
        once (a median of a 1280x960 frame costs ~8 ms, on every guide frame before)."""
        return np.float32(np.median(self.dark))

    @cached_property
    def neighbours(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The bad pixels and their 3x3 neighbourhoods, found once for the dark (they
        are the same on every guide frame): ``(ys, xs)`` (n,) the bad pixels, ``(yy,
        xx)`` (n, 9) their neighbours' indices (clipped to the frame) and ``good``
        (n, 9) True for a neighbour inside the frame and not itself bad."""
        h, w = self.bad.shape
        ys, xs = np.divmod(np.flatnonzero(self.bad), w)
        oy, ox = np.mgrid[-1:2, -1:2]
        yy = ys[:, None] + oy.ravel()[None, :]
        xx = xs[:, None] + ox.ravel()[None, :]
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        yy, xx = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
        return ys, xs, yy, xx, inside & ~self.bad[yy, xx]


def master_dark(frames: list[np.ndarray]) -> np.ndarray:
    """Pixel-wise median of dark frames, each (h, w); float32 (h, w).

    Raises ValueError for no frames or frames of different shapes."""
    if not frames:
        raise ValueError("no dark frames")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError("dark frames of different sizes")
    return np.median(np.stack([np.asarray(f, dtype=np.float32) for f in frames]), axis=0).astype(np.float32)


def bad_pixel_map(dark: np.ndarray, sigma: float = HOT_SIGMA, min_adu: float = 3.0) -> np.ndarray:
    """Hot pixels of a master ``dark`` (h, w): above the median by ``sigma``
    robust standard deviations (1.4826 x the median absolute deviation) and
    by at least ``min_adu``.  Returns (h, w) bool."""
    d = np.asarray(dark, dtype=np.float32)
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * 1.4826
    return d > med + max(sigma * mad, min_adu)


def make_guide_dark(frames: list[np.ndarray], exposure_s: float, gain: int,
                    temperature_c: float | None = None) -> GuideDark:
    """Master dark and bad-pixel map from dark frames (each (h, w))."""
    dark = master_dark(frames)
    return GuideDark(exposure_s, gain, dark, bad_pixel_map(dark), len(frames), temperature_c)


def apply_dark(data: np.ndarray, gd: GuideDark | None) -> np.ndarray:
    """A guide frame (h, w) with the master dark subtracted (its median added
    back, so the frame keeps its pedestal) and every bad pixel replaced by the
    median of its good neighbours (3x3).  Returns float32 (h, w); the frame
    unchanged (as float32) when ``gd`` is None.  Raises ValueError when the
    dark is for another frame size (a binned or cropped frame)."""
    img = np.asarray(data, dtype=np.float32)
    if gd is None:
        return img
    if gd.dark.shape != img.shape:
        raise ValueError(f"the guide dark is {gd.dark.shape[1]}x{gd.dark.shape[0]}, the frame "
                         f"{img.shape[1]}x{img.shape[0]}: take darks for this frame size")
    out = img - gd.dark
    out += gd.level
    ys, xs, yy, xx, good = gd.neighbours
    if len(ys):
        # The 3x3 neighbourhoods of every bad pixel: (n, 9) values; a neighbour
        # outside the frame or itself bad does not count.
        vals = np.where(good, out[yy, xx], np.nan)
        with warnings.catch_warnings():  # a pixel with no good neighbour: NaN, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            rep = np.nanmedian(vals, axis=1) if good.any() else np.full(len(ys), np.nan)
        lost = np.isnan(rep)
        if lost.any():  # a cluster of bad pixels: the frame's median
            rep[lost] = np.median(out)
        out[ys, xs] = rep.astype(np.float32)
    return out


def nearest(darks: list[GuideDark], exposure_s: float, gain: int) -> GuideDark | None:
    """The dark for this gain whose exposure is closest (in ratio) to
    ``exposure_s``, or None when there is none for the gain."""
    same = [d for d in darks if d.gain == gain]
    if not same:
        return None
    return min(same, key=lambda d: abs(np.log(max(d.exposure_s, 1e-6) / max(exposure_s, 1e-6))))
