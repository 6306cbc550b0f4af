"""Pixel combination: known answers for each rejection and for the weights."""

import numpy as np
import pytest

from fieldtui.stacking.combine import Rejection, combine


def test_sigma_clipping_drops_the_outlier_and_averages_the_rest():
    # 15 frames: with fewer, one outlier inflates the plain standard deviation enough to hide
    # itself (8 values with one at 500: σ ≈ 171, 490 < 3σ), which is why winsorizing exists
    vals = np.array([10.0, 11.0, 9.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.4, 9.6, 10.0, 500.0], np.float32)
    block = vals[:, None, None] * np.ones((1, 2, 3), np.float32)
    for kind in ("sigma", "winsorized", "linear"):
        res, nrej = combine(block, rejection=Rejection(kind), return_rejected=True)
        assert np.allclose(res, vals[:-1].mean(), atol=1e-4), kind
        assert (nrej == 1).all(), kind
    few = np.array([10.0, 11.0, 9.0, 10.5, 9.5, 10.2, 9.8, 500.0], np.float32)[:, None]
    assert combine(few, rejection=Rejection("sigma"))[0] > 50
    assert combine(few, rejection=Rejection("winsorized"))[0] == pytest.approx(10.0, abs=1e-4)
    # without rejection the outlier is in the mean
    assert np.allclose(combine(block, rejection=Rejection("none")), vals.mean())


def test_weights_and_median_and_uncovered_pixels():
    block = np.array([1.0, 2.0, 4.0], np.float32)[:, None] * np.ones((1, 4), np.float32)
    block[2, 0] = np.nan   # frame 3 does not cover pixel 0
    block[:, 3] = np.nan   # nobody covers pixel 3
    res = combine(block, rejection=Rejection("none"), weights=np.array([1.0, 1.0, 2.0]))
    assert res[0] == pytest.approx(1.5)
    assert res[1] == pytest.approx((1 + 2 + 8) / 4)
    assert np.isnan(res[3])
    med = combine(block, method="median")
    assert med[0] == pytest.approx(1.5) and med[1] == pytest.approx(2.0) and np.isnan(med[3])


def test_gaussian_noise_averages_down_with_rejection():
    rng = np.random.default_rng(0)
    block = rng.normal(100, 10, (25, 80, 100)).astype(np.float32)
    for kind, k in (("sigma", 3), ("winsorized", 3), ("linear", 5)):
        res = combine(block, rejection=Rejection(kind, k, k))
        # pure Gaussian noise: little rejected, noise within 8 % of 10/sqrt(25)
        assert abs(res.std() / 2.0 - 1) < 0.08, (kind, res.std())
        assert abs(res.mean() - 100) < 0.1


def test_bad_arguments():
    with pytest.raises(ValueError):
        Rejection("kappa")
    with pytest.raises(ValueError):
        combine(np.zeros((3, 2)), weights=np.ones(2))
    with pytest.raises(ValueError):
        combine(np.zeros((3, 2)), method="sum")


@pytest.mark.parametrize("n", [1, 3, 8, 17])
def test_compiled_kernel_gives_the_reference_algorithms_values(n):
    # the C kernel against the same algorithm run by the Python interpreter (the numba
    # kernel's source, uncompiled), pixel by pixel: outliers, NaN, ties, weights
    import importlib
    comb = importlib.import_module("fieldtui.stacking.combine")
    if comb._ckernel is None:
        pytest.skip("the C kernel is not built (numba's runs)")
    from fieldtui.stacking._combine_numba import _pixel
    rng = np.random.default_rng(n)
    block = (1000 + 30 * rng.standard_normal((n, 300))).astype(np.float32)
    hit = rng.random(block.shape) < 0.05
    block[hit] += rng.uniform(100, 5000, hit.sum()).astype(np.float32)
    block[rng.random(block.shape) < 0.03] = np.nan
    block[:, :10] = 7.0
    w = rng.uniform(0.5, 1.0, n)
    for kind, k, method in (("none", 3, "mean"), ("sigma", 3, "mean"), ("winsorized", 3, "mean"),
                            ("linear", 5, "mean"), ("none", 3, "median")):
        got, nrej = combine(block, method=method, rejection=Rejection(kind, k, k), weights=w,
                            return_rejected=True, threads=2)
        for q in range(block.shape[1]):
            ok = np.isfinite(block[:, q])
            m = int(ok.sum())
            v = np.zeros(n + 1)
            ww = np.zeros(n + 1)
            v[:m], ww[:m] = block[ok, q], w[ok]
            ref, rej = _pixel.py_func(v, ww, np.zeros(n + 2), np.zeros(n + 2), m, comb._KIND[kind], float(k),
                                      float(k), 5, method == "median")
            if m == 0:
                assert np.isnan(got[q])
                continue
            assert got[q] == np.float32(ref), (kind, method, q)
            assert nrej[q] == rej, (kind, method, q)
