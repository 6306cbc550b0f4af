"""Pixel combination: known answers for each rejection and for the weights."""

import numpy as np
import pytest

from fieldtui.stacking.combine import Rejection, combine, pooled_deviation, shot_noise


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


def test_pooled_deviation_is_one_frames_noise_whatever_the_signal():
    rng = np.random.default_rng(3)
    # a signal that changes from pixel to pixel (stars, gradient) but not between frames,
    # noise of 7 ADU; one frame with cosmic-ray hits on a tenth of its pixels
    signal = rng.uniform(0, 5000, (60, 80)).astype(np.float32)
    block = signal + rng.normal(0, 7.0, (16, 60, 80)).astype(np.float32)
    block[4, ::10] += 3000
    assert pooled_deviation(block)[0] == pytest.approx(7.0, rel=0.04)
    # colour: one figure per channel (the last axis)
    rgb = signal[..., None] + rng.normal(0, 1, (16, 60, 80, 3)).astype(np.float32) * np.float32([3, 5, 9])
    assert pooled_deviation(rgb) == pytest.approx([3, 5, 9], rel=0.04)
    assert pooled_deviation(block[:1])[0] == 0


def test_winsorized_rejection_of_sixteen_frames_costs_under_one_percent_of_noise():
    # 16 frames of pure Gaussian noise: the winsorized deviation estimated from 16 values alone
    # is often low, and every value it rejects pulls the mean by ~3σ/15 (the rejection cost
    # +1.9 % of noise over a plain mean, 0.44 % of values rejected); never below the frames'
    # pooled deviation: +0.7 %, 0.12 % rejected (3σ of a Gaussian: 0.27 % both sides)
    rng = np.random.default_rng(4)
    block = rng.standard_normal((16, 250_000)).astype(np.float32)
    plain = block.mean(axis=0).std()
    res, nrej = combine(block, rejection=Rejection("winsorized", 3, 3), return_rejected=True)
    assert res.std() / plain - 1 < 0.01
    assert nrej.mean() / 16 < 0.0027
    old, old_rej = combine(block, rejection=Rejection("winsorized", 3, 3), return_rejected=True, floor=None)
    assert old.std() / plain - 1 > 0.015 and old_rej.mean() > nrej.mean()
    # the theory: the mean of N frames has σ/√N
    assert res.std() == pytest.approx(1 / 4, rel=0.012)
    # outliers are still rejected: a 10σ hit in one frame every time, a faint 4σ trail half the time
    block[3, :1000] += 10
    block[5, 1000:2000] += 4
    _, nrej = combine(block[:, :2000], rejection=Rejection("winsorized", 3, 3), return_rejected=True)
    assert (nrej[:1000] >= 1).all()
    assert (nrej[1000:2000] >= 1).mean() > 0.4


def _shot_noise_frames(n=16, gain_slope=2.5, seed=21):
    """``n`` frames of a sky of 100 ADU (σ 10) with stars whose values scatter by their shot
    noise too (variance 100 + ``gain_slope`` × signal), no outliers; and the signal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    signal = np.zeros(yy.shape, np.float32)
    for cy, cx in rng.uniform(10, 230, (40, 2)) * np.float32([1, 4 / 3]):
        signal += rng.uniform(500, 8000) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.4 ** 2))
    sd = np.sqrt(100.0 + gain_slope * signal).astype(np.float32)
    return 100 + signal + rng.standard_normal((n,) + signal.shape).astype(np.float32) * sd, signal


def test_shot_noise_slope_is_the_variance_per_adu_of_signal():
    """Known answer: the simulated frames' variance grows by 2.5 ADU² per ADU of signal (a
    gain of 0.4 e⁻/ADU); the estimate holds with cosmic rays in the frames."""
    block, _ = _shot_noise_frames()
    floor = pooled_deviation(block)
    assert floor[0] == pytest.approx(10.0, rel=0.05)
    slope, level = shot_noise(block, floor)
    assert slope[0] == pytest.approx(2.5, rel=0.1) and level[0] == pytest.approx(100.0, abs=1.0)
    block[::3, ::7, ::5] += 3000
    assert shot_noise(block, floor)[0][0] == pytest.approx(2.5, rel=0.1)
    # colour: per channel; the sky alone (no star): no slope
    rgb = np.stack([block, 0.5 * block, 2 * block], axis=-1)
    assert shot_noise(rgb, pooled_deviation(rgb))[0] == pytest.approx([2.5, 1.25, 5.0], rel=0.1)
    sky = np.random.default_rng(2).normal(100, 10, (16, 100, 100)).astype(np.float32)
    assert shot_noise(sky, pooled_deviation(sky))[0][0] == 0.0
    assert shot_noise(sky[:2], np.array([10.0]))[0][0] == 0.0


def test_star_pixels_are_clipped_no_more_than_the_sky():
    """With the sky's noise alone as the floor, the stars' honest values (noisier than the
    sky by their shot noise) were rejected four times as often as the sky's (0.40 % against
    0.10 %), a star's
    brightest values most (its peak pulled down: wider stars in the stack); with the floor
    raised by the shot noise at each pixel's level, about as often as the sky's (0.12 %)."""
    block, signal = _shot_noise_frames()
    star = signal > 300
    sky = signal < 1
    _, nrej = combine(block, rejection=Rejection("winsorized", 3, 3), return_rejected=True)
    _, old = combine(block, rejection=Rejection("winsorized", 3, 3), return_rejected=True,
                     floor=pooled_deviation(block))
    assert old[star].mean() > 2 * old[sky].mean()
    assert nrej[star].mean() < 1.5 * nrej[sky].mean()
    assert nrej[sky].mean() <= old[sky].mean()


def test_each_frame_is_clipped_at_its_own_noise():
    """The reference frame, not resampled, keeps all its per-pixel noise; frames resampled
    half-way between pixels (bilinear) keep half of it (their noise is shared with the
    neighbours, not smaller on scales of a few pixels). One threshold for all (the rms
    deviation, 0.54 of the reference's σ here) rejects the reference's honest values at
    |z| > 1.6: 10 % of them, 0.6 % of all values; per-frame thresholds keep rejection near
    3σ's 0.27 % at most."""
    from fieldtui.stacking.register import noise_factor, warp

    rng = np.random.default_rng(8)
    frames, noise = [], []
    for i in range(16):
        t = 0.0 if i == 0 else 0.5
        m = np.array([[1.0, 0.0, 10 + t], [0.0, 1.0, 10 + t]])
        z = rng.standard_normal((330, 330)).astype(np.float32)
        frames.append(warp(z, m, (300, 300), kernel="linear"))
        noise.append(np.sqrt(noise_factor(m, (300, 300), "linear")))
    assert noise[0] == pytest.approx(1.0) and noise[1] == pytest.approx(0.5)
    block = np.stack(frames)
    assert block[0].std() == pytest.approx(1.0, rel=0.02) and block[1].std() == pytest.approx(0.5, rel=0.02)
    _, one = combine(block, rejection=Rejection("winsorized"), return_rejected=True)
    _, own = combine(block, rejection=Rejection("winsorized"), return_rejected=True, noise=noise)
    assert one.mean() / 16 > 0.004
    assert own.mean() / 16 < 0.0027
    with pytest.raises(ValueError):
        combine(block, noise=noise[:3])


@pytest.mark.parametrize("uniform", [False, True], ids=["weighted", "uniform"])
@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 17])
def test_compiled_kernel_gives_the_reference_algorithms_values(n, uniform):
    # the C kernel against the same algorithm run by the Python interpreter (the numba
    # kernel's source, uncompiled, every clipping pass measured: no shortcut), pixel by
    # pixel: outliers, NaN, ties, weights; uniform: equal weights and noise (masters),
    # where the kernel sorts the values alone
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
    # bright pixels with shot noise (no hit, no NaN): the floor's signal term
    bright = rng.uniform(300, 3000, 60).astype(np.float32)
    block[:, 200:260] = 1000 + bright + np.sqrt(900 + 2.5 * bright) * rng.standard_normal((n, 60)).astype(np.float32)
    w = np.full(n, 0.7) if uniform else rng.uniform(0.5, 1.0, n)
    # each frame's own noise: per-frame thresholds
    noise = np.full(n, 2.0) if uniform else rng.uniform(0.5, 1.5, n)
    rel = noise / np.sqrt(np.mean(noise ** 2))
    for kind, k, method in (("none", 3, "mean"), ("sigma", 3, "mean"), ("winsorized", 3, "mean"),
                            ("linear", 5, "mean"), ("none", 3, "median")):
        got, nrej = combine(block, method=method, rejection=Rejection(kind, k, k), weights=w,
                            return_rejected=True, threads=2, noise=noise)
        floor = comb.pooled_deviation(block)[0] if kind in ("sigma", "winsorized") else 0.0
        (slope,), (level,) = comb.shot_noise(block, [floor]) if floor else ((0.0,), (0.0,))
        if n >= 8 and floor:
            assert slope > 1.0  # the signal term is exercised
        for q in range(block.shape[1]):
            ok = np.isfinite(block[:, q])
            m = int(ok.sum())
            v = np.zeros(n + 1)
            ww = np.zeros(n + 1)
            rr = np.zeros(n + 1)
            v[:m], ww[:m], rr[:m] = block[ok, q], w[ok], rel[ok]
            ref, rej = _pixel.py_func(v, ww, rr, np.zeros(n + 2), np.zeros(n + 2), m, comb._KIND[kind], float(k),
                                      float(k), 5, method == "median", floor, False, slope, level)
            if m == 0:
                assert np.isnan(got[q])
                continue
            assert got[q] == np.float32(ref), (kind, method, q)
            assert nrej[q] == rej, (kind, method, q)


@pytest.mark.parametrize("kind", ["sigma", "winsorized"])
def test_kernel_shortcut_changes_no_value(kind):
    # a clipping pass the pooled floor shows rejects nothing is skipped (most pixels of a
    # real stack): every value and count the same as measuring the deviation of every pass,
    # on frames whose noise sits right at the floor, with weights and per-frame noise
    comb = pytest.importorskip("fieldtui.stacking.combine")
    if comb._ckernel is None:
        pytest.skip("the C kernel is not built (numba's runs)")
    rng = np.random.default_rng(11)
    rejected = 0
    for n in (3, 4, 5, 8, 16):
        block = (500 + 10 * rng.standard_normal((n, 40000))).astype(np.float32)
        hit = rng.random(block.shape) < 0.01
        block[hit] += rng.uniform(20, 300, hit.sum()).astype(np.float32)
        floor = np.array([comb.pooled_deviation(block)[0]])
        assert 9 < floor[0] < 11
        for w, rel in ((np.ones(n), np.ones(n)), (rng.uniform(0.5, 1, n), rng.uniform(0.8, 1.2, n))):
            res = []
            for shortcut in (True, False):
                out = np.empty(block.shape[1], np.float32)
                nrej = np.empty(block.shape[1], np.int16)
                comb._ckernel.combine_rows(block, n, block.shape[1], 0, block.shape[1], w, rel, comb._KIND[kind],
                                           3.0, 3.0, 5, False, floor, 1, out, nrej, shortcut)
                res.append((out, nrej))
            assert np.array_equal(res[0][0], res[1][0]) and np.array_equal(res[0][1], res[1][1])
            rejected += int(res[0][1].sum())
    assert rejected > 0  # some values rejected: the full passes ran too
