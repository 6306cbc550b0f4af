"""RCD (Ratio Corrected Demosaicing) of a float32 Bayer mosaic.

Algorithm: Luis Sanz Rodríguez, "Ratio Corrected Demosaicing", release 2.3
(2017; https://github.com/LuisSR/RCD-Demosaicing, as used by RawTherapee's
``rcd_demosaic.cc`` and by Siril through librtprocess). Written here from
that description; the steps:

1. Direction of every pixel: ``VH_Dir = V / (V + H)`` where V (H) is the sum
   over three consecutive rows (columns) of the squared 7-tap high-pass
   filter ``[1, -3, -1, 6, -1, -3, 1]`` run down the column (along the row),
   "refined": the mean of its four diagonal neighbours replaces it when
   that mean is further from 0.5 (a clearer direction).
2. A 3×3 low-pass ``[1, 2, 1] ⊗ [1, 2, 1] / 16`` of the mosaic at red and
   blue sites.
3. Green at red and blue sites: each of the four cardinal green neighbours,
   scaled by the ratio of the low-passes at the site and two pixels beyond
   it (``2·L₀ / (L₀ + L₂)``), weighted against its opposite by the inverse
   of a four-term gradient, then vertical and horizontal blended by
   ``VH_Dir``.
4. Red at blue sites and blue at red sites: green plus the colour
   difference of the diagonal neighbours, gradient-weighted along each
   diagonal, the two diagonals' estimates averaged (see below); then red
   and blue at green sites: green plus the cardinal colour differences
   blended by ``VH_Dir``.

The diagonals of step 4 are averaged with equal weights. The release
describes a diagonal direction ``PQ_Dir`` like ``VH_Dir`` (the squared
high-pass along each diagonal); the code that Siril runs (librtprocess's
``rcd_demosaic``, from RawTherapee) computes that statistic with several
cross terms of the other sign, which makes it negative on any smooth
positive signal, clamped to its floor for both diagonals: ``PQ_Dir`` is ½
there (on a calibrated light of the stacking benchmark, at all but 0.08 %
of the red and blue sites). The equal blend is what that program does,
and it keeps stars sharper than the described direction: on the
benchmark's reference light (RGGB, stars of 3.2 px) the median FWHM of
the red stars fell from 3.131 to 3.106 px and of the blue from 3.069 to
3.044 (green unchanged; Siril 1.0.6's own RCD: 3.127 and 3.064); the
stack of 16 lights from 3.2855 to 3.2742 px (Siril 3.2826), its noise
per pixel / 4×4 / 16×16 from 20.50 / 31.05 / 34.25 to 20.51 / 30.97 /
33.88 (Siril 20.60 / 31.13 / 34.40). Nor is it a sharpening: red and blue
come out closer to the truth (round Gaussian stars of σ 1.3 px, RGGB: mean
error 1.29 / 1.97 ADU → 1.08 / 1.76 for red / blue without noise, 15.6 /
16.2 → 15.2 / 15.8 with 20 ADU of it; green unchanged). It also saves the
statistic's cost.

Differences from the reference, for calibrated astronomical data (ADU,
possibly negative in a dark background): no clipping to [0, 1] anywhere, and
the ratio of step 3 is only taken where ``L₀ + L₂ > 0`` (elsewhere the
neighbour is used as it is) and kept within [0, 2] (its range for positive
data), so noise around zero cannot blow up a ratio. ``eps`` (1e-5 of full
scale in the reference) is ``1e-5 · full_scale`` here, and 1e-10 ·
full_scale² for the direction statistics.

The mosaic is processed in strips of rows (:data:`STRIP` rows plus a
:data:`HALO`-row overlap each side), so the working memory beyond a mirrored
copy of the mosaic and the output is a few strips whatever the frame's height, and a strip's output is the same as the whole
frame's (the result at a pixel depends only on the mosaic within
:data:`REACH` pixels). The frame's edges are mirrored (the pattern kept), so
every pixel is interpolated the same way.

The C kernel in ``_rcd.c`` (``rcd_image``) does the same arithmetic in the
same order; :func:`rcd` uses it when it is built from the current source
(:mod:`fieldtui._kernels`) and otherwise the numpy code here, with
identical output (the tests compare them).
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _kernels

#: the digest of the ``_rcd.c`` this module calls (a test checks it against the file): a
#: build from another source (a stale one gave wrong colours) is left aside and numpy
#: runs until it is rebuilt, as where no C compiler built it
RCD_SHA = "a72e573ebd57e959"
_ckernel = _kernels.load("stacking._rcd", RCD_SHA)
_lock = threading.Lock()
_spare: list[np.ndarray] = []  # the C kernel's scratch buffers, one per thread that ran at once

#: rows of output per strip
STRIP = 128
#: mirrored / overlapping rows and columns around a strip (even: keeps the pattern)
HALO = 12
#: how far (px) the result at a pixel looks into the mosaic
REACH = 10


def _sites(pattern: str) -> tuple[tuple[int, int], tuple[int, int], list[tuple[int, int]]]:
    r = pattern.index("R")
    b = pattern.index("B")
    g = [(i // 2, i % 2) for i, c in enumerate(pattern) if c == "G"]
    return (r // 2, r % 2), (b // 2, b % 2), g


class _View:
    """Strided views of full-size arrays at the sites of one parity class
    ``(py, px)`` at least ``m`` pixels inside the array."""

    def __init__(self, shape: tuple[int, int], py: int, px: int, m: int = 4):
        hp, wp = shape
        self.y0 = m + ((py - m) % 2)
        self.x0 = m + ((px - m) % 2)
        self.ny = max(0, (hp - m - self.y0 + 1) // 2)
        self.nx = max(0, (wp - m - self.x0 + 1) // 2)

    def __call__(self, a: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
        y, x = self.y0 + dy, self.x0 + dx
        return a[y:y + 2 * self.ny - 1:2, x:x + 2 * self.nx - 1:2]


def _hpf(c: np.ndarray, s, dy: int, dx: int) -> np.ndarray:
    """7-tap high-pass [1, -3, -1, 6, -1, -3, 1] along (dy, dx) at the views' sites."""
    t = s(c, -3 * dy, -3 * dx) - np.float32(3) * s(c, -2 * dy, -2 * dx)
    t -= s(c, -dy, -dx)
    t += np.float32(6) * s(c)
    t -= s(c, dy, dx)
    t -= np.float32(3) * s(c, 2 * dy, 2 * dx)
    t += s(c, 3 * dy, 3 * dx)
    return t


def _stat(hp: np.ndarray, s, dy: int, dx: int, epssq: np.float32) -> np.ndarray:
    """max(epssq, h[-1]² + h[0]² + h[+1]²) along (dy, dx) of a full-size high-pass ``hp``."""
    a = s(hp, -dy, -dx)
    t = a * a
    a = s(hp)
    t += a * a
    a = s(hp, dy, dx)
    t += a * a
    return np.maximum(t, epssq, out=t)


def _refine(d: np.ndarray, s) -> np.ndarray:
    """The direction at the views' sites, or the mean of its four diagonal neighbours
    when that is further from 0.5."""
    nb = s(d, -1, -1) + s(d, -1, 1)
    nb += s(d, 1, -1)
    nb += s(d, 1, 1)
    nb *= np.float32(0.25)
    c = s(d)
    h = np.float32(0.5)
    return np.where(np.abs(h - c) < np.abs(h - nb), nb, c)


def _ratio(l0: np.ndarray, ln: np.ndarray, eps: np.float32) -> np.ndarray:
    """1 + (l0 − ln) / (eps + l0 + ln), within [0, 2]; 1 where l0 + ln ≤ 0."""
    sm = l0 + ln
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (l0 - ln) / (eps + sm)
    f += np.float32(1)
    np.clip(f, np.float32(0), np.float32(2), out=f)
    return np.where(sm > 0, f, np.float32(1))


def _blend(a: np.ndarray, ga: np.ndarray, b: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """(gb·a + ga·b) / (ga + gb): a and b weighted by the other's gradient."""
    t = gb * a
    t += ga * b
    return t / (ga + gb)


def _strip(c: np.ndarray, pattern: str, eps: np.float32, epssq: np.float32) -> np.ndarray:
    """RCD of a padded strip ``c`` (Hp, Wp), float32; (3, Hp, Wp) with the rows and
    columns within REACH + 2 of the strip's edges not valid."""
    shape = c.shape
    (ry, rx), (by, bx), gs = _sites(pattern)
    one = lambda a, dy=0, dx=0: a[4 + dy:shape[0] - 4 + dy, 4 + dx:shape[1] - 4 + dx]  # noqa: E731
    # step 1: vertical/horizontal direction at every pixel
    vh = np.full(shape, np.float32(0.5), np.float32)
    hp = np.zeros(shape, np.float32)
    one(hp)[...] = _hpf(c, one, 1, 0)
    v = _stat(hp, one, 1, 0, epssq)
    one(hp)[...] = _hpf(c, one, 0, 1)
    h = _stat(hp, one, 0, 1, epssq)
    one(vh)[...] = v / (v + h)
    del v, h
    vhd = np.full(shape, np.float32(0.5), np.float32)
    one(vhd)[...] = _refine(vh, one)
    del vh
    rgb = np.zeros((3,) + shape, np.float32)
    red, green, blue = rgb
    for (py, px), plane in [((ry, rx), red), ((by, bx), blue)] + [(g, green) for g in gs]:
        plane[py::2, px::2] = c[py::2, px::2]
    sr, sb = _View(shape, ry, rx), _View(shape, by, bx)
    # step 2: low-pass at red and blue sites
    lpf = np.zeros(shape, np.float32)
    row = np.zeros(shape, np.float32)
    one(row)[...] = one(c, 0, -1) + np.float32(2) * one(c)
    one(row)[...] += one(c, 0, 1)
    for s in (sr, sb):
        t = s(row, -1, 0) + np.float32(2) * s(row)
        t += s(row, 1, 0)
        t *= np.float32(0.0625)
        s(lpf)[...] = t
    del row
    # step 3: green at red and blue sites
    for s in (sr, sb):
        c0 = s(c)
        l0 = s(lpf)
        est = []
        for dy, dx in ((1, 0), (0, 1)):
            m1, p1 = s(c, -dy, -dx), s(c, dy, dx)
            m2, p2 = s(c, -2 * dy, -2 * dx), s(c, 2 * dy, 2 * dx)
            mid = np.abs(m1 - p1)
            mid += eps
            gm = mid + np.abs(c0 - m2)
            gm += np.abs(m1 - s(c, -3 * dy, -3 * dx))
            gm += np.abs(m2 - s(c, -4 * dy, -4 * dx))
            gp = mid + np.abs(c0 - p2)
            gp += np.abs(p1 - s(c, 3 * dy, 3 * dx))
            gp += np.abs(p2 - s(c, 4 * dy, 4 * dx))
            em = m1 * _ratio(l0, s(lpf, -2 * dy, -2 * dx), eps)
            ep = p1 * _ratio(l0, s(lpf, 2 * dy, 2 * dx), eps)
            est.append(_blend(em, gm, ep, gp))
        ve, he = est
        he -= ve
        he *= s(vhd)
        he += ve
        s(green)[...] = he
    del lpf
    # step 4.2: red at blue sites, blue at red sites (the two diagonals averaged: see the
    # module's docstring)
    for s, x in ((sb, red), (sr, blue)):
        g0 = s(green)
        nw, ne = s(x, -1, -1), s(x, -1, 1)
        sw, se = s(x, 1, -1), s(x, 1, 1)
        d1 = np.abs(nw - se)
        d1 += eps
        d2 = np.abs(ne - sw)
        d2 += eps
        g_nw = d1 + np.abs(nw - s(x, -3, -3))
        g_nw += np.abs(g0 - s(green, -2, -2))
        g_ne = d2 + np.abs(ne - s(x, -3, 3))
        g_ne += np.abs(g0 - s(green, -2, 2))
        g_sw = d2 + np.abs(sw - s(x, 3, -3))
        g_sw += np.abs(g0 - s(green, 2, -2))
        g_se = d1 + np.abs(se - s(x, 3, 3))
        g_se += np.abs(g0 - s(green, 2, 2))
        pe = _blend(nw - s(green, -1, -1), g_nw, se - s(green, 1, 1), g_se)
        qe = _blend(ne - s(green, -1, 1), g_ne, sw - s(green, 1, -1), g_sw)
        qe -= pe
        qe *= np.float32(0.5)
        qe += pe
        qe += g0
        s(x)[...] = qe
    # step 4.3: red and blue at green sites
    for py, px in gs:
        s = _View(shape, py, px)
        g0 = s(green)
        n1 = np.abs(g0 - s(green, -2, 0))
        n1 += eps
        s1 = np.abs(g0 - s(green, 2, 0))
        s1 += eps
        w1 = np.abs(g0 - s(green, 0, -2))
        w1 += eps
        e1 = np.abs(g0 - s(green, 0, 2))
        e1 += eps
        vd = s(vhd)
        for x in (red, blue):
            n, so, w, e = s(x, -1, 0), s(x, 1, 0), s(x, 0, -1), s(x, 0, 1)
            sn = np.abs(n - so)
            ew = np.abs(w - e)
            g_n = n1 + sn
            g_n += np.abs(n - s(x, -3, 0))
            g_s = s1 + sn
            g_s += np.abs(so - s(x, 3, 0))
            g_w = w1 + ew
            g_w += np.abs(w - s(x, 0, -3))
            g_e = e1 + ew
            g_e += np.abs(e - s(x, 0, 3))
            ve = _blend(n - s(green, -1, 0), g_n, so - s(green, 1, 0), g_s)
            he = _blend(w - s(green, 0, -1), g_w, e - s(green, 0, 1), g_e)
            he -= ve
            he *= vd
            he += ve
            he += g0
            s(x)[...] = he
    return rgb


def _pad(mosaic: np.ndarray, full_scale: float):
    cfa = np.ascontiguousarray(mosaic, dtype=np.float32)
    return (np.pad(cfa, HALO, mode="reflect"), cfa.shape, np.float32(1e-5 * full_scale),
            np.float32(1e-10 * full_scale * full_scale))


def rcd_numpy(mosaic: np.ndarray, pattern: str, full_scale: float = 65535.0) -> np.ndarray:
    """RGB ``(H, W, 3)`` float32 from a Bayer mosaic ``(H, W)`` by RCD in numpy (see
    the module's docstring); the arguments are :func:`rcd`'s."""
    pad, (h, w), eps, epssq = _pad(mosaic, full_scale)
    out = np.empty((h, w, 3), np.float32)
    for y in range(0, h, STRIP):
        y1 = min(h, y + STRIP)
        rgb = _strip(pad[y:y1 + 2 * HALO], pattern, eps, epssq)
        out[y:y1] = np.moveaxis(rgb[:, HALO:HALO + y1 - y, HALO:HALO + w], 0, 2)
    return out


def _c_rows(pad: np.ndarray, y0: int, y1: int, w: int, ry: int, rx: int, eps, epssq, out: np.ndarray) -> None:
    rows = y1 - y0
    size = 7 * (min(STRIP, rows) + 2 * HALO) * (w + 2 * HALO)
    # scratch kept between calls (a new one each call cost ~10 % more time in page faults)
    with _lock:
        work = _spare.pop() if _spare else None
    if work is None or work.size < size:
        work = np.empty(size, np.float32)
    try:
        _ckernel.rcd_image(pad[y0:y1 + 2 * HALO], rows, w, HALO, STRIP, ry, rx, float(eps), float(epssq),
                           out[y0:y1], work)
    finally:
        with _lock:
            _spare.append(work)


def rcd(mosaic: np.ndarray, pattern: str, full_scale: float = 65535.0, threads: int = 1) -> np.ndarray:
    """RGB ``(H, W, 3)`` float32 from a Bayer mosaic ``(H, W)`` (any real dtype, in
    ADU; NaN must be filled before) by RCD (see the module's docstring): the C
    kernel when it is built (its rows split over ``threads`` threads), else
    :func:`rcd_numpy` (the same output, ~4× slower). ``pattern``: RGGB, BGGR,
    GRBG or GBRG (checked by the caller,
    :func:`fieldtui.stacking.debayer.debayer`); ``full_scale``: the data's white
    level (ADU), which sets the small constants that keep divisions finite.
    Raises ValueError for a mosaic that is not 2-D."""
    if np.ndim(mosaic) != 2:
        raise ValueError(f"a Bayer mosaic is 2-D, not {np.shape(mosaic)}")
    if _ckernel is None:
        return rcd_numpy(mosaic, pattern, full_scale)
    pad, (h, w), eps, epssq = _pad(mosaic, full_scale)
    (ry, rx), _, _ = _sites(pattern)
    out = np.empty((h, w, 3), np.float32)
    n = max(1, min(int(threads), h // 32))
    edges = [h * i // n // 2 * 2 for i in range(n)] + [h]  # even: each part keeps the pattern
    if n == 1:
        _c_rows(pad, 0, h, w, ry, rx, eps, epssq, out)
        return out
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(n) as pool:
        for f in [pool.submit(_c_rows, pad, a, b, w, ry, rx, eps, epssq, out) for a, b in zip(edges[:-1], edges[1:])]:
            f.result()
    return out
