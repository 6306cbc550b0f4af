"""Masters and calibration on synthetic sets with known truth."""

import numpy as np
import pytest

from fieldtui.stacking import synth
from fieldtui.stacking.calibrate import Masters, calibrate, find_bad_pixels, normalise_flat
from fieldtui.stacking.combine import Rejection, combine


def _masters(cam, rng, n=12, exposure=60.0):
    bias = combine(np.stack([synth.dark(cam, 1 / 4000, rng) for _ in range(n)]).astype(np.float32),
                   rejection=Rejection("winsorized"))
    dark = combine(np.stack([synth.dark(cam, exposure, rng) for _ in range(n)]).astype(np.float32),
                   rejection=Rejection("winsorized"))
    flats = np.stack([synth.flat(cam, rng) for _ in range(n)]).astype(np.float32) - bias
    flats *= (np.median(flats) / np.median(flats, axis=(1, 2)))[:, None, None]
    flat = normalise_flat(combine(flats, rejection=Rejection("winsorized")), cam.bayer or None)
    m = Masters(bias=bias, dark=dark, flat=flat, dark_exposure=exposure, bayer=cam.bayer or None)
    m.bad_pixels = find_bad_pixels(m)
    return m


@pytest.mark.parametrize("bayer", ["", "GRBG"])
def test_masters_remove_bias_pattern_hot_pixels_and_vignetting(bayer):
    cam = synth.Camera(width=320, height=240, bayer=bayer, hot_pixels=40, seed=3)
    fld = synth.Field.random(cam, n=60, sky=8.0)
    rng = np.random.default_rng(4)
    m = _masters(cam, rng)
    raw = synth.light(cam, fld, 60.0, None, rng).astype(np.float32)
    res = calibrate(raw, m)
    truth = fld.render((cam.height, cam.width)) * np.float32(60 / cam.gain) * cam.response
    # the flat is normalised to its median: the calibrated frame is the truth times that level
    scale = float(np.median(res.data / truth))
    resid = res.data - scale * truth
    sky = truth < 1.02 * np.median(truth)
    noise = 1.4826 * np.median(np.abs(resid[sky]))
    # bias pattern (column stripes of ±3 ADU and a 6 ADU ramp): how much of it is left in the
    # column means, as a regression coefficient: ~1 before calibration, ~0 after
    pat = cam.bias_pattern.mean(axis=0)
    pat = pat - pat.mean()
    def left(img):
        col = np.array([np.mean(img[:, c][sky[:, c]]) for c in range(cam.width)])
        return float(np.dot(col - col.mean(), pat) / np.dot(pat, pat))
    assert left(raw - truth * cam.flat - cam.thermal(60) / cam.gain) == pytest.approx(1.0, abs=0.15)
    assert abs(left(resid)) < 0.15
    # hot pixels: gone (within 5 sigma of the truth), though they stand far out in the raw frame
    hx, hy = cam.hot[:, 0].astype(int), cam.hot[:, 1].astype(int)
    assert np.max(raw[hy, hx] - cam.bias - truth[hy, hx] * scale) > 20 * noise
    assert np.percentile(np.abs(resid[hy, hx]), 95) < 5 * noise
    # vignetting: raw corners 30 % darker than the middle, calibrated within 2 %
    def corner_ratio(img):
        h, w = img.shape
        c = np.median((img / (cam.response if bayer else 1))[:20, :20])
        mid = np.median((img / (cam.response if bayer else 1))[h // 2 - 10:h // 2 + 10, w // 2 - 10:w // 2 + 10])
        return c / mid
    assert corner_ratio(raw - m.dark) < 0.8
    assert abs(corner_ratio(res.data) - 1) < 0.02
    # colour: the flat is normalised per CFA site, so the lights keep their colour ratios
    if bayer:
        g = np.median(res.data[0::2, 0::2][sky[0::2, 0::2]])
        r = np.median(res.data[0::2, 1::2][sky[0::2, 1::2]])
        assert r / g == pytest.approx(0.75, rel=0.03)
    assert res.warnings == []


def test_darks_at_the_wrong_setting_give_a_warning():
    cam = synth.Camera(width=200, height=160, seed=5, dark_current=30.0)
    fld = synth.Field.random(cam, n=20, sky=0.5)
    rng = np.random.default_rng(6)
    long_dark = combine(np.stack([synth.dark(cam, 300.0, rng) for _ in range(5)]).astype(np.float32),
                        method="median")
    light = synth.light(cam, fld, 30.0, None, rng).astype(np.float32)
    res = calibrate(light, Masters(dark=long_dark))
    assert res.negative_fraction > 0.5
    assert res.warnings and "darks" in res.warnings[0]
    right = combine(np.stack([synth.dark(cam, 30.0, rng) for _ in range(5)]).astype(np.float32), method="median")
    assert calibrate(light, Masters(dark=right)).warnings == []


def test_dark_scaling_by_exposure_and_optimised():
    cam = synth.Camera(width=200, height=160, seed=7, dark_current=5.0, hot_pixels=200)
    fld = synth.Field.random(cam, n=20)
    rng = np.random.default_rng(8)
    bias = combine(np.stack([synth.dark(cam, 1e-4, rng) for _ in range(8)]).astype(np.float32), method="median")
    dark120 = combine(np.stack([synth.dark(cam, 120.0, rng) for _ in range(8)]).astype(np.float32), method="median")
    light = synth.light(cam, fld, 60.0, None, rng).astype(np.float32)
    m = Masters(bias=bias, dark=dark120, dark_exposure=120.0)
    assert calibrate(light, m, light_exposure=60.0, dark_scaling="exposure", cosmetic=False).dark_scale == 0.5
    opt = calibrate(light, m, light_exposure=60.0, dark_scaling="optimise", cosmetic=False)
    assert opt.dark_scale == pytest.approx(0.5, abs=0.05)


def test_cosmetic_correction_keeps_undersampled_stars():
    """A hot pixel stands alone; a star, even with a FWHM of 1.6 px, lights its neighbours."""
    from fieldtui.imaging.synth import gaussian_star
    from fieldtui.stacking.calibrate import find_cosmetic_outliers
    rng = np.random.default_rng(9)
    img = rng.normal(100, 5, (100, 100)).astype(np.float64)
    for x, y in ((20.3, 30.6), (60.5, 70.1), (80.0, 20.0)):
        gaussian_star(img, x, y, 20000, 1.6)
    img[50, 50] += 3000
    img[10, 90] += 800
    bad = find_cosmetic_outliers(img.astype(np.float32), "RGGB")
    assert bad[50, 50] and bad[10, 90]
    assert bad.sum() == 2


def test_cosmetic_correction_leaves_saturated_star_cores_alone():
    from fieldtui.imaging.synth import gaussian_star
    rng = np.random.default_rng(10)
    img = rng.normal(100, 5, (80, 80))
    gaussian_star(img, 40.2, 40.7, 3e6, 2.0)
    img[12, 60] += 3000  # a hot pixel
    raw = np.clip(img, 0, 15000).astype(np.uint16)
    res = calibrate(raw, Masters(), white_level=15000)
    core = raw >= 15000
    assert core.sum() > 4
    assert np.array_equal(res.data[core], raw[core].astype(np.float32))
    assert res.data[12, 60] < 200 and res.corrected >= 1


@pytest.mark.parametrize("bayer", [None, "GRBG"])
def test_cosmetic_outliers_found_in_strips_as_on_the_whole_frame(bayer):
    import tracemalloc

    from fieldtui.stacking.calibrate import find_cosmetic_outliers
    rng = np.random.default_rng(5)
    h, w = 640, 600
    data = rng.normal(100.0, 5.0, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[-6:7, -6:7]
    for cy, cx in rng.integers(10, 590, (60, 2)):  # stars, some on strip edges
        data[cy - 6:cy + 7, cx - 6:cx + 7] += 800.0 * np.exp(-(yy ** 2 + xx ** 2) / (2 * 1.2 ** 2))
    hy, hx = rng.integers(2, h - 2, 200), rng.integers(2, w - 2, 200)
    hy[:20] = np.arange(20) * 32 % h  # hot pixels on the strips' first and last rows too
    hy[20:40] = (np.arange(20) * 32 + 31) % h
    data[hy, hx] += 3000.0
    data[300:303, 10:14] = np.nan
    whole = find_cosmetic_outliers(data, bayer, rows=h)
    assert whole[hy, hx].mean() > 0.95
    for rows in (3, 32):
        assert np.array_equal(find_cosmetic_outliers(data, bayer, rows=rows), whole), rows
    # working memory: the float32 plane of excesses, the map and one strip's temporaries
    # (whole-frame temporaries took ~17 bytes a pixel)
    tracemalloc.start()
    try:
        find_cosmetic_outliers(data, bayer, rows=32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6.5 * h * w


def test_calibration_into_a_given_array_equals_a_new_one():
    # the pipeline's threads calibrate each light into the array they kept from their last
    # one (no freshly zeroed pages a frame): the same pixels, that very array back, and a
    # clear error for an array of another shape or type
    rng = np.random.default_rng(12)
    light = rng.normal(1000, 30, (64, 80)).astype(np.uint16)
    light[10, 10] = 60000  # a hot pixel the cosmetic correction replaces
    light[40:43, 50:53] = 65535  # a saturated core it leaves alone
    dark = rng.normal(100, 3, light.shape).astype(np.float32)
    flat = rng.uniform(0.8, 1.2, light.shape).astype(np.float32)
    m = Masters(dark=dark, flat=flat)
    m.bad_pixels = find_bad_pixels(m)
    want = calibrate(light, m, white_level=65535.0)
    buf = np.full(light.shape, np.nan, np.float32)
    got = calibrate(light, m, white_level=65535.0, out=buf)
    assert got.data is buf and np.array_equal(got.data, want.data) and got.corrected == want.corrected > 0
    assert got.data[41, 51] == np.float32((65535 - dark[41, 51]) / flat[41, 51])
    with pytest.raises(ValueError):
        calibrate(light, m, out=np.empty((64, 81), np.float32))
    with pytest.raises(ValueError):
        calibrate(light, m, out=np.empty(light.shape, np.float64))


@pytest.mark.parametrize("bayer", [None, "GRBG"])
def test_cosmetic_correction_spares_undersampled_star_peaks_and_removes_hot_pixels(bayer):
    # Undersampled stars (FWHM 1.5-2.5 px, peaks 12-400 noise) at sub-pixel positions; on
    # the Bayer mosaic a star's red and blue pixels get 0.3-0.4 of its green ones, so a
    # green peak's eight neighbours (red, blue, and green at sqrt(2)) carry little light:
    # the ratio test alone replaced such peaks. Hot pixels far from the stars and 2-3 px
    # from a star's centre, on its flank and brighter than its peak, must all go; no pixel
    # within 1.5 px of a star's centre may.
    from fieldtui.imaging.synth import gaussian_star
    from fieldtui.stacking.calibrate import find_cosmetic_outliers
    rng = np.random.default_rng(21)
    h, w = 240, 240
    colour = np.ones((h, w))
    if bayer:  # GRBG: green at (even, even) and (odd, odd), red at (even, odd), blue at (odd, even)
        colour[0::2, 1::2] = 0.35
        colour[1::2, 0::2] = 0.3
    sky = rng.normal(100.0, 5.0, (h, w))
    stars = np.zeros((h, w))
    centres = []
    grid = [(x, y) for y in range(16, h - 16, 26) for x in range(16, w - 16, 26)]
    for i, (gx, gy) in enumerate(grid):
        x, y = gx + rng.uniform(-0.5, 0.5), gy + rng.uniform(-0.5, 0.5)
        fwhm = 1.5 + (i % 5) * 0.25
        one = np.zeros((h, w))
        gaussian_star(one, x, y, 1.0, fwhm)
        peak = rng.uniform(12, 400) * 5.0  # the brightest pixel in noise units × noise
        stars += one * (peak / one.max())
        centres.append((x, y))
    img = sky + stars * colour
    hot = []
    for x, y in centres[::3]:  # beside a star: 2-3 px from its centre, four times its peak
        hx, hy = int(round(x)) + int(rng.choice([-1, 1])) * int(rng.integers(2, 4)), int(round(y))
        img[hy, hx] += 4.0 * (img[int(round(y)), int(round(x))] - 100.0)
        hot.append((hy, hx))
    for _ in range(25):  # far from any star: 13 px from the grid's nodes
        hy, hx = int(rng.integers(3, 9)) * 26 + 3, int(rng.integers(1, 8)) * 26 + 3
        img[hy, hx] += rng.uniform(60, 1500)
        hot.append((hy, hx))
    bad = find_cosmetic_outliers(img.astype(np.float32), bayer)
    hy, hx = np.array(hot).T
    assert bad[hy, hx].all()
    ys, xs = np.nonzero(bad)
    c = np.array(centres)
    d = np.hypot(c[:, 0][None] - xs[:, None], c[:, 1][None] - ys[:, None]).min(axis=1)
    assert d.min() > 1.5, [(int(x), int(y)) for x, y in zip(xs[d <= 1.5], ys[d <= 1.5])]
    assert bad.sum() == len(set(hot))
