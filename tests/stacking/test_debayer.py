"""Debayering: every pattern, against an independent implementation; RCD against
known images, its C kernel against its numpy code."""

import numpy as np
import pytest

from fieldtui.stacking import rcd as rcd_mod
from fieldtui.stacking.debayer import debayer, debayer_reach

IDX = {"R": 0, "G": 1, "B": 2}


def _mosaic(rgb, pattern):
    m = np.empty(rgb.shape[:2], np.float32)
    for r in (0, 1):
        for c in (0, 1):
            m[r::2, c::2] = rgb[r::2, c::2, IDX[pattern[2 * r + c]]]
    return m


def _scene():
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(0)
    pts = np.zeros((120, 160), np.float32)
    pts[rng.integers(5, 115, 40), rng.integers(5, 155, 40)] = rng.uniform(1e3, 2e4, 40)
    star = gaussian_filter(pts, 1.2)
    return np.stack([100 + 0.8 * star, 120 + star, 90 + 1.2 * star], axis=-1).astype(np.float32)


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_uniform_colour_comes_back_for_every_pattern(pattern):
    rgb = np.ones((40, 60, 3), np.float32) * np.array([300.0, 500.0, 200.0], np.float32)
    for method in ("rcd", "malvar", "bilinear"):
        out = debayer(_mosaic(rgb, pattern), pattern, method)
        assert np.allclose(out, rgb, atol=1e-2), (pattern, method)
    # RCD: exactly (to float32 rounding), edges included
    np.testing.assert_allclose(debayer(_mosaic(rgb, pattern), pattern, "rcd"), rgb, rtol=1e-6)


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG"])
def test_malvar_matches_colour_demosaicing_and_beats_bilinear(pattern):
    cd = pytest.importorskip("colour_demosaicing")
    rgb = _scene()
    mos = _mosaic(rgb, pattern)
    ours = debayer(mos, pattern, "malvar")
    ref = cd.demosaicing_CFA_Bayer_Malvar2004(mos, pattern)
    assert np.abs(ours - ref)[3:-3, 3:-3].max() < 0.01
    err_m = np.abs(ours - rgb)[4:-4, 4:-4].mean()
    err_b = np.abs(debayer(mos, pattern, "bilinear") - rgb)[4:-4, 4:-4].mean()
    assert err_m < 0.7 * err_b


def test_bad_pattern():
    with pytest.raises(ValueError):
        debayer(np.zeros((4, 4)), "RGBG")


def _smooth():
    """A smooth colour image: gradients and broad blobs (σ 4 px), ADU 150-3000."""
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    blob = 2000 * np.exp(-((xx - 50) ** 2 + (yy - 40) ** 2) / (2 * 4.0 ** 2))
    blob2 = 1500 * np.exp(-((xx - 95) ** 2 + (yy - 70) ** 2) / (2 * 5.0 ** 2))
    base = 200 + 2 * xx + yy
    return np.stack([base + 0.7 * blob + blob2, base + blob + 0.5 * blob2, 150 + 3 * yy + 1.3 * blob],
                    axis=-1).astype(np.float32)


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_rcd_recovers_a_smooth_image_and_beats_malvar_on_stars(pattern):
    rgb = _smooth()
    mos = _mosaic(rgb, pattern)
    err = np.abs(debayer(mos, pattern, "rcd") - rgb)
    inner = err[10:-10, 10:-10]
    # the pure gradient (left of the blobs) to float32 rounding away from the edges;
    # at the edges, mirrored, within 5 ADU (a 2-3 ADU/px slope)
    assert inner[:, :10].max() < 0.01
    assert err.max() < 100 and inner.mean() < 0.5  # the blobs: < 5 % of the 2000-ADU peak
    e_malvar = np.abs(debayer(mos, pattern, "malvar") - rgb)[10:-10, 10:-10]
    assert inner.max() < 0.7 * e_malvar.max() and inner.mean() < 0.6 * e_malvar.mean()
    edge = err.copy()
    edge[10:-10, 10:-10] = 0
    assert edge.max() < 5
    # stars (σ 1.2 px, the sharpest a stack sees): under 0.6 × Malvar's error
    stars = _scene()
    mos = _mosaic(stars, pattern)
    e_rcd = np.abs(debayer(mos, pattern, "rcd") - stars)[4:-4, 4:-4].mean()
    e_malvar = np.abs(debayer(mos, pattern, "malvar") - stars)[4:-4, 4:-4].mean()
    assert e_rcd < 0.6 * e_malvar


def _round_stars(sigma=1.3):
    """Round Gaussian stars (σ 1.3 px, FWHM 3.1) of a white-ish colour at random sub-pixel
    positions on a sky of 100 ADU (green; red 0.75 ×, blue 0.6 ×)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:160, 0:240].astype(np.float64)
    lum = np.full(yy.shape, 100.0)
    for i in range(4):
        for j in range(6):
            cy, cx = 20 + 40 * i + rng.uniform(-1, 1), 20 + 40 * j + rng.uniform(-1, 1)
            lum += 3000 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
    return np.stack([0.75 * lum, lum, 0.6 * lum], axis=-1).astype(np.float32)


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_rcd_red_and_blue_of_round_stars_from_both_diagonals(pattern):
    """Red at blue sites and blue at red sites average the two diagonals' estimates (as
    librtprocess's RCD does in effect, see rcd.py). Known answer: the stars' true colours.
    With a diagonal direction picked by the squared high-pass (the release's description)
    the mean error of red and blue was 1.29 and 1.97 ADU (RGGB; 1.28 and 1.92 GBRG); with
    both diagonals 1.08 and 1.76 (1.11 and 1.65)."""
    rgb = _round_stars()
    err = np.abs(debayer(_mosaic(rgb, pattern), pattern, "rcd") - rgb)[10:-10, 10:-10]
    assert err[..., 1].mean() < 0.5  # green: untouched by the change
    assert err[..., 0].mean() < 1.15 and err[..., 2].mean() < 1.85


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_rcd_c_kernel_equals_numpy(pattern):
    if rcd_mod._ckernel is None:
        pytest.skip("the C kernel is not built")
    rng = np.random.default_rng(3)
    for shape in [(300, 411), (37, 53), (9, 9), (5, 7)]:
        a = rng.normal(300, 80, shape).astype(np.float32)
        a[::7, ::5] += 5000  # hot pixels: every branch of the directions and ratios
        a[20:30, 10:40] = rng.normal(0, 5, a[20:30, 10:40].shape)  # background around zero
        assert np.array_equal(rcd_mod.rcd(a, pattern), rcd_mod.rcd_numpy(a, pattern)), shape
        assert np.array_equal(rcd_mod.rcd(a, pattern, threads=3), rcd_mod.rcd_numpy(a, pattern)), shape


def test_rcd_strips_and_regions_match_the_whole_frame(monkeypatch):
    rng = np.random.default_rng(4)
    a = (rng.normal(400, 30, (140, 90)) + 3000 * rng.random((140, 90)) ** 20).astype(np.float32)
    whole = rcd_mod.rcd_numpy(a, "GRBG")
    monkeypatch.setattr(rcd_mod, "STRIP", 16)
    assert np.array_equal(rcd_mod.rcd_numpy(a, "GRBG"), whole)
    # a region (even origin: the pattern kept) is the same as the whole frame's pixels
    # further than debayer_reach from its cut edges, which is what the stacking relies on
    r = debayer_reach("rcd")
    part = rcd_mod.rcd_numpy(a[40:100, 20:70], "GRBG")
    assert np.array_equal(part[r:-r, r:-r], whole[40 + r:100 - r, 20 + r:70 - r])
    assert not np.array_equal(part[r - 3:-r + 3, r - 3:-r + 3], whole[40 + r - 3:100 - r + 3, 20 + r - 3:70 - r + 3])


def test_rcd_noise_around_zero_stays_finite_and_unamplified():
    """Calibrated sky can be near zero or negative: the ratio correction must not blow up."""
    rng = np.random.default_rng(5)
    a = rng.normal(0, 10, (120, 120)).astype(np.float32)
    out = debayer(a, "RGGB", "rcd")
    assert np.isfinite(out).all()
    # interpolated values average their neighbours: no more scatter than the samples
    assert out.std() < 10.5 and np.abs(out).max() < 6 * 10


def test_rcd_rejects_a_cube():
    with pytest.raises(ValueError):
        rcd_mod.rcd(np.zeros((4, 4, 3)), "RGGB")
