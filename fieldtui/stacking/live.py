"""Live stack: calibrated lights join a running stack as they arrive, so the preview
improves through the night.

Unlike :func:`.pipeline.stack` it cannot see all frames before combining, so
rejection is against the running statistics (Welford's running mean and
variance per pixel): once ``min_frames`` frames cover a pixel, a value more
than ``clip`` running σ away from the running mean is left out (satellite
trails, aeroplanes, cosmic rays). A Bayer frame is stacked on its 2×2
super-pixels (half the size, R, mean of the two G, B), which is a quarter of
the memory and plenty for a preview; the final stack is the pipeline's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import quality as qual
from .register import RegistrationError, match_stars, match_translation, refine, warp


def superpixels(mosaic: np.ndarray, bayer: str) -> np.ndarray:
    """Half-size RGB ``(H/2, W/2, 3)`` float32 from a Bayer mosaic: each 2×2 quad's R, mean G, B."""
    h, w = mosaic.shape[0] // 2 * 2, mosaic.shape[1] // 2 * 2
    out = np.zeros((h // 2, w // 2, 3), np.float32)
    for r in (0, 1):
        for c in (0, 1):
            ch = "RGB".index(bayer[2 * r + c])
            plane = mosaic[r:h:2, c:w:2]
            out[..., ch] += plane * np.float32(0.5 if ch == 1 else 1.0)
    return out


@dataclass
class LiveResult:
    """What became of one frame: ``accepted`` or not with ``reason``; ``frames`` in the stack."""

    accepted: bool
    frames: int
    reason: str = ""
    rotation_deg: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    quality: dict | None = None


class LiveStack:
    """A running, registered, outlier-rejecting mean of calibrated lights.

    ``bayer`` the frames' pattern (None for mono); ``clip`` the rejection
    threshold in running σ, applied once ``min_frames`` frames cover a
    pixel; ``max_fwhm`` leaves out frames with wider stars (sensor px);
    ``kernel`` the resampling kernel (bilinear, as the batch stack's default).
    Memory: three float32 planes of the stacked image (mean, M2, count).
    """

    def __init__(self, bayer: str | None = None, *, clip: float = 4.0, min_frames: int = 3,
                 max_fwhm: float | None = None, kernel: str = "linear"):
        self.bayer = bayer
        self.clip = clip
        self.min_frames = min_frames
        self.max_fwhm = max_fwhm
        self.kernel = kernel
        self.ref_xy: np.ndarray | None = None
        self.ref_q = None  # the reference's FrameQuality (windowed centroids, SNRs)
        self.shape: tuple[int, int] | None = None
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.count: np.ndarray | None = None
        self.frames = 0

    def _plane(self, data: np.ndarray) -> np.ndarray:
        if self.bayer:
            return superpixels(data, self.bayer)
        return np.asarray(data, np.float32)[..., None]

    def _to_plane(self, m: np.ndarray) -> np.ndarray:
        """A sensor-pixel transform as the same transform on super-pixels (x_s = (x − 0.5) / 2)."""
        if not self.bayer:
            return m
        s = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1.0]])
        si = np.linalg.inv(s)
        return (si @ np.vstack([m, [0, 0, 1.0]]) @ s)[:2]

    def add(self, calibrated: np.ndarray, white_level: float | None = None) -> LiveResult:
        """Measure, register and add one calibrated light ``(H, W)`` (raw layout);
        ``white_level`` the raw frame's clip level (:func:`.quality.measure`)."""
        q = qual.measure(calibrated, self.bayer, white_level=white_level)
        qd = q.as_dict()
        if self.max_fwhm is not None and math.isfinite(q.fwhm) and q.fwhm > self.max_fwhm:
            return LiveResult(False, self.frames, f"FWHM {q.fwhm:.2f} px above {self.max_fwhm:g}", quality=qd)
        plane = self._plane(calibrated)
        if self.mean is None:
            if q.stars < 6:
                return LiveResult(False, 0, f"only {q.stars} stars: not a reference", quality=qd)
            self.ref_xy = q.xy
            self.ref_q = q
            self.shape = plane.shape[:2]
            self.mean = plane.copy()
            self.m2 = np.zeros_like(plane)
            self.count = np.ones(plane.shape, np.float32)
            self.frames = 1
            return LiveResult(True, 1, quality=qd)
        try:
            reg = match_stars(self.ref_xy, q.xy)
            try:
                reg = refine(reg, self.ref_q.xy_fine, q.xy_fine, ref_snr=self.ref_q.snr, snr=q.snr)
            except (RegistrationError, ValueError):
                pass
        except RegistrationError as exc:
            try:
                reg = match_translation(self.ref_xy, q.xy)
            except RegistrationError:
                return LiveResult(False, self.frames, f"cannot be registered: {exc}", quality=qd)
        w = warp(plane, self._to_plane(reg.matrix), self.shape, kernel=self.kernel)
        w = w.reshape(self.mean.shape)
        ok = np.isfinite(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(self.m2 / np.maximum(self.count - 1, 1))
            out = (self.count >= self.min_frames) & (np.abs(w - self.mean) > self.clip * sd)
        use = ok & ~out
        # Welford's update where the value is used
        self.count += use
        delta = np.where(use, w - self.mean, 0).astype(np.float32)
        self.mean += np.where(use, delta / np.maximum(self.count, 1), 0).astype(np.float32)
        self.m2 += np.where(use, delta * (np.where(use, w, 0) - self.mean), 0).astype(np.float32)
        self.frames += 1
        return LiveResult(True, self.frames, rotation_deg=reg.rotation_deg, shift=reg.shift, quality=qd)

    def image(self) -> np.ndarray | None:
        """The stack so far: ``(h, w)`` mono or ``(h/2, w/2, 3)`` RGB super-pixels; NaN
        where no frame has covered a pixel. None before the first frame."""
        if self.mean is None:
            return None
        img = np.where(self.count > 0, self.mean, np.nan).astype(np.float32)
        return img[..., 0] if img.shape[2] == 1 else img
