"""Debayering: every pattern, against an independent implementation."""

import numpy as np
import pytest

from fieldtui.stacking.debayer import debayer

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
    for method in ("malvar", "bilinear"):
        out = debayer(_mosaic(rgb, pattern), pattern, method)
        assert np.allclose(out, rgb, atol=1e-2), (pattern, method)


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG"])
def test_malvar_matches_colour_demosaicing_and_beats_bilinear(pattern):
    cd = pytest.importorskip("colour_demosaicing")
    rgb = _scene()
    mos = _mosaic(rgb, pattern)
    ours = debayer(mos, pattern)
    ref = cd.demosaicing_CFA_Bayer_Malvar2004(mos, pattern)
    assert np.abs(ours - ref)[3:-3, 3:-3].max() < 0.01
    err_m = np.abs(ours - rgb)[4:-4, 4:-4].mean()
    err_b = np.abs(debayer(mos, pattern, "bilinear") - rgb)[4:-4, 4:-4].mean()
    assert err_m < 0.7 * err_b


def test_bad_pattern():
    with pytest.raises(ValueError):
        debayer(np.zeros((4, 4)), "RGBG")
