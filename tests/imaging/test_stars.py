"""Star metrics against rendered stars with analytic answers."""

import math

import numpy as np
import pytest

from fieldtui.imaging import bin_bayer, centroid, detect_stars, measure_star
from fieldtui.imaging.metrics import measure_frame_stars
from fieldtui.imaging import synth
from fieldtui.frame import Frame

SIGMA_PER_FWHM = 1 / (2 * math.sqrt(2 * math.log(2)))
NOISE = 10.0
SKY = 200.0


def _single(rng, profile, fwhm, snr, beta=3.0, size=41):
    img = np.zeros((size, size))
    c = size // 2
    x, y = c + rng.uniform(-0.5, 0.5), c + rng.uniform(-0.5, 0.5)
    flux = synth.snr_flux(snr, fwhm, NOISE)
    if profile == "gauss":
        synth.gaussian_star(img, x, y, flux, fwhm)
    else:
        synth.moffat_star(img, x, y, flux, fwhm, beta)
    img += SKY + rng.normal(0, NOISE, img.shape)
    return img, x, y


@pytest.mark.parametrize("profile", ["gauss", "moffat"])
@pytest.mark.parametrize("fwhm", [2.5, 4.0])
def test_fwhm_and_hfr_at_snr_20(rng, profile, fwhm):
    fw, hf, err = [], [], []
    for _ in range(30):
        img, x, y = _single(rng, profile, fwhm, 20.0)
        s = measure_star(img, 20, 20, 31)
        assert s is not None and s.fitted
        fw.append(s.fwhm)
        hf.append(s.hfr)
        err.append((s.x - x, s.y - y))
    # the median over 30 independent stars: bias within 3 % of the answer without
    # noise (a Gaussian's own FWHM; for a Moffat, the FWHM of the Gaussian that fits
    # it best, checked against scipy in test_star_size.py)
    if profile == "gauss":
        truth = fwhm
    else:
        quiet = np.zeros((41, 41))
        synth.moffat_star(quiet, 20.2, 19.9, 1e6, fwhm, 3.0)
        truth = measure_star(quiet + 200, 20, 20, 31).fwhm
    assert np.median(fw) == pytest.approx(truth, rel=0.03)
    if profile == "gauss":
        # half-flux radius of a 2-D Gaussian: sigma * sqrt(2 ln 2) = FWHM / 2
        assert np.median(hf) == pytest.approx(fwhm * SIGMA_PER_FWHM * math.sqrt(2 * math.log(2)), rel=0.04)
    else:
        beta = 3.0
        alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
        hfr_true = alpha * math.sqrt(2 ** (1 / (beta - 1)) - 1)
        assert np.median(hf) == pytest.approx(hfr_true, rel=0.06)
    err = np.array(err)
    assert np.all(np.abs(err.mean(axis=0)) < 0.03)  # no bias


@pytest.mark.parametrize("fwhm", [2.0, 4.0])
def test_centroid_precision_at_snr_20_reaches_the_information_limit(rng, fwhm):
    # per-axis rms at SNR 20 within 25 % of the Cramer-Rao bound
    # sqrt(8 pi) sigma^2 N / F of a background-limited Gaussian star;
    # for a 2 px FWHM guide star that is under 0.05 px
    errs = []
    for _ in range(60):
        img, x, y = _single(rng, "gauss", fwhm, 20.0)
        s = measure_star(img, 20, 20, 31)
        errs += [s.x - x, s.y - y]
    rms = float(np.sqrt(np.mean(np.square(errs))))
    sigma = fwhm * SIGMA_PER_FWHM
    crlb = math.sqrt(8 * math.pi) * sigma**2 * NOISE / synth.snr_flux(20.0, fwhm, NOISE)
    assert rms < 1.25 * crlb
    if fwhm <= 2.0:
        assert rms < 0.05


def test_bright_star_is_exact(rng):
    img = np.zeros((41, 41))
    synth.gaussian_star(img, 20.37, 19.81, 2e5, 3.2)
    img += 100 + rng.normal(0, 3, img.shape)
    s = measure_star(img, 20, 20)
    assert s.x == pytest.approx(20.37, abs=0.01)
    assert s.y == pytest.approx(19.81, abs=0.01)
    assert s.fwhm == pytest.approx(3.2, rel=0.01)
    assert s.hfd == pytest.approx(3.2, rel=0.01)  # Gaussian: HFD == FWHM
    assert s.elongation == pytest.approx(1.0, abs=0.03)
    assert s.snr > 300
    c = centroid(img, 20, 20)
    assert c == pytest.approx((20.37, 19.81), abs=0.02)


def test_measure_star_none_on_blank_sky(rng):
    for _ in range(20):
        img = 100 + rng.normal(0, 5, (41, 41))
        assert measure_star(img, 20, 20) is None


def test_star_count_on_a_field_of_well_separated_stars(rng):
    h, w, n = 480, 640, 36
    gx, gy = np.meshgrid(np.linspace(40, w - 40, 6), np.linspace(40, h - 40, 6))
    xs = gx.ravel() + rng.uniform(-3, 3, n)
    ys = gy.ravel() + rng.uniform(-3, 3, n)
    img = np.zeros((h, w))
    for x, y in zip(xs, ys):
        synth.gaussian_star(img, x, y, rng.uniform(3e3, 3e4), 3.0)
    img = img + 500 + rng.normal(0, NOISE, img.shape)
    # a few hot pixels must not count as stars
    for _ in range(8):
        img[rng.integers(5, h - 5), rng.integers(5, w - 5)] += 3000
    stars = detect_stars(img.astype(np.uint16), max_fit=40)
    assert len(stars) == n
    found = np.array([(s.x, s.y) for s in stars])
    d = np.hypot(found[:, None, 0] - xs[None], found[:, None, 1] - ys[None]).min(axis=0)
    assert d.max() < 0.15
    assert np.median([s.fwhm for s in stars if s.fitted]) == pytest.approx(3.0, rel=0.03)
    # brightest first
    assert [s.flux for s in stars] == sorted((s.flux for s in stars), reverse=True)


def test_no_false_detections_in_pure_noise(rng):
    img = 1000 + rng.normal(0, 20, (960, 1280))
    assert detect_stars(img) == []


def _elliptical_fit_elongation(img, x, y, half):
    from scipy.optimize import least_squares

    ix, iy = int(round(x)), int(round(y))
    win = img[iy - half : iy + half + 1, ix - half : ix + half + 1]
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)

    def resid(p):
        x0, y0, amp, sky, sa, sb, th = p
        c, s = math.cos(th), math.sin(th)
        u = (xx - x0) * c + (yy - y0) * s
        v = -(xx - x0) * s + (yy - y0) * c
        return (amp * np.exp(-0.5 * (u * u / sa**2 + v * v / sb**2)) + sky - win).ravel()

    r = least_squares(resid, [x - ix, y - iy, win.max(), 0.0, 2.0, 1.2, 0.3])
    sa2, sb2 = r.x[4] ** 2 - 1 / 12, r.x[5] ** 2 - 1 / 12
    return math.sqrt(max(sa2, sb2) / min(sa2, sb2))


@pytest.mark.parametrize("pa", [30.0, 120.0])
def test_trailed_stars_elongation_and_angle(rng, pa):
    fwhm, length = 3.0, 6.0
    img = np.zeros((200, 200))
    pos = [(50, 50), (150, 50), (50, 150), (150, 150), (100, 100)]
    for x, y in pos:
        synth.trailed_star(img, x + 0.3, y - 0.2, 5e4, fwhm, length, pa)
    img += 300 + rng.normal(0, 5, img.shape)
    stars = detect_stars(img)
    assert len(stars) == 5
    # the elongation of the elliptical Gaussian that best fits the trail (scipy, on
    # the noiseless star, point-sampled, the pixel's 1/12 px² taken off both axes)
    one = np.zeros((41, 41))
    synth.trailed_star(one, 20.3, 19.8, 5e4, fwhm, length, pa)
    expected = _elliptical_fit_elongation(one, 20.3, 19.8, 8)  # 1.9; its second moments say 1.69
    for s in stars:
        assert s.elongation == pytest.approx(expected, rel=0.05)
        assert abs((s.pa - pa + 90) % 180 - 90) < 2.0


def test_saturated_star_is_flagged():
    img = np.full((64, 64), 1000.0)
    synth.gaussian_star(img, 32, 32, 5e6, 3.0)
    img = np.clip(img, 0, 65535).astype(np.uint16)
    (s,) = detect_stars(img)
    assert s.saturated and not s.fitted


def test_bayer_frame_measured_on_superpixels_reported_in_sensor_pixels(rng):
    # a star of 5 px FWHM on the sensor; the mosaic's colours do not matter to the sum
    h, w = 256, 256
    img = np.zeros((h, w))
    synth.gaussian_star(img, 121.3, 140.6, 4e5, 5.0)
    synth.gaussian_star(img, 60.8, 70.2, 3e5, 5.0)
    synth.gaussian_star(img, 190.1, 60.9, 3e5, 5.0)
    gains = np.array([[1.0, 0.8], [0.8, 0.6]])  # R G / G B response
    img = img * np.tile(gains, (h // 2, w // 2)) + 2048 + rng.normal(0, 3, img.shape)
    frame = Frame(data=img.astype(np.uint16), bayer="RGGB", black_level=2048, white_level=16383)
    stars = measure_frame_stars(frame)
    assert len(stars) == 3
    s = min(stars, key=lambda s: math.hypot(s.x - 121.3, s.y - 140.6))
    # the colour response shifts the light centroid slightly; the size must hold
    assert s.x == pytest.approx(121.3, abs=0.25) and s.y == pytest.approx(140.6, abs=0.25)
    assert s.fwhm == pytest.approx(5.0, rel=0.05)


def test_bin_bayer_sums_quads():
    a = np.arange(16, dtype=np.uint16).reshape(4, 4)
    assert bin_bayer(a).tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
