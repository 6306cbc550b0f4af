"""Registration: star lists matched by similar triangles, a robust transform, resampling.

Matching (Valdes et al. 1995, "FOCAS automatic catalog matching
algorithms", the method astroalign and Siril's global star alignment use):
each star and pairs of its nearest neighbours form triangles; a triangle's
shape (the ratios of its sides) does not change under shift, rotation and
scale, so triangles of the two lists with the same shape propose star
correspondences. Every proposal gives a similarity transform; the one most
stars agree with (RANSAC) wins, and a least-squares fit on all its matched
stars refines it (similarity by default, affine on request). The stacking
refits that on the stars' windowed centroids, weighted by their SNR
(:func:`refine`): 0.004–0.006 px rms against the simulator's known
transforms on the benchmark's lights, half the error of the detected
positions fitted unweighted.

Own code rather than astroalign: with the same star lists both find the
same transform (the benchmark compares them), but astroalign detects stars
again with its own sep call and cannot take our fitted centroids, and it
fits in its own coordinate convention; this module works on the
:class:`~fieldtui.imaging.stars.Star` positions the rest of the
program measures.

Resampling (:func:`warp`) trades noise for sharpness, and no kernel wins on
both: reading a frame between pixels averages neighbours, which lowers the
noise per pixel by sharing it with the neighbours and widens stars by the
kernel's second moment. Over random sub-pixel shifts the noise per pixel
keeps √(mean Σw²) of σ: bilinear 0.667 (it adds 1/6 px² to a star's
variance per axis), Catmull-Rom cubic 0.81, OpenCV's cubic 0.86,
Lanczos-3 0.89, Lanczos-4 0.91 (these add none). Among kernels without
negative lobes, bilinear is the least noisy for the widening it causes (a
quadratic programme over 6 taps finds nothing below Σw² = 2/3 at a second
moment of 1/6), so no kernel matches Siril's noise with sharper stars.
Measured on the benchmark's 16 lights of 4.3 MP (stars of 3.20 px), noise
per pixel / 4×4 / 16×16 blocks, FWHM of the stars unsaturated in the lights:
Siril 1.0.6 (bilinear, its command line's kernel) 8.77 / 11.97 / 12.92,
3.34 px; bilinear here 8.75 / 11.97 / 12.78, 3.34 px; Lanczos-4 11.90 /
12.88 / 13.06, 3.21 px. Bilinear is the stack's default; Lanczos keeps
stars 4 % narrower for 36 % more noise per pixel (8 % on 4×4 blocks).

Transforms are 2×3 matrices ``M`` taking reference pixel coordinates
``(x, y, 1)`` to the frame's: resampling a frame onto the reference grid
reads the frame at ``M @ (x, y, 1)`` (OpenCV's inverse map). Pixel
``(0, 0)``'s centre is the origin, as everywhere in fieldtui.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np


def cKDTree(*args, **kwargs):  # noqa: N802 - scipy's name
    """scipy's k-d tree, imported at first use: scipy.spatial costs ~26 MB of resident
    memory, which the stacking run then only pays after calibration, its peak."""
    from scipy.spatial import cKDTree as tree
    return tree(*args, **kwargs)


@dataclass(frozen=True)
class Registration:
    """The transform carrying reference coordinates onto a frame.

    ``matrix`` is 2×3 (reference → frame), ``matched`` the number of star
    pairs used, ``rms`` their residual in pixels, ``rotation_deg`` and
    ``scale`` the similarity part, ``shift`` the image of the origin.
    """

    matrix: np.ndarray
    matched: int
    rms: float

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def scale(self) -> float:
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    @property
    def shift(self) -> tuple[float, float]:
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """Reference coordinates ``(n, 2)`` → frame coordinates ``(n, 2)``."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        return xy @ self.matrix[:, :2].T + self.matrix[:, 2]


class RegistrationError(Exception):
    """A frame whose stars could not be matched to the reference's."""


def _triangles(xy: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Triangles of each star with pairs of its ``k`` nearest neighbours.

    Returns invariants ``(T, 2)`` (middle/longest and shortest/longest
    side) and vertex indices ``(T, 3)`` ordered by the side opposite them
    (longest first), so matching triangles list corresponding stars in
    the same order.
    """
    n = len(xy)
    if n < 3:
        return np.zeros((0, 2)), np.zeros((0, 3), int)
    tree = cKDTree(xy)
    _, nb = tree.query(xy, k=min(k + 1, n))
    tri = set()
    for i in range(n):
        for a, b in itertools.combinations(nb[i][1:], 2):
            tri.add(tuple(sorted((i, int(a), int(b)))))
    t = np.array(sorted(tri), int)
    p = xy[t]  # (T, 3, 2)
    # side opposite vertex j
    opp = np.stack([np.linalg.norm(p[:, 1] - p[:, 2], axis=1), np.linalg.norm(p[:, 0] - p[:, 2], axis=1),
                    np.linalg.norm(p[:, 0] - p[:, 1], axis=1)], axis=1)
    order = np.argsort(-opp, axis=1)
    sides = np.take_along_axis(opp, order, axis=1)
    ok = sides[:, 2] > 1.0
    verts = np.take_along_axis(t, order, axis=1)
    inv = np.stack([sides[:, 1] / np.maximum(sides[:, 0], 1e-9), sides[:, 2] / np.maximum(sides[:, 0], 1e-9)], axis=1)
    return inv[ok], verts[ok]


def fit_transform(src: np.ndarray, dst: np.ndarray, model: str = "similarity",
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares 2×3 transform taking ``src`` points ``(n, 2)`` onto ``dst``.

    ``model`` ``"similarity"`` (shift, rotation, one scale; n ≥ 2) or
    ``"affine"`` (n ≥ 3). Raises ValueError with too few points.
    """
    src = np.asarray(src, float)
    dst = np.asarray(dst, float)
    n = len(src)
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    sw = np.sqrt(w)
    if model == "affine":
        if n < 3:
            raise ValueError("an affine fit needs 3 points")
        a = np.column_stack([src, np.ones(n)]) * sw[:, None]
        sol, *_ = np.linalg.lstsq(a, dst * sw[:, None], rcond=None)
        return sol.T
    if n < 2:
        raise ValueError("a similarity fit needs 2 points")
    # x' = a x - b y + tx ; y' = b x + a y + ty
    a = np.zeros((2 * n, 4))
    a[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    a[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    b = dst.reshape(-1)
    ww = np.repeat(sw, 2)
    sol, *_ = np.linalg.lstsq(a * ww[:, None], b * ww, rcond=None)
    ca, sb, tx, ty = sol
    return np.array([[ca, -sb, tx], [sb, ca, ty]])


def _apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ m[:, :2].T + m[:, 2]


def match_stars(
    ref_xy: np.ndarray,
    xy: np.ndarray,
    *,
    model: str = "similarity",
    tolerance: float = 2.0,
    brightest: int = 40,
    min_matches: int = 6,
    scale_range: tuple[float, float] = (0.8, 1.25),
    ref_snr: np.ndarray | None = None,
    snr: np.ndarray | None = None,
    snr_cap: float = 100.0,
) -> Registration:
    """Transform carrying reference star positions ``ref_xy`` ``(n, 2)`` onto a
    frame's ``xy`` ``(m, 2)`` (both brightest first).

    Triangles of the ``brightest`` stars propose matches; the transform
    most stars confirm (within ``tolerance`` pixels) is refitted on every
    confirmed pair (all stars, not only the brightest), twice, with pairs
    beyond 3× the residual rms dropped. ``scale_range`` bounds the scale
    (the same optics). Raises :class:`RegistrationError` with fewer than
    ``min_matches`` confirmed pairs (clouds, trails, another field).

    With the stars' signal-to-noise ratios ``ref_snr`` ``(n,)`` and ``snr``
    ``(m,)``, the refits weigh each pair by the inverse variance of its
    position difference, 1 / (1/s₁² + 1/s₂²) (a centroid scatters as
    FWHM/SNR), each SNR capped at ``snr_cap``: bright stars' positions are
    limited by pixel sampling and blends, not by their noise, and uncapped
    weights let a few of them decide. Measured on the stacking benchmark's
    lights (windowed centroids of a 1× FWHM window, 15 frames against the
    simulator's known transforms, rms over the frame): unweighted 0.0059 /
    0.0071 px (mono / colour), uncapped 0.0099 / 0.0149 px, capped at 100
    0.0041 / 0.0055 px.
    """
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    xy = np.asarray(xy, float).reshape(-1, 2)
    ref_snr, snr = _capped_snrs(ref_snr, snr, len(ref_xy), len(xy), snr_cap)
    if len(ref_xy) < 3 or len(xy) < 3:
        raise RegistrationError(f"too few stars to match ({len(xy)} in the frame, {len(ref_xy)} in the reference)")
    ra, rv = _triangles(ref_xy[:brightest])
    fa, fv = _triangles(xy[:brightest])
    if len(ra) == 0 or len(fa) == 0:
        raise RegistrationError("too few stars to form triangles")
    tree = cKDTree(fa)
    pairs = tree.query_ball_point(ra, r=0.01)
    cands = [(i, j) for i, js in enumerate(pairs) for j in js]
    if not cands:
        raise RegistrationError("no triangle of the frame matches the reference's")
    # votes per star correspondence, to try the best-supported proposals first
    votes: dict[tuple[int, int], int] = {}
    for i, j in cands:
        for a, b in zip(rv[i], fv[j]):
            votes[(a, b)] = votes.get((a, b), 0) + 1
    cands.sort(key=lambda ij: -sum(votes[(a, b)] for a, b in zip(rv[ij[0]], fv[ij[1]])))
    ftree = cKDTree(xy)
    best, best_n = None, 0
    for i, j in cands[:400]:
        m = fit_transform(ref_xy[rv[i]], xy[fv[j]], "similarity")
        s = math.sqrt(abs(np.linalg.det(m[:, :2])))
        if not scale_range[0] <= s <= scale_range[1]:
            continue
        d, _ = ftree.query(_apply(m, ref_xy[:brightest * 2]), distance_upper_bound=tolerance)
        n_in = int(np.isfinite(d).sum())
        if n_in > best_n:
            best, best_n = m, n_in
            if n_in >= 0.8 * min(len(ref_xy), brightest * 2, len(xy)):
                break
    if best is None or best_n < min(min_matches, len(ref_xy), len(xy)):
        raise RegistrationError(f"only {best_n} stars agree on a transform (need {min_matches})")
    return _refit(best, ref_xy, xy, ftree, tolerance, model, ref_snr, snr, min_matches)


def _capped_snrs(ref_snr, snr, n_ref: int, n: int, cap: float) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both stars' SNRs ``(n_ref,)``, ``(n,)`` as weights use them (in [1e-3, ``cap``]), or
    (None, None) unless both are given. Raises ValueError when a list does not match its stars."""
    if ref_snr is None or snr is None:
        return None, None
    ref_snr = np.minimum(np.maximum(np.asarray(ref_snr, float).reshape(-1), 1e-3), cap)
    snr = np.minimum(np.maximum(np.asarray(snr, float).reshape(-1), 1e-3), cap)
    if len(ref_snr) != n_ref or len(snr) != n:
        raise ValueError("one signal-to-noise ratio per star is needed")
    return ref_snr, snr


def _refit(m: np.ndarray, ref_xy: np.ndarray, xy: np.ndarray, ftree, tolerance: float, model: str,
           ref_snr: np.ndarray | None, snr: np.ndarray | None, min_matches: int) -> Registration:
    """Three least-squares refits of ``m`` on the pairs it confirms within ``tolerance``
    (then 3× the residual rms), weighted by the SNRs (already capped) when given."""
    src = dst = np.zeros((0, 2))
    tol = tolerance
    for _ in range(3):
        d, k = ftree.query(_apply(m, ref_xy), distance_upper_bound=tol)
        ok = np.isfinite(d)
        # one frame star for one reference star
        _, first = np.unique(k[ok], return_index=True)
        idx = np.nonzero(ok)[0][first]
        if len(idx) < min_matches:
            raise RegistrationError(f"only {len(idx)} stars agree on a transform (need {min_matches})")
        src, dst = ref_xy[idx], xy[k[idx]]
        wts = None if ref_snr is None or snr is None else 1.0 / (1.0 / ref_snr[idx] ** 2 + 1.0 / snr[k[idx]] ** 2)
        m = fit_transform(src, dst, model, wts)
        res = np.linalg.norm(_apply(m, src) - dst, axis=1)
        rms = float(np.sqrt(np.mean(res ** 2)))
        tol = max(3.0 * rms, 0.3)
    res = np.linalg.norm(_apply(m, src) - dst, axis=1)
    return Registration(matrix=m, matched=len(src), rms=float(np.sqrt(np.mean(res ** 2))))


def refine(reg: Registration, ref_xy: np.ndarray, xy: np.ndarray, *, model: str = "similarity",
           tolerance: float = 2.0, ref_snr: np.ndarray | None = None, snr: np.ndarray | None = None,
           snr_cap: float = 100.0, min_matches: int = 6) -> Registration:
    """``reg`` (found by :func:`match_stars`) refitted on other positions of the stars, e.g.
    windowed centroids (:func:`fieldtui.stacking.quality.windowed_positions`): ``ref_xy``
    ``(n, 2)``, ``xy`` ``(m, 2)``, weighted by the SNRs ``ref_snr`` ``(n,)``, ``snr`` ``(m,)``
    as :func:`match_stars` does. Matching stays on the positions it was found with (the
    detection's, whose behaviour on faint, blended stars the fallbacks are tuned for); only
    the fit uses the finer ones. Raises :class:`RegistrationError` with fewer than
    ``min_matches`` pairs, ValueError when the SNRs do not match the stars."""
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    xy = np.asarray(xy, float).reshape(-1, 2)
    ref_snr, snr = _capped_snrs(ref_snr, snr, len(ref_xy), len(xy), snr_cap)
    if len(xy) < min_matches:
        raise RegistrationError(f"too few stars to refine ({len(xy)})")
    return _refit(reg.matrix, ref_xy, xy, cKDTree(xy), tolerance, model, ref_snr, snr, min_matches)


def match_translation(ref_xy: np.ndarray, xy: np.ndarray, *, tolerance: float = 2.0, brightest: int = 40,
                      min_matches: int = 6, max_shift: float | None = None) -> Registration:
    """A pure shift carrying ``ref_xy`` onto ``xy``, by voting on the offsets of all
    pairs of the ``brightest`` stars (:func:`fieldtui.imaging.align.match_offset`).

    The fallback for frames whose stars are too few or too faint for
    triangles (short exposures of a crowded field, e.g. a globular cluster
    whose core breaks into blobs): frames of one night on a tracking mount
    differ by a drift. Raises :class:`RegistrationError` with fewer than
    ``min_matches`` agreeing pairs.
    """
    from ..imaging.align import match_offset

    found = match_offset(np.asarray(ref_xy, float), np.asarray(xy, float), tolerance=tolerance,
                         max_shift=max_shift, brightest=brightest)
    if found is None or found[2] < min_matches:
        n = 0 if found is None else found[2]
        raise RegistrationError(f"only {n} stars agree on a shift (need {min_matches})")
    dx, dy, n = found
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    ref = np.asarray(ref_xy, float)[:brightest]
    d, k = cKDTree(np.asarray(xy, float)).query(_apply(m, ref), distance_upper_bound=tolerance)
    ok = np.isfinite(d)
    if ok.sum() >= 3:
        off = np.median(np.asarray(xy, float)[k[ok]] - ref[ok], axis=0)
        m[:, 2] = off
        res = np.linalg.norm(_apply(m, ref[ok]) - np.asarray(xy, float)[k[ok]], axis=1)
        return Registration(matrix=m, matched=int(ok.sum()), rms=float(np.sqrt(np.mean(res ** 2))))
    return Registration(matrix=m, matched=n, rms=float("nan"))


def warp(src: np.ndarray, matrix: np.ndarray, shape: tuple[int, int], *, origin: tuple[int, int] = (0, 0),
         src_origin: tuple[int, int] = (0, 0), kernel: str = "lanczos") -> np.ndarray:
    """Resample ``src`` (``(h, w)`` or ``(h, w, c)``, float32) onto the reference grid.

    The output covers reference pixels ``origin`` (x0, y0) … + ``shape``
    (rows, columns); ``src`` is the part of the frame starting at frame
    pixel ``src_origin`` (x, y). ``kernel`` ``"lanczos"`` (Lanczos-4, 8×8:
    keeps stars sharp), ``"cubic"`` or ``"linear"``. Output pixels whose
    kernel reaches outside ``src`` are NaN (not covered).
    """
    m = np.array(matrix, float)
    x0, y0 = origin
    sx, sy = src_origin
    # output (u, v) is reference (u + x0, v + y0); frame = M·ref; src index = frame − src_origin
    t = m[:, :2] @ np.array([x0, y0], float) + m[:, 2] - np.array([sx, sy], float)
    mm = np.column_stack([m[:, :2], t])
    flags = {"lanczos": cv2.INTER_LANCZOS4, "cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}[kernel]
    src = np.asarray(src, dtype=np.float32)
    if not (src.flags.c_contiguous or (src.ndim == 2 and src.strides[1] == src.itemsize)):
        # OpenCV reads rows at any stride (a frame's columns cut from its rows need no copy)
        src = np.ascontiguousarray(src)
    rows, cols = shape
    out = cv2.warpAffine(src, mm, (cols, rows), flags=flags | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(float("nan"),) * 4)
    return out


def source_box(matrix: np.ndarray, origin: tuple[int, int], shape: tuple[int, int], frame_hw: tuple[int, int],
               margin: int = 5, even: bool = False) -> tuple[int, int, int, int] | None:
    """The frame rectangle ``(x0, y0, x1, y1)`` (exclusive ends, clipped to the
    frame) that resampling reference pixels ``origin`` … + ``shape`` reads,
    with ``margin`` pixels for the kernel; ``even`` aligns the start on even
    pixels (a Bayer mosaic keeps its pattern). None when it misses the frame."""
    x0, y0 = origin
    rows, cols = shape
    corners = np.array([[x0, y0], [x0 + cols - 1, y0], [x0, y0 + rows - 1], [x0 + cols - 1, y0 + rows - 1]], float)
    p = _apply(np.asarray(matrix, float), corners)
    h, w = frame_hw
    fx0 = max(0, int(math.floor(p[:, 0].min())) - margin)
    fy0 = max(0, int(math.floor(p[:, 1].min())) - margin)
    fx1 = min(w, int(math.ceil(p[:, 0].max())) + margin + 1)
    fy1 = min(h, int(math.ceil(p[:, 1].max())) + margin + 1)
    if even:
        fx0 -= fx0 % 2
        fy0 -= fy0 % 2
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return fx0, fy0, fx1, fy1


def common_box(matrices: list[np.ndarray], frame_hw: tuple[int, int], border: int = 4,
               step: int = 8) -> tuple[int, int, int, int]:
    """The largest axis-aligned rectangle of the reference grid ``(x0, y0, x1, y1)``
    that every frame covers (the partly covered borders cropped), found on a
    grid of ``step`` pixels; ``border`` pixels are kept clear of each frame's
    edge (the resampling kernel). Raises ValueError when the frames share no area."""
    h, w = frame_hw
    ys = np.arange(0, h, step, dtype=float)
    xs = np.arange(0, w, step, dtype=float)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    full = np.ones(len(pts), bool)
    for m in matrices:
        q = _apply(np.asarray(m, float), pts)
        full &= (q[:, 0] >= border) & (q[:, 0] <= w - 1 - border) & (q[:, 1] >= border) & (q[:, 1] <= h - 1 - border)
    full = full.reshape(gy.shape)
    if not full.any():
        raise ValueError("the registered frames have no area in common")
    r = np.nonzero(full.any(axis=1))[0]
    c = np.nonzero(full.any(axis=0))[0]
    r0, r1, c0, c1 = r[0], r[-1], c[0], c[-1]
    while True:
        sub = full[r0:r1 + 1, c0:c1 + 1]
        if sub.all():
            break
        bad = {"top": (~sub[0]).sum(), "bottom": (~sub[-1]).sum(), "left": (~sub[:, 0]).sum(), "right": (~sub[:, -1]).sum()}
        side = max(bad, key=bad.get)
        if side == "top":
            r0 += 1
        elif side == "bottom":
            r1 -= 1
        elif side == "left":
            c0 += 1
        else:
            c1 -= 1
        if r1 < r0 or c1 < c0:
            raise ValueError("the registered frames have no area in common")
    # grid points are inside; the rectangle reaches to the next grid point only where it is sure
    return int(xs[c0]), int(ys[r0]), int(min(w, xs[c1] + 1)), int(min(h, ys[r1] + 1))


def _taps(frac: np.ndarray, kernel: str) -> np.ndarray:
    """OpenCV's interpolation weights at sub-pixel fractions ``frac`` ``(n,)``: ``(n, taps)``."""
    if kernel == "linear":
        return np.column_stack([1.0 - frac, frac])
    if kernel == "cubic":  # OpenCV: Keys' cubic with a = −0.75, 4 taps
        a = -0.75
        x = np.abs(np.arange(-1, 3)[None, :] - frac[:, None])
        w = np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a)
    elif kernel == "lanczos":  # Lanczos-4, 8 taps, normalised as OpenCV does
        x = np.arange(-3, 5)[None, :] - frac[:, None]
        w = np.sinc(x) * np.sinc(x / 4)
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    return w / w.sum(axis=1, keepdims=True)


def noise_factor(matrix: np.ndarray, shape: tuple[int, int], kernel: str = "linear", step: int = 16,
                 correlation: np.ndarray | None = None) -> float:
    """The fraction of a frame's per-pixel noise variance that resampling it onto the
    reference grid (rows, columns ``shape``) with ``kernel`` keeps, averaged over the grid:
    the mean of Σw² of the kernel's weights at each output pixel's sub-pixel position in
    the frame (OpenCV's 1/32 px steps), sampled every ``step`` pixels. 1 for a whole-pixel
    shift; for bilinear (1 − t)² + t² per axis, 4/9 on average over shifts; Lanczos-4 keeps
    0.84 on average. Noise on scales of several pixels keeps all its variance whatever the
    kernel: only the per-pixel figure falls.

    That is for noise independent from pixel to pixel (a sensor's). A debayered plane's
    is not: three pixels in four are interpolated from their neighbours, so averaging
    neighbours lowers it less. ``correlation`` (``(2R + 1, 2R + 1)``, the noise's
    correlation at offsets −R … R rows and columns, 1 at the centre:
    :func:`noise_correlation`) gives Σ over pairs of taps of wᵢ wⱼ ρ(i − j) instead
    (correlation beyond R taken as 0). Raises ValueError for an unknown kernel or a
    correlation of another shape."""
    h, w = shape
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    p = _apply(np.asarray(matrix, float), np.column_stack([xs.ravel(), ys.ravel()]).astype(float))
    rho = None
    if correlation is not None:
        rho = np.asarray(correlation, float)
        if rho.ndim != 2 or rho.shape[0] != rho.shape[1] or rho.shape[0] % 2 == 0:
            raise ValueError(f"correlation must be a square of odd side, got shape {rho.shape}")
    lags = []  # per axis (x, then y): A(δ) = Σᵢ wᵢ wᵢ₊δ, δ = 0 … R
    for axis in (0, 1):
        f = np.round((p[:, axis] - np.floor(p[:, axis])) * 32) / 32
        f[f >= 1] = 0.0  # rounded up to the next pixel
        taps = _taps(f, kernel)
        r = 0 if rho is None else min(rho.shape[0] // 2, taps.shape[1] - 1)
        lags.append(np.column_stack([(taps[:, :taps.shape[1] - d] * taps[:, d:]).sum(axis=1)
                                     for d in range(r + 1)]))
    ax, ay = lags
    if rho is None:
        return float(np.mean(ax[:, 0] * ay[:, 0]))
    c = rho.shape[0] // 2
    r = ax.shape[1] - 1
    total = np.zeros(len(ax))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            total += rho[c + dy, c + dx] * ax[:, abs(dx)] * ay[:, abs(dy)]
    return float(np.mean(total))


def noise_correlation(plane: np.ndarray, reach: int = 2, far: int = 8) -> np.ndarray:
    """The correlation of an image's noise between pixels ``(2·reach + 1, 2·reach + 1)``
    at offsets −reach … reach rows (first axis) and columns, 1 at the centre, from one
    plane ``(H, W)`` (rows and columns > 2·far): 1 − Var(x − x shifted by the offset) /
    Var(x − x shifted by ``far`` pixels), ``far`` pixels away the noise taken as
    independent. Each variance is that of the differences within 6 robust σ (1.4826 × their
    median absolute value) of zero, so stars, whose differences are large, do not count;
    not the robust σ itself: a debayered plane's noise differs from one Bayer site to the
    next, and of such a mixture the median measures the wrong variance (on RCD-debayered
    white noise, the noise kept by a half-pixel bilinear shift came out 0.541 from it
    against 0.479 measured; 0.482 from the clipped variances). Symmetric (ρ(−δ) = ρ(δ)).
    NaN are ignored; an image without noise gives no correlation (the centre alone)."""
    a = np.asarray(plane, np.float32)

    h, w = a.shape

    def var(dy: int, dx: int) -> float:
        d = (a[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
             - a[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
        d = np.abs(d[np.isfinite(d)])
        if not d.size:
            return 0.0
        d = d[d < 6.0 * 1.4826 * float(np.median(d))]
        return float(np.mean(np.square(d, dtype=np.float64))) if d.size else 0.0

    out = np.zeros((2 * reach + 1, 2 * reach + 1))
    out[reach, reach] = 1.0
    ref = 0.5 * (var(0, far) + var(far, 0))
    if not ref > 0:
        return out
    for dy in range(0, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy == 0 and dx <= 0:
                continue
            rho = float(np.clip(1.0 - var(dy, dx) / ref, -1.0, 1.0))
            out[reach + dy, reach + dx] = out[reach - dy, reach - dx] = rho
    return out
