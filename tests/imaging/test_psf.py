"""The batched elliptical Gaussian fit (:mod:`fieldtui.imaging.psf`)."""

import warnings

import numpy as np

from fieldtui.imaging import psf


def test_an_indefinite_trial_step_stays_finite():
    # a = c = 1, b = 2: the quadratic form is indefinite, so Q is very negative along x = -y.
    p = np.array([[7.0, 7.0, 1000.0, 10.0, 1.0, 2.0, 1.0]])
    yy, xx = np.mgrid[0:15, 0:15]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m, j = psf._elliptical_model(p, xx.ravel()[None, :].astype(float), yy.ravel()[None, :].astype(float))
    assert np.isfinite(m).all() and np.isfinite(j).all()
    assert m.max() <= 1010.0


def test_fit_recovers_a_known_elliptical_star():
    # sigma 2.0 px along x and 1.2 px along y, on a sky of 100, no noise
    yy, xx = np.mgrid[0:21, 0:21].astype(float)
    # sample the Gaussian at pixel centres; the fitted covariance then has no box term to add
    img = 100.0 + 5000.0 * np.exp(-0.5 * (((xx - 10.3) / 2.0) ** 2 + ((yy - 9.6) / 1.2) ** 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = psf.fit_elliptical_gaussians(img[None], np.array([10.0]), np.array([10.0]), np.array([1.5]))
    assert fit.ok[0]
    assert abs(fit.x[0] - 10.3) < 1e-3 and abs(fit.y[0] - 9.6) < 1e-3
    assert abs(fit.cxx[0] - 4.0) < 1e-3 and abs(fit.cyy[0] - 1.44) < 1e-3 and abs(fit.cxy[0]) < 1e-3
    assert abs(fit.amplitude[0] - 5000.0) < 0.5 and abs(fit.sky[0] - 100.0) < 0.05
