"""Debayering a calibrated Bayer mosaic into RGB.

Default: RCD, Ratio Corrected Demosaicing (Luis Sanz Rodríguez, 2017; Siril's
default), in :mod:`.rcd`: green interpolated along the locally smoother
direction with the neighbours scaled by ratios of a low-pass, then red and
blue as colour differences to green. Also: Malvar, He and Cutler,
"High-quality linear interpolation for demosaicing of Bayer-patterned color
images" (ICASSP 2004): bilinear interpolation corrected by the gradient of
the channel measured at the pixel (four fixed 5×5 filters), applied with
OpenCV's ``filter2D`` on float32 so calibrated data keep their precision and
sign; and bilinear.

Measured on a 1600×1200 RGGB mosaic of 400 coloured Gaussian stars (FWHM
2.8 px) against the true RGB image, RMS error on star pixels and time on
this 2-core machine (first measurement, when Malvar was chosen):

==================================  ==============  ==========
method                              star RMS error  time
==================================  ==============  ==========
bilinear (colour-demosaicing)       280             144 ms
bilinear (OpenCV, uint16 only)      280              28 ms
edge-aware (OpenCV EA, uint16)      288              11 ms
VNG (OpenCV, uint8 only)            218              28 ms
Malvar 2004 (colour-demosaicing)    129             641 ms
Menon 2007 (colour-demosaicing)     157            2520 ms
Malvar 2004, this module (float32)  129             ~60 ms
==================================  ==============  ==========

and again with RCD, on another such field (stars of 500-20 000 ADU over a
300-ADU sky, colours ×0.5-1.5; load 4.3), R / G / B and all:

==================================  ===========================  ==========
method                              star RMS error R / G / B     time
==================================  ===========================  ==========
bilinear                            1080 / 642 / 1061: 949        8 ms
Malvar 2004                         562 / 416 / 587: 527         12 ms
RCD (C kernel, one thread)          595 / 98 / 610: 495          30 ms
RCD (C kernel, two threads)         the same                     16 ms
RCD (numpy, no C compiler)          the same                    119 ms
==================================  ===========================  ==========

Malvar halves the colour fringes of bilinear on stars; OpenCV's better
methods need integer input (VNG loses everything below 1/256 of full
scale); colour-demosaicing's Malvar gives the same numbers (the test
suite compares them) but ten times slower, in float64. RCD's green is four
times closer than Malvar's, its red and blue 6 % further.

In the stack (issue 12's small colour set, 16 RGGB DNG lights of 4.3 MP,
scored as ``tests/benchmarks/bench_stacking.py`` does): background noise
of each channel against its own truth, per pixel / 4×4 / 16×16 blocks,
FWHM of the unsaturated stars (the field's: 3.20 px), time per 4.3 MP
frame (float32 in and out, 2-core machine under load):

===================  ==================  ==================  ==================  =====  =======
method               R                   G                   B                   FWHM   time
===================  ==================  ==================  ==================  =====  =======
Siril 1.0.6 (RCD)    8.64 / 16.9 / 22.0  8.93 / 16.1 / 18.0  7.86 / 14.9 / 19.2  3.28
RCD (default)        8.51 / 16.8 / 22.2  8.76 / 15.9 / 18.1  7.75 / 14.8 / 19.1  3.29    80 ms
Malvar               9.13 / 18.1 / 21.9  8.71 / 15.5 / 17.8  8.63 / 16.3 / 19.3  3.26    150 ms
Menon 2007 (c.-d.)   9.27 / 18.1 / 25.5  8.95 / 15.4 / 18.8  8.33 / 15.7 / 21.2  3.27   1670 ms
OpenCV EA (uint16)   7.57 / 17.7 / 22.0  9.45 / 17.5 / 20.3  6.82 / 15.9 / 19.4  3.61     26 ms
bilinear             7.56 / 17.7 / 22.0  8.21 / 15.5 / 17.8  6.82 / 15.9 / 19.4  3.66     26 ms
===================  ==================  ==================  ==================  =====  =======

The sum of the channels (the benchmark's headline figures), per pixel /
4×4 / 16×16: Siril 20.60 / 31.13 / 34.40, RCD 20.49 / 31.03 / 34.20, Malvar
21.90 / 33.45 / 35.34. RCD is the only method at or under Siril on red and
blue at small scales without wider stars: Malvar's fixed 5×5 filters leave
6-10 % more noise in red and blue per pixel and on 4×4 blocks; Menon is
about as noisy as Malvar on small scales, noisier on 16×16 and 11× slower;
edge-aware and bilinear widen stars by 11-12 %; VNG takes only 8-bit data.
RCD's red on 16×16 blocks is 1 % above Malvar's (its red and blue follow
green's noise on large scales, as colour differences do), within the
figure's ±1.3 %. The whole stack takes ~19 % more CPU time with RCD than
with Malvar (17.8 s against 14.9 s, user + system).
"""

from __future__ import annotations

import cv2
import numpy as np

from .calibrate import BAYER_PATTERNS
from .rcd import REACH, rcd

_G_AT_RB = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]],
                    np.float32) / 8
# R at a green pixel of an R row (B at a green pixel of a B row)
_RB_AT_G_ROW = np.array([[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0],
                         [0, 0, 0.5, 0, 0]], np.float32) / 8
_RB_AT_G_COL = _RB_AT_G_ROW.T.copy()
_RB_AT_BR = np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0],
                      [0, 0, -1.5, 0, 0]], np.float32) / 8

METHODS = ("rcd", "malvar", "bilinear")


def debayer_reach(method: str) -> int:
    """How far (px) :func:`debayer` with ``method`` looks into the mosaic from each
    output pixel: a strip debayered with this many more rows and columns around it
    comes out as in the whole frame."""
    return {"rcd": REACH, "malvar": 2, "bilinear": 1}[method]


def _f(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    return cv2.filter2D(a, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT_101)


def debayer(mosaic: np.ndarray, pattern: str, method: str = "rcd", threads: int = 1) -> np.ndarray:
    """RGB image ``(H, W, 3)`` float32 from a Bayer mosaic ``(H, W)``.

    ``pattern`` is the 2×2 top-left pattern (RGGB, BGGR, GRBG, GBRG);
    ``method`` ``"rcd"`` (default), ``"malvar"`` or ``"bilinear"``; ``threads``:
    how many threads RCD's C kernel may split the rows over. The mosaic is in
    ADU (RCD's small constants are set for a 16-bit range); NaN pixels must
    be filled before (cosmetic correction does it).

    Raises ValueError for an unknown pattern or method.
    """
    pattern = (pattern or "").upper()
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}; one of {', '.join(BAYER_PATTERNS)}")
    if method not in METHODS:
        raise ValueError(f"unknown debayer method {method!r}; one of {', '.join(METHODS)}")
    cfa = np.ascontiguousarray(mosaic, dtype=np.float32)
    if method == "rcd":
        return rcd(cfa, pattern, threads=threads)
    h, w = cfa.shape
    out = np.empty((h, w, 3), np.float32)
    sites = {(r, c): pattern[2 * r + c] for r in (0, 1) for c in (0, 1)}
    r_row = next(r for (r, c), col in sites.items() if col == "R")
    r_col = next(c for (r, c), col in sites.items() if col == "R")
    if method == "bilinear":
        k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
        k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
        for ch, col in enumerate("RGB"):
            m = np.zeros((h, w), np.float32)
            for (r, c), cc in sites.items():
                if cc == col:
                    m[r::2, c::2] = cfa[r::2, c::2]
            out[..., ch] = _f(m, k_g if col == "G" else k_rb)
        return out
    g_rb = _f(cfa, _G_AT_RB)
    at_g_row = _f(cfa, _RB_AT_G_ROW)
    at_g_col = _f(cfa, _RB_AT_G_COL)
    at_br = _f(cfa, _RB_AT_BR)
    for (r, c), col in sites.items():
        s = (slice(r, None, 2), slice(c, None, 2))
        if col == "G":
            out[s + (1,)] = cfa[s]
            in_r_row = r == r_row
            # R: from this row if it is an R row, else from the column
            out[s + (0,)] = (at_g_row if in_r_row else at_g_col)[s]
            out[s + (2,)] = (at_g_col if in_r_row else at_g_row)[s]
        elif col == "R":
            out[s + (0,)] = cfa[s]
            out[s + (1,)] = g_rb[s]
            out[s + (2,)] = at_br[s]
        else:
            out[s + (2,)] = cfa[s]
            out[s + (1,)] = g_rb[s]
            out[s + (0,)] = at_br[s]
    del r_col
    return out
