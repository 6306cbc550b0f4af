"""Star profile fitting and shape moments on stacks of cut-outs.

Everything here works on a stack of ``n`` square cut-outs at once
(``(n, b, b)`` arrays), so measuring thirty stars costs about as much numpy
overhead as measuring one.

The profile is a circular Moffat written with ``u = 1/beta``::

    I(r) = A * (1 + u * r**2 / (2 s**2)) ** (-1/u) + B

which becomes the Gaussian ``A * exp(-r**2 / (2 s**2)) + B`` as ``u -> 0``.
One model therefore fits Gaussian seeing and Moffat wings alike, and the
fitted ``u`` says which it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

U_MIN = 1e-3  # beta = 1000: a Gaussian to far better than any noise
U_MAX = 0.8  # beta = 1.25: wider wings than any real star
S_MIN = 0.25


def fwhm_from(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Full width at half maximum of the profile with width ``s`` and shape ``u``."""
    u = np.maximum(u, U_MIN)
    return 2.0 * s * np.sqrt(2.0 * np.expm1(u * np.log(2.0)) / u)


def hfr_from(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Radius enclosing half of the total flux of the profile.

    For a Moffat of ``beta = 1/u`` the enclosed fraction is
    ``1 - (1 + r**2/alpha**2) ** (1 - beta)`` with ``alpha**2 = 2 s**2 / u``;
    the Gaussian limit is ``s * sqrt(2 ln 2)``.
    """
    u = np.clip(u, U_MIN, U_MAX)
    return s * np.sqrt(2.0 * np.expm1(np.log(2.0) * u / (1.0 - u)) / u)


@dataclass
class FitResult:
    x: np.ndarray  # centre in cut-out pixel coordinates
    y: np.ndarray
    amplitude: np.ndarray
    sky: np.ndarray
    s: np.ndarray
    u: np.ndarray
    ok: np.ndarray  # bool: converged to a sensible star

    @property
    def fwhm(self) -> np.ndarray:
        return fwhm_from(self.s, self.u)

    @property
    def hfr(self) -> np.ndarray:
        return hfr_from(self.s, self.u)


def _model(p: np.ndarray, xx: np.ndarray, yy: np.ndarray, jac: bool):
    """Model values (n, m) and optionally the Jacobian (n, m, 6)."""
    x0, y0, a, b, s, u = (p[:, i : i + 1] for i in range(6))
    dx = xx - x0
    dy = yy - y0
    s2 = s * s
    q = (dx * dx + dy * dy) / (2.0 * s2)
    uq = u * q
    lg = np.log1p(uq)
    f = np.exp(-lg / u)
    m = a * f + b
    if not jac:
        return m, None
    dl_dq = 1.0 / (1.0 + uq)
    dl_du = (uq / (1.0 + uq) - lg) / (u * u)
    af = -a * f
    common = af * dl_dq
    j = np.empty(m.shape + (6,))
    j[..., 0] = common * (-dx / s2)
    j[..., 1] = common * (-dy / s2)
    j[..., 2] = f
    j[..., 3] = 1.0
    j[..., 4] = common * (-2.0 * q / s)
    j[..., 5] = af * dl_du
    return m, j


def fit_profiles(
    cutouts: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    s0: np.ndarray | None = None,
    *,
    iterations: int = 20,
    tol: float = 1e-6,
) -> FitResult:
    """Fit the Moffat/Gaussian profile to every cut-out (Levenberg–Marquardt, batched).

    ``cutouts`` is ``(n, b, b)``, background-subtracted or not (a constant
    sky term is fitted). ``x0, y0`` are starting centres in cut-out pixels.
    """
    cut = np.asarray(cutouts, dtype=np.float64)
    n, bh, bw = cut.shape
    yy, xx = np.mgrid[0:bh, 0:bw]
    xx = xx.ravel()[None, :].astype(np.float64)
    yy = yy.ravel()[None, :].astype(np.float64)
    data = cut.reshape(n, -1)
    edge = np.concatenate([cut[:, 0, :], cut[:, -1, :], cut[:, 1:-1, 0], cut[:, 1:-1, -1]], axis=1)
    sky0 = np.median(edge, axis=1)
    peak0 = data.max(axis=1) - sky0
    if s0 is None:
        s0 = np.full(n, 1.5)
    p = np.column_stack(
        [
            np.asarray(x0, float),
            np.asarray(y0, float),
            np.maximum(peak0, 1e-6),
            sky0,
            np.clip(np.asarray(s0, float), S_MIN + 0.05, bw / 2.0),
            np.full(n, 0.25),
        ]
    )
    lo = np.array([0.0, 0.0, 0.0, -np.inf, S_MIN, U_MIN])
    hi = np.array([bw - 1.0, bh - 1.0, np.inf, np.inf, float(max(bw, bh)), U_MAX])
    m, j = _model(p, xx, yy, True)
    r = data - m
    cost = (r * r).sum(axis=1)
    lam = np.full(n, 1e-3)
    active = np.ones(n, bool)
    eye = np.eye(6)
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
        mt, jt = _model(trial, xx, yy, True)
        rt = data[idx] - mt
        ct = (rt * rt).sum(axis=1)
        better = ct < cost[idx]
        gi = idx[better]
        rel = (cost[gi] - ct[better]) / np.maximum(cost[gi], 1e-300)
        p_new = trial[better]
        r[gi] = rt[better]
        p[gi] = p_new
        j[gi] = jt[better]
        cost[gi] = ct[better]
        lam[gi] = np.maximum(lam[gi] / 3.0, 1e-7)
        bi = idx[~better]
        lam[bi] *= 4.0
        done = np.zeros(n, bool)
        done[gi[rel < tol]] = True
        done[bi[lam[bi] > 1e3]] = True
        # a step that the bounds cancelled (e.g. u pinned at its Gaussian limit)
        moved = np.abs(trial - p[idx])[:, [0, 1, 4, 5]].max(axis=1)
        done[idx[(moved < 1e-5) & ~better]] = True
        active &= ~done
    ok = (
        np.isfinite(p).all(axis=1)
        & (p[:, 2] > 0)
        & (p[:, 0] > 0.5)
        & (p[:, 0] < bw - 1.5)
        & (p[:, 1] > 0.5)
        & (p[:, 1] < bh - 1.5)
        & (p[:, 4] < bw / 2.0)
    )
    return FitResult(p[:, 0], p[:, 1], p[:, 2], p[:, 3], p[:, 4], p[:, 5], ok)


def shape_moments(
    cutouts: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    sky: np.ndarray,
    size: np.ndarray,
    *,
    iterations: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Elongation (major/minor axis ratio) and position angle of each star.

    Adaptive Gaussian-weighted second moments: the window is twice the
    current estimate of the star's own covariance, and the window's effect
    is divided back out (exact for an elliptical Gaussian), so the result
    is the star's true covariance rather than one shrunk toward round.
    The angle is in degrees, 0–180, from +x (column) toward +y (row).
    """
    cut = np.asarray(cutouts, dtype=np.float64)
    n, bh, bw = cut.shape
    yy, xx = np.mgrid[0:bh, 0:bw]
    img = cut - np.asarray(sky, float)[:, None, None]
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
    lmaj = half_tr + diff
    lmin = np.maximum(half_tr - diff, 1e-6)
    elong = np.sqrt(lmaj / lmin)
    pa = np.degrees(0.5 * np.arctan2(2 * cxy, cxx - cyy)) % 180.0
    return elong, pa
