"""A fair first look at a stack: background gradient removed, colour balanced,
green cast removed (SCNR), stretched to 8 bits.

The steps are the first of the field guide's enhancement steps, as Siril
does them: background extraction (a low-order polynomial fitted to a grid
of sky samples that avoids stars and the target), colour calibration
(background neutral, stars white on average), SCNR "average neutral"
(G ≤ (R + B) / 2), and the midtones transfer function autostretch (Siril's
default: shadows at median − 2.8 × MAD, background to 0.25).
"""

from __future__ import annotations

import numpy as np


def _grid_samples(plane: np.ndarray, cells: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sky samples: sigma-clipped medians of a ``cells``×``cells`` grid, cells with
    stars or the target (a median well above the others) left out."""
    h, w = plane.shape
    ys = np.linspace(0, h, cells + 1).astype(int)
    xs = np.linspace(0, w, cells + 1).astype(int)
    cy, cx, val = [], [], []
    for i in range(cells):
        for j in range(cells):
            c = plane[ys[i]:ys[i + 1]:2, xs[j]:xs[j + 1]:2]
            c = c[np.isfinite(c)]
            if c.size < 16:
                continue
            m = np.median(c)
            s = 1.4826 * np.median(np.abs(c - m))
            c = c[np.abs(c - m) < 2.5 * max(s, 1e-12)] if s > 0 else c
            cy.append((ys[i] + ys[i + 1]) / 2)
            cx.append((xs[j] + xs[j + 1]) / 2)
            val.append(np.median(c) if c.size else m)
    cy, cx, val = np.array(cy), np.array(cx), np.array(val)
    # cells on the target or a bright star: well above the sky's spread
    med = np.median(val)
    mad = 1.4826 * np.median(np.abs(val - med)) or 1e-12
    keep = val < med + 2.5 * mad
    return cy[keep], cx[keep], val[keep]


def remove_gradient(img: np.ndarray, degree: int = 2) -> np.ndarray:
    """Subtract a polynomial background of ``degree`` fitted per plane to sky samples,
    keeping the mean sky level (``(H, W)`` or ``(H, W, C)``, float32)."""
    a = np.array(img, np.float32, copy=True)
    planes = a[..., None] if a.ndim == 2 else a
    h, w = planes.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy = yy / h - 0.5
    xx = xx / w - 0.5
    terms = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]
    for c in range(planes.shape[2]):
        sy, sx, v = _grid_samples(planes[..., c])
        if len(v) < len(terms) + 2:
            continue
        ny, nx = sy / h - 0.5, sx / w - 0.5
        design = np.column_stack([nx ** i * ny ** j for i, j in terms])
        coef, *_ = np.linalg.lstsq(design, v, rcond=None)
        model = sum(np.float32(cf) * xx ** i * yy ** j for cf, (i, j) in zip(coef, terms))
        planes[..., c] -= model - np.float32(np.mean(v))
    return a


def balance(rgb: np.ndarray) -> np.ndarray:
    """Background neutral (each channel's sky at the same level) and stars white
    on average (each channel's total star flux the same). ``(H, W, 3)`` float32."""
    a = np.array(rgb, np.float32, copy=True)
    sub = np.array(a[::3, ::3].reshape(-1, 3))  # a copy: `a -= bg` below must not move it
    bg = np.nanmedian(sub, axis=0)
    a -= bg
    s = sub - bg
    noise = 1.4826 * np.nanmedian(np.abs(s), axis=0)
    lum = np.nansum(s, axis=1)
    bright = lum > np.nanpercentile(lum, 99.5)
    bright &= np.all(s > 5 * noise, axis=1)
    if bright.sum() > 20:
        flux = np.nansum(s[bright], axis=0)
        if np.all(flux > 0):
            a *= (flux.mean() / flux).astype(np.float32)
    a += np.float32(np.mean(bg))
    return a


def scnr(rgb: np.ndarray) -> np.ndarray:
    """Subtractive chromatic noise reduction, average neutral: G = min(G, (R + B) / 2)."""
    a = np.array(rgb, np.float32, copy=True)
    np.minimum(a[..., 1], 0.5 * (a[..., 0] + a[..., 2]), out=a[..., 1])
    return a


def _mtf(m: float, x: np.ndarray) -> np.ndarray:
    return ((m - 1) * x) / ((2 * m - 1) * x - m)


def stretch(img: np.ndarray, target: float = 0.25, shadows_mad: float = -2.8) -> np.ndarray:
    """Siril's autostretch (linked channels): returns float32 in [0, 1]."""
    a = np.asarray(img, np.float32)
    s = a[::3, ::3][np.isfinite(a[::3, ::3])]
    lo, hi = float(np.min(s)), float(np.max(s))
    if hi <= lo:
        return np.zeros(a.shape, np.float32)
    n = (np.nan_to_num(a, nan=lo) - lo) / (hi - lo)
    sn = (s - lo) / (hi - lo)
    med = float(np.median(sn))
    mad = float(1.4826 * np.median(np.abs(sn - med)))
    c0 = min(max(med + shadows_mad * mad, 0.0), 1.0)
    m = float(_mtf(target, np.array(med - c0)))
    x = np.clip((n - c0) / max(1 - c0, 1e-12), 0, 1)
    return np.clip(_mtf(m, x), 0, 1).astype(np.float32)


def preview(img: np.ndarray, *, gradient: bool = True, colour: bool = True) -> np.ndarray:
    """The displayable preview of a linear stack: uint8 ``(H, W)`` or ``(H, W, 3)`` (RGB)."""
    a = np.asarray(img, np.float32)
    if gradient:
        a = remove_gradient(a)
    if a.ndim == 3 and colour:
        a = scnr(balance(a))
        # SCNR lowers green's noise peaks, and with them its sky level: set the sky neutral again
        bg = np.nanmedian(a[::3, ::3].reshape(-1, 3), axis=0)
        a += (bg.mean() - bg).astype(np.float32)
    return np.rint(stretch(a) * 255).astype(np.uint8)


def png_bytes(img8: np.ndarray) -> bytes:
    """PNG file contents of a uint8 image (grey or RGB)."""
    import cv2
    a = img8[..., ::-1] if img8.ndim == 3 else img8
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:
        raise ValueError("could not encode the preview as PNG")
    return buf.tobytes()
