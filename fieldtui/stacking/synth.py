"""Synthetic calibration and light sets with known truth, for tests and benchmarks.

The physics is the simulated rig's (``devices/sky.py``): electrons from sky
and stars through a vignetting flat and a Bayer colour response, dark
current with hot pixels, shot and read noise, a gain in e⁻/ADU and a bias
level, plus a fixed bias pattern (column stripes and a gradient, as real
sensors have). Unlike the simulated camera, each light's transform from the
reference grid is chosen (shift and rotation, e.g. a meridian flip or
another night), and the noiseless truth is known on the reference grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..imaging.synth import gaussian_star

RESPONSE = {"R": 0.75, "G": 1.0, "B": 0.6}


@dataclass
class Camera:
    """A sensor: size, Bayer pattern ('' for mono), gain (e⁻/ADU), read noise (e⁻),
    bias level (ADU), white level (ADU), dark current (e⁻/s) and its hot pixels,
    vignetting (fraction lost in the corners), bias pattern (column stripes of
    ``bias_stripes`` ADU rms plus a ramp)."""

    width: int = 640
    height: int = 480
    bayer: str = ""
    gain: float = 0.4
    read_noise: float = 3.0
    bias: float = 2048.0
    white: float = 15000.0
    dark_current: float = 0.08
    hot_pixels: int = 60
    hot_rate: float = 40.0
    vignetting: float = 0.3
    bias_stripes: float = 3.0
    seed: int = 1
    bias_pattern: np.ndarray = field(init=False)
    hot: np.ndarray = field(init=False)
    flat: np.ndarray = field(init=False)
    response: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 99])
        h, w = self.height, self.width
        cols = rng.normal(0, self.bias_stripes, w).astype(np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.bias_pattern = cols[None, :] + (2.0 * xx / w + 1.3 * yy / h) * np.float32(self.bias_stripes)
        n = self.hot_pixels
        self.hot = np.column_stack([rng.integers(0, w, n), rng.integers(0, h, n),
                                    self.hot_rate * rng.lognormal(0, 0.8, n)])
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        self.flat = (1.0 - self.vignetting * r2).astype(np.float32)
        if self.bayer:
            tile = np.array([[RESPONSE[self.bayer[0]], RESPONSE[self.bayer[1]]],
                             [RESPONSE[self.bayer[2]], RESPONSE[self.bayer[3]]]], np.float32)
            self.response = np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
        else:
            self.response = np.ones((h, w), np.float32)

    def thermal(self, exposure: float) -> np.ndarray:
        """Mean dark electrons of an exposure (current and hot pixels)."""
        d = np.full((self.height, self.width), self.dark_current * exposure, np.float32)
        np.add.at(d, (self.hot[:, 1].astype(int), self.hot[:, 0].astype(int)), self.hot[:, 2] * exposure)
        return d

    def read(self, electrons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shot and read noise on mean electrons, to uint16 ADU."""
        e = electrons + rng.standard_normal(electrons.shape, np.float32) * np.sqrt(
            np.maximum(electrons, 0) + np.float32(self.read_noise ** 2))
        adu = e / np.float32(self.gain) + np.float32(self.bias) + self.bias_pattern
        return np.clip(np.rint(adu), 0, self.white).astype(np.uint16)


@dataclass
class Field:
    """A star field on the reference grid: positions (px), fluxes (e⁻/s), FWHM (px) and sky (e⁻/s/px)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    fwhm: float
    sky: float

    @classmethod
    def random(cls, cam: Camera, n: int = 250, fwhm: float = 3.0, sky: float = 6.0, seed: int = 2,
               flux_range: tuple[float, float] = (30.0, 30000.0)) -> "Field":
        rng = np.random.default_rng(seed)
        pad = 0.3 * max(cam.width, cam.height)
        x = rng.uniform(-pad, cam.width + pad, n)
        y = rng.uniform(-pad, cam.height + pad, n)
        lo, hi = flux_range
        flux = lo * (hi / lo) ** rng.random(n) ** 2.5
        return cls(x, y, flux, fwhm, sky)

    def render(self, shape: tuple[int, int], matrix: np.ndarray | None = None) -> np.ndarray:
        """Noiseless sky + stars in e⁻/s per pixel on a grid ``shape``; ``matrix``
        (2×3) takes reference coordinates to this grid (None: the reference)."""
        h, w = shape
        img = np.full((h, w), self.sky, np.float64)
        xy = np.column_stack([self.x, self.y])
        if matrix is not None:
            xy = xy @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]
        m = 2 * self.fwhm  # imaging.synth.gaussian_star mis-slices stars further out
        for (x, y), f in zip(xy, self.flux):
            if -m < x < w + m and -m < y < h + m:
                gaussian_star(img, x, y, f, self.fwhm)
        return img.astype(np.float32)


def transform(shift: tuple[float, float] = (0.0, 0.0), rotation_deg: float = 0.0,
              centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """2×3 matrix: rotate by ``rotation_deg`` about ``centre`` then shift (reference → frame)."""
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    cx, cy = centre
    m[:, 2] = np.array([cx, cy]) - m[:, :2] @ np.array([cx, cy]) + np.asarray(shift, float)
    return m


def light(cam: Camera, fld: Field, exposure: float, matrix: np.ndarray | None, rng: np.random.Generator,
          *, trail: tuple[float, float, float, float] | None = None, cosmic_rays: int = 0,
          fwhm: float | None = None) -> np.ndarray:
    """One raw light (uint16 ``(H, W)``). ``trail`` ``(x0, y0, x1, y1)`` adds a
    satellite trail, ``cosmic_rays`` single-pixel hits; ``fwhm`` overrides the
    field's (a blurred frame)."""
    f = fld if fwhm is None else Field(fld.x, fld.y, fld.flux, fwhm, fld.sky)
    e = f.render((cam.height, cam.width), matrix) * np.float32(exposure)
    if trail is not None:
        x0, y0, x1, y1 = trail
        n = int(math.hypot(x1 - x0, y1 - y0) * 2)
        tr = np.zeros_like(e)
        xs = np.clip(np.rint(np.linspace(x0, x1, n)).astype(int), 0, cam.width - 1)
        ys = np.clip(np.rint(np.linspace(y0, y1, n)).astype(int), 0, cam.height - 1)
        tr[ys, xs] = 400.0 * exposure
        from scipy.ndimage import gaussian_filter
        e += gaussian_filter(tr, 1.0)
    e *= cam.flat * cam.response
    e += cam.thermal(exposure)
    if cosmic_rays:
        e[rng.integers(0, cam.height, cosmic_rays), rng.integers(0, cam.width, cosmic_rays)] += 3000.0
    return cam.read(e, rng)


def dark(cam: Camera, exposure: float, rng: np.random.Generator) -> np.ndarray:
    """One raw dark (or bias, with a tiny exposure)."""
    return cam.read(cam.thermal(exposure), rng)


def flat(cam: Camera, rng: np.random.Generator, level_e: float | None = None, exposure: float = 1.0) -> np.ndarray:
    """One raw flat, lit to about half of full scale."""
    level = level_e if level_e is not None else 0.45 * (cam.white - cam.bias) * cam.gain
    return cam.read(np.float32(level) * cam.flat * cam.response + cam.thermal(exposure), rng)


def truth_adu(cam: Camera, fld: Field, exposure: float) -> np.ndarray:
    """The noiseless calibrated light on the reference grid, in ADU: ``(H, W)`` for
    mono, ``(H, W, 3)`` RGB for a Bayer camera (each channel × its response)."""
    base = fld.render((cam.height, cam.width)) * np.float32(exposure / cam.gain)
    if not cam.bayer:
        return base
    return np.stack([base * np.float32(RESPONSE[c]) for c in "RGB"], axis=-1)
