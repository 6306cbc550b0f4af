"""The background map (SExtractor's mesh, filter and spline, compiled) against sep's own,
against the known sky of a simulated frame, and its parts against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import sep

from fieldtui.imaging import stars
from fieldtui.imaging.io import read_frame

needs_kernel = pytest.mark.skipif(stars._sky is None, reason="fieldtui.imaging._sky is not built (no C compiler)")


def _vignetted_field(rng, h=700, w=900, nstars=150):
    """A frame with a steep vignetting falloff (25 % at the sides) and a linear gradient
    (the true sky, returned too), Gaussian stars (FWHM 3 px) and noise of 12 ADU."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((x - w / 2) ** 2 + (y - h / 2) ** 2) / (w / 2) ** 2
    sky = 800.0 * (1.0 - 0.25 * r2) + 0.08 * x - 0.05 * y
    img = sky.copy()
    s = 3.0 / 2.3548
    for _ in range(nstars):
        cx, cy, f = rng.uniform(10, w - 10), rng.uniform(10, h - 10), rng.uniform(500, 20000)
        y0, y1, x0, x1 = int(cy) - 8, int(cy) + 9, int(cx) - 8, int(cx) + 9
        img[y0:y1, x0:x1] += f / (2 * np.pi * s * s) * np.exp(
            -((x[y0:y1, x0:x1] - cx) ** 2 + (y[y0:y1, x0:x1] - cy) ** 2) / (2 * s * s))
    img += rng.normal(0.0, 12.0, img.shape)
    return img.astype(np.float32), sky


@needs_kernel
@pytest.mark.parametrize("box", [64, 32])
def test_the_map_agrees_with_seps_and_finds_the_true_sky(rng, box):
    img, sky = _vignetted_field(rng)
    back, rms = stars.background_map(img, box=box)
    ref = sep.Background(img, bw=box, bh=box, fw=3, fh=3)
    assert back.shape == img.shape and back.dtype == np.float32
    assert rms == pytest.approx(ref.globalrms, rel=1e-4)  # (the gradient within a box adds to it)
    # sep puts its rows' nodes half a pixel below the boxes' centres (its columns' on them):
    # on this steep falloff (0.9 ADU/px at the edges) that alone is 0.03 rms
    diff = np.abs(back - ref.back()) / ref.globalrms
    assert np.percentile(diff, 99) < 0.05 and diff.max() < 0.1
    # the true sky, away from the outermost half box where the spline extrapolates: as near
    # as sep's map comes (the meshes' noise and stars dominate both)
    m = box // 2
    err = (back - sky)[m:-m, m:-m]
    err_sep = (ref.back() - sky)[m:-m, m:-m]
    assert abs(float(np.median(err))) < 0.15 * 12.0
    assert float(np.sqrt(np.mean(err ** 2))) < 1.1 * float(np.sqrt(np.mean(err_sep ** 2)))


@needs_kernel
def test_the_map_agrees_with_seps_on_real_frames(testdata):
    files = [testdata / "fits" / "sep_image.fits", testdata / "fits" / "astropydata_M13_blue_0001.fits",
             sorted((testdata / "fits" / "seestar").glob("*.fit"))[0]]
    for f in files:
        img = np.ascontiguousarray(read_frame(f).data, np.float32)
        back, rms = stars.background_map(img, box=64)
        ref = sep.Background(img, bw=64, bh=64, fw=3, fh=3)
        assert rms == pytest.approx(ref.globalrms, rel=1e-4), f.name
        diff = np.abs(back - ref.back()) / ref.globalrms
        assert np.percentile(diff, 99) < 0.01 and diff.max() < 0.05, f.name


@needs_kernel
def test_meshes_without_pixels_take_their_neighbours_level(rng):
    img, sky = _vignetted_field(rng, nstars=0)
    img[200:400, 300:520] = np.nan  # more than whole meshes: no finite pixel there
    back, rms = stars.background_map(img, box=64)
    ref = sep.Background(img, bw=64, bh=64, fw=3, fh=3)
    assert np.isfinite(back).all() and rms == pytest.approx(ref.globalrms, rel=1e-4)
    assert float(np.abs(back - ref.back()).max()) < 0.1 * rms
    assert float(np.abs(back - sky)[250:350, 350:470].max()) < 40.0  # the level around, not 0


@needs_kernel
def test_a_frame_smaller_than_one_box_is_its_sky_level(rng):
    img = rng.normal(500.0, 10.0, (40, 50)).astype(np.float32)
    back, rms = stars.background_map(img, box=64)
    assert back.shape == (40, 50) and np.ptp(back) == 0
    assert float(back[0, 0]) == pytest.approx(500.0, abs=1.5) and rms == pytest.approx(10.0, rel=0.1)


def test_the_spline_weights_are_scipys_natural_cubic_spline():
    from scipy.interpolate import CubicSpline

    for nodes, length, box in ((40, 2536, 64), (27, 1696, 64), (3, 150, 64), (5, 150, 32)):
        basis = stars._spline_basis(length, box, nodes)
        ref = CubicSpline(box * np.arange(nodes) + (box - 1) / 2, np.eye(nodes), bc_type="natural")(np.arange(length))
        assert basis.shape == (length, nodes)
        np.testing.assert_allclose(basis, ref, atol=1e-6)
    # two nodes: a straight line through the two centres, extended (hand-computed)
    b = stars._spline_basis(128, 64, 2)
    assert b[0] @ np.array([0.0, 64.0]) == pytest.approx(-31.5) and b[127] @ np.array([0.0, 64.0]) == pytest.approx(95.5)


def test_the_median_filter_narrows_at_the_edges_as_sextractors():
    m = np.arange(20, dtype=np.float32).reshape(4, 5) ** 2 % 7
    out = stars._median3(m)
    assert out[1, 2] == np.median(m[0:3, 1:4])  # inside: 3×3
    assert out[0, 2] == np.median(m[0, 1:4])    # the first row: along it
    assert out[2, 4] == np.median(m[1:4, 4])    # the last column: down it
    assert out[0, 0] == m[0, 0] and out[3, 4] == m[3, 4]  # corners as they are


def test_without_the_kernel_sep_makes_the_map(rng, monkeypatch):
    img, _ = _vignetted_field(rng, nstars=20)
    monkeypatch.setattr(stars, "_sky", None)
    back, rms = stars.background_map(img, box=64)
    ref = sep.Background(img, bw=64, bh=64, fw=3, fh=3)
    np.testing.assert_array_equal(back, ref.back())
    assert rms == ref.globalrms


@pytest.mark.parametrize("box", [0, -3, 2.5, True])
def test_a_box_that_is_not_a_positive_whole_number_is_refused(box):
    with pytest.raises(ValueError, match="box must be a positive whole number"):
        stars.background_map(np.zeros((50, 60), np.float32), box=box)
