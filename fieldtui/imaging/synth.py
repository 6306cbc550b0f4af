"""Synthetic stars with known answers, for tests and benchmarks.

Stars are integrated over each pixel's area (as a real sensor does), so a
star rendered with FWHM ``f`` should measure ``f`` once the pixel response
is removed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

SQRT2 = math.sqrt(2.0)


def gaussian_star(
    img: np.ndarray, x: float, y: float, flux: float, fwhm: float, *, half: int | None = None
) -> None:
    """Add a pixel-integrated circular Gaussian star in place."""
    s = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    half = half or int(math.ceil(6 * s)) + 2
    h, w = img.shape
    x0, x1 = max(0, int(x) - half), min(w, int(x) + half + 2)
    y0, y1 = max(0, int(y) - half), min(h, int(y) + half + 2)
    ex = np.arange(x0, x1 + 1) - 0.5
    ey = np.arange(y0, y1 + 1) - 0.5
    px = np.diff(0.5 * erf((ex - x) / (SQRT2 * s)))
    py = np.diff(0.5 * erf((ey - y) / (SQRT2 * s)))
    img[y0:y1, x0:x1] += flux * np.outer(py, px)


def moffat_star(
    img: np.ndarray, x: float, y: float, flux: float, fwhm: float, beta: float, *, oversample: int = 9
) -> None:
    """Add a pixel-integrated circular Moffat star (total flux ``flux``) in place."""
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    half = int(math.ceil(alpha * math.sqrt(1e-5 ** (-1.0 / beta) - 1.0))) + 2
    half = min(half, 60)
    h, w = img.shape
    x0, x1 = max(0, int(x) - half), min(w, int(x) + half + 1)
    y0, y1 = max(0, int(y) - half), min(h, int(y) + half + 1)
    k = oversample
    sub = (np.arange(k) + 0.5) / k - 0.5
    xs = (np.arange(x0, x1)[:, None] + sub[None, :]).ravel()
    ys = (np.arange(y0, y1)[:, None] + sub[None, :]).ravel()
    r2 = (xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2
    prof = (beta - 1.0) / (math.pi * alpha * alpha) * (1.0 + r2 / (alpha * alpha)) ** (-beta)
    pix = prof.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))
    img[y0:y1, x0:x1] += flux * pix


def trailed_star(
    img: np.ndarray, x: float, y: float, flux: float, fwhm: float, length: float, pa_deg: float
) -> None:
    """A Gaussian star smeared uniformly along a line of ``length`` px at ``pa_deg``.

    The angle is from +x toward +y; ``(x, y)`` is the middle of the trail.
    """
    steps = max(2, int(math.ceil(length * 4)) + 1)
    c, s = math.cos(math.radians(pa_deg)), math.sin(math.radians(pa_deg))
    for t in np.linspace(-length / 2, length / 2, steps):
        gaussian_star(img, x + t * c, y + t * s, flux / steps, fwhm, half=int(fwhm * 3 + length / 2) + 3)


def snr_flux(snr: float, fwhm: float, noise: float) -> float:
    """Total star flux giving ``snr`` in the measurement aperture (radius 1.5 × FWHM)
    when the noise is ``noise`` per pixel and background-limited."""
    r = max(2.0, 1.5 * fwhm)
    return snr * noise * math.sqrt(math.pi * r * r)
