"""Star profile fitting and shape moments on stacks of cut-outs.

Everything here works on a stack of ``n`` square cut-outs at once
(``(n, b, b)`` arrays), so measuring thirty stars costs about as much numpy
overhead as measuring one.

The profile is an elliptical Gaussian plus a constant,
``A exp(-(a dx² + 2 b dx dy + c dy²) / 2) + B``, fitted by a batched
Levenberg–Marquardt with Marquardt's diagonal scaling. A free-beta Moffat
was tried first and dropped: on undersampled real stars its core width
and beta trade against each other (see ``stars.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PIXEL_VAR = 1.0 / 12.0  # variance a pixel's box response adds to a star's image, px²
S_MIN = 0.25  # narrowest sigma (px) a fit may reach


def _elliptical_model(p: np.ndarray, xx: np.ndarray, yy: np.ndarray):
    """Elliptical Gaussian ``A exp(-Q/2) + B``, ``Q = a dx² + 2 b dx dy + c dy²``: values (n, m), Jacobian (n, m, 7)."""
    x0, y0, amp, sky, ia, ib, ic = (p[:, i : i + 1] for i in range(7))
    dx = xx - x0
    dy = yy - y0
    q = ia * dx * dx + 2.0 * ib * dx * dy + ic * dy * dy
    # A trial step can leave the form indefinite (q < 0); such a trial is refused by the
    # caller, and clipping q at 0 keeps its exp from overflowing on the way.
    f = np.exp(-0.5 * np.clip(q, 0.0, 700.0))
    m = amp * f + sky
    af = amp * f
    j = np.empty(m.shape + (7,))
    j[..., 0] = af * (ia * dx + ib * dy)
    j[..., 1] = af * (ib * dx + ic * dy)
    j[..., 2] = f
    j[..., 3] = 1.0
    j[..., 4] = -0.5 * af * dx * dx
    j[..., 5] = -af * dx * dy
    j[..., 6] = -0.5 * af * dy * dy
    return m, j


@dataclass
class EllipticalFit:
    """Results of :func:`fit_elliptical_gaussians` (arrays of length n).

    ``cxx, cyy, cxy`` are the image's covariance (px²), the pixel's box
    response included; :meth:`psf_axes` takes it off.
    """

    x: np.ndarray
    y: np.ndarray
    amplitude: np.ndarray
    sky: np.ndarray
    cxx: np.ndarray
    cyy: np.ndarray
    cxy: np.ndarray
    ok: np.ndarray

    def psf_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Major and minor sigma (px) of the PSF, pixel box removed, and the
        major axis' angle (degrees, 0–180 from +x toward +y)."""
        half_tr = 0.5 * (self.cxx + self.cyy)
        diff = np.sqrt(0.25 * (self.cxx - self.cyy) ** 2 + self.cxy**2)
        l1 = half_tr + diff
        l2 = half_tr - diff
        l2p = np.maximum(l2 - PIXEL_VAR, 0.25 * np.maximum(l2, 1e-9))
        l1p = np.maximum(l1 - PIXEL_VAR, l2p)
        pa = np.degrees(0.5 * np.arctan2(2.0 * self.cxy, self.cxx - self.cyy)) % 180.0
        return np.sqrt(l1p), np.sqrt(l2p), pa


def fit_elliptical_gaussians(
    cutouts: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    s0: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    iterations: int = 25,
    tol: float = 1e-6,
) -> EllipticalFit:
    """Fit an elliptical Gaussian plus a constant to every cut-out (batched Levenberg–Marquardt).

    ``cutouts`` is ``(n, b, b)``; ``x0, y0`` starting centres and ``s0``
    starting sigmas (px) per cut-out; ``mask`` (bool, ``(b, b)`` or
    ``(n, b, b)``) the pixels that take part (the green ones of a Bayer
    mosaic). The model is evaluated at pixel centres, so the fitted
    covariance includes the pixel's box response (1/12 px²). This is the
    profile the field's tools (Siril, PixInsight's DynamicPSF) fit for a
    star's FWHM and elongation.
    """
    cut = np.asarray(cutouts, dtype=np.float64)
    n, bh, bw = cut.shape
    yy, xx = np.mgrid[0:bh, 0:bw]
    xx = xx.ravel()[None, :].astype(np.float64)
    yy = yy.ravel()[None, :].astype(np.float64)
    data = cut.reshape(n, -1)
    wgt = None if mask is None else np.broadcast_to(np.asarray(mask, bool), cut.shape).reshape(n, -1).astype(float)
    edge = np.zeros((bh, bw), bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    e = edge.ravel()
    if wgt is None:
        sky0 = np.median(data[:, e], axis=1)
        peak0 = data.max(axis=1) - sky0
    else:
        sky0 = np.nanmedian(np.where(wgt[:, e] > 0, data[:, e], np.nan), axis=1)
        peak0 = np.where(wgt > 0, data, -np.inf).max(axis=1) - sky0
    s0 = np.clip(np.asarray(s0, float), S_MIN + 0.05, bw / 2.0)
    p = np.column_stack([np.asarray(x0, float), np.asarray(y0, float), np.maximum(peak0, 1e-6), sky0,
                         1.0 / s0**2, np.zeros(n), 1.0 / s0**2])
    inv_max = 1.0 / S_MIN**2
    inv_min = 1.0 / float(max(bw, bh)) ** 2
    lo = np.array([0.0, 0.0, 0.0, -np.inf, inv_min, -inv_max, inv_min])
    hi = np.array([bw - 1.0, bh - 1.0, np.inf, np.inf, inv_max, inv_max, inv_max])

    def evaluate(q, rows):
        mm, jj = _elliptical_model(q, xx, yy)
        rr = data[rows] - mm
        if wgt is not None:
            rr *= wgt[rows]
            jj *= wgt[rows][..., None]
        return rr, jj

    all_rows = np.arange(n)
    r, j = evaluate(p, all_rows)
    cost = (r * r).sum(axis=1)
    lam = np.full(n, 1e-3)
    active = np.ones(n, bool)
    eye = np.eye(7)
    for _ in range(iterations):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        jj = j[idx]
        jjt = jj.transpose(0, 2, 1)
        jtj = jjt @ jj
        jtr = (jjt @ r[idx][..., None])[..., 0]
        diag = np.einsum("nii->ni", jtj)
        damp = jtj + (lam[idx, None, None] * (diag[:, :, None] + 1e-12)) * eye
        try:
            step = np.linalg.solve(damp, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(jtr)
            for k in range(idx.size):
                step[k] = np.linalg.lstsq(damp[k], jtr[k], rcond=None)[0]
        trial = np.clip(p[idx] + step, lo, hi)
        rt, jt = evaluate(trial, idx)
        ct = (rt * rt).sum(axis=1)
        # the inverse covariance must stay positive definite
        posdef = trial[:, 4] * trial[:, 6] - trial[:, 5] ** 2 > 1e-12
        better = (ct < cost[idx]) & posdef
        gi = idx[better]
        rel = (cost[gi] - ct[better]) / np.maximum(cost[gi], 1e-300)
        r[gi] = rt[better]
        p[gi] = trial[better]
        j[gi] = jt[better]
        cost[gi] = ct[better]
        lam[gi] = np.maximum(lam[gi] / 3.0, 1e-7)
        bi = idx[~better]
        lam[bi] *= 4.0
        done = np.zeros(n, bool)
        done[gi[rel < tol]] = True
        done[bi[lam[bi] > 1e3]] = True
        active &= ~done
    det = p[:, 4] * p[:, 6] - p[:, 5] ** 2
    det_safe = np.where(det > 0, det, 1.0)
    cxx = p[:, 6] / det_safe
    cyy = p[:, 4] / det_safe
    cxy = -p[:, 5] / det_safe
    ok = (
        np.isfinite(p).all(axis=1)
        & (det > 0)
        & (p[:, 2] > 0)
        & (p[:, 0] > 0.5)
        & (p[:, 0] < bw - 1.5)
        & (p[:, 1] > 0.5)
        & (p[:, 1] < bh - 1.5)
        & (np.maximum(cxx, cyy) < (bw / 2.0) ** 2)
    )
    return EllipticalFit(p[:, 0], p[:, 1], p[:, 2], p[:, 3], cxx, cyy, cxy, ok)


def shape_moments(
    cutouts: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    sky: np.ndarray,
    size: np.ndarray,
    *,
    iterations: int = 4,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Elongation (major/minor axis ratio) and position angle of each star.

    Adaptive Gaussian-weighted second moments: the window is twice the
    current estimate of the star's own covariance, and the window's effect
    is divided back out (exact for an elliptical Gaussian), so the result
    is the star's true covariance rather than one shrunk toward round;
    the pixel's box response (1/12 px²) is taken off both axes, so the
    ratio is the PSF's, like the FWHM.
    The angle is in degrees, 0–180, from +x (column) toward +y (row).
    ``mask`` (bool, ``(b, b)`` or ``(n, b, b)``) keeps only some pixels,
    e.g. the green pixels of a Bayer mosaic (a checkerboard samples the
    moments as well as the full grid for stars wider than a pixel).
    """
    cut = np.asarray(cutouts, dtype=np.float64)
    n, bh, bw = cut.shape
    yy, xx = np.mgrid[0:bh, 0:bw]
    img = cut - np.asarray(sky, float)[:, None, None]
    if mask is not None:
        img = img * np.asarray(mask, bool)
    dx = xx[None] - np.asarray(x0, float)[:, None, None]
    dy = yy[None] - np.asarray(y0, float)[:, None, None]
    s2 = np.asarray(size, float) ** 2
    cxx, cyy, cxy = s2.copy(), s2.copy(), np.zeros(n)
    cap = (min(bh, bw) / 2.5) ** 2
    for _ in range(iterations):
        # window covariance W = 2 C; weight exp(-0.5 d^T W^-1 d)
        wxx, wyy, wxy = 2 * cxx, 2 * cyy, 2 * cxy
        det = wxx * wyy - wxy * wxy
        det = np.where(det > 1e-12, det, 1e-12)
        ixx, iyy, ixy = wyy / det, wxx / det, -wxy / det
        arg = (
            ixx[:, None, None] * dx * dx
            + 2 * ixy[:, None, None] * dx * dy
            + iyy[:, None, None] * dy * dy
        )
        w = np.exp(-0.5 * arg) * img
        tot = w.sum(axis=(1, 2))
        tot = np.where(np.abs(tot) > 1e-12, tot, 1e-12)
        mxx = (w * dx * dx).sum(axis=(1, 2)) / tot
        myy = (w * dy * dy).sum(axis=(1, 2)) / tot
        mxy = (w * dx * dy).sum(axis=(1, 2)) / tot
        # C = (M^-1 - W^-1)^-1
        mdet = mxx * myy - mxy * mxy
        ok = (mdet > 1e-12) & (mxx > 0) & (myy > 0)
        mdet = np.where(ok, mdet, 1.0)
        a11 = myy / mdet - ixx
        a22 = mxx / mdet - iyy
        a12 = -mxy / mdet - ixy
        adet = a11 * a22 - a12 * a12
        good = ok & (adet > 1e-12) & (a11 > 0) & (a22 > 0)
        adet = np.where(good, adet, 1.0)
        nxx = np.where(good, a22 / adet, np.where(ok, 1.5 * mxx, cxx))
        nyy = np.where(good, a11 / adet, np.where(ok, 1.5 * myy, cyy))
        nxy = np.where(good, -a12 / adet, np.where(ok, 1.5 * mxy, cxy))
        cxx = np.clip(nxx, 0.05, cap)
        cyy = np.clip(nyy, 0.05, cap)
        cxy = np.clip(nxy, -np.sqrt(cxx * cyy) * 0.99, np.sqrt(cxx * cyy) * 0.99)
    half_tr = 0.5 * (cxx + cyy)
    diff = np.sqrt(0.25 * (cxx - cyy) ** 2 + cxy * cxy)
    # the pixel's box response (1/12 px² on both axes) removed, as for the FWHM
    lmin = np.maximum(half_tr - diff - PIXEL_VAR, np.maximum(0.25 * (half_tr - diff), 1e-6))
    lmaj = np.maximum(half_tr + diff - PIXEL_VAR, lmin)
    elong = np.sqrt(lmaj / lmin)
    pa = np.degrees(0.5 * np.arctan2(2 * cxy, cxx - cyy)) % 180.0
    return elong, pa
