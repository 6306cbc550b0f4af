"""Windowed centroids (SExtractor's XWIN/YWIN), compiled and in numpy: known centres,
each other, sep.winpos on real stars, and the stars they leave alone."""

from __future__ import annotations

import numpy as np
import pytest
import sep

from fieldtui.imaging.io import read_frame
from fieldtui.imaging import stars
from fieldtui.imaging.stars import background, detect_stars


def _field(rng, n=40, h=300, w=400, fwhm=3.2, noise=0.0):
    """Gaussian stars at known sub-pixel centres ``(n, 2)``, 25 px apart at least (no
    neighbour's light in a window), on a sky of 100 ADU."""
    xy = np.empty((0, 2))
    while len(xy) < n:
        p = np.array([rng.uniform(25, w - 25), rng.uniform(25, h - 25)])
        if not len(xy) or np.hypot(*(xy - p).T).min() > 25:
            xy = np.vstack([xy, p])
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    s = fwhm / 2.3548
    img = np.full((h, w), 100.0)
    for cx, cy in xy:
        img += 5000.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    if noise:
        img += rng.normal(0, noise, img.shape)
    return img.astype(np.float32), xy


@pytest.fixture(params=["compiled", "numpy"])
def kernel(request, monkeypatch):
    if request.param == "compiled":
        if stars._sky is None:
            pytest.skip("fieldtui.imaging._sky is not built (no C compiler)")
    else:
        monkeypatch.setattr(stars, "_sky", None)
    return request.param


def test_noiseless_stars_converge_on_their_centres(rng, kernel):
    img, xy = _field(rng)
    start = xy + rng.uniform(-0.6, 0.6, xy.shape)  # isophotal positions are this far off, or less
    got = stars.windowed_centroids(img, 100.0, start, 2.0 * 3.2 / 2.3548)
    assert np.abs(got - xy).max() < 1e-3  # the iteration stops at steps under 1e-4 px


def test_the_compiled_kernel_and_numpy_agree(rng, monkeypatch):
    if stars._sky is None:
        pytest.skip("fieldtui.imaging._sky is not built (no C compiler)")
    img, xy = _field(rng, n=200, h=600, w=900, noise=15.0)
    # stars at the edges, off the image, not finite, on empty sky, and crowded ones too
    start = np.vstack([xy + rng.normal(0, 0.4, xy.shape), [[3.0, 250.0], [-5.0, 10.0], [np.nan, 4.0],
                                                            [350.0, 2.0], [899.0, 599.0], [1e300, 5.0],
                                                            [np.inf, -np.inf]]])
    c = stars.windowed_centroids(img, 100.0, start, 2.7)
    monkeypatch.setattr(stars, "_sky", None)
    n = stars.windowed_centroids(img, 100.0, start, 2.7)
    np.testing.assert_allclose(c, n, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(c[-7:], start[-7:])  # none of those is refined


def test_stars_it_cannot_refine_keep_their_positions(rng, kernel):
    img, xy = _field(rng, n=5)
    start = np.array([[4.0, 150.0],      # its window (radius 4 sigma) leaves the image
                      [200.0, 150.0],    # empty sky below the level given: no light in the window
                      [np.nan, 20.0]])   # not finite
    img[140:161, 190:211] = 0.0
    got = stars.windowed_centroids(img, 100.0, start, 2.7)
    np.testing.assert_array_equal(got, start)
    # a blend pulls the window more than 1.5 px: kept too
    y, x = np.mgrid[0:300, 0:400]
    blend = img + 8000.0 * np.exp(-((x - 302.5) ** 2 + (y - 100.0) ** 2) / 8.0).astype(np.float32)
    assert stars.windowed_centroids(blend, 100.0, np.array([[299.0, 100.0]]), 2.7)[0, 0] == 299.0


def test_real_stars_agree_with_sep_winpos(testdata, kernel):
    f = sorted((testdata / "fits" / "seestar").glob("*.fit"))[0]
    img = np.ascontiguousarray(read_frame(f).data, np.float32)
    level, _ = background(img)
    found = detect_stars(img, max_stars=300, max_fit=60, saturation=None)
    xy = np.array([(s.x, s.y) for s in found])
    sigma = float(np.median([s.fwhm for s in found])) / 1.1774
    got = stars.windowed_centroids(img, level, xy, sigma)
    wx, wy, flag = sep.winpos(img - np.float32(level), xy[:, 0].copy(), xy[:, 1].copy(), sigma)
    ref = np.column_stack([wx, wy])
    both = (flag == 0) & (np.hypot(*(ref - xy).T) < 1.5) & (np.hypot(*(got - xy).T) > 0)
    assert both.sum() >= 0.8 * len(xy)
    d = np.hypot(*(got - ref)[both].T)
    # sep counts the disc's edge pixels by 11x11 sub-pixels, we by a linear share
    assert np.median(d) < 2e-4 and np.percentile(d, 90) < 5e-4


@pytest.mark.parametrize("sigma", [40.0, 1e7, 1e12, 1e300])
def test_a_window_wider_than_the_image_keeps_every_position(rng, kernel, sigma):
    # a diverged FWHM: no window of 4 sigma fits in 300 x 400 px, and none is allocated
    # (σ = 1e7 asked numpy for a 5.7 PiB box, 1e12 the compiled kernel for 64 TB: MemoryError)
    img, xy = _field(rng, n=3)
    np.testing.assert_array_equal(stars.windowed_centroids(img, 100.0, xy, sigma), xy)


def test_the_compiled_kernel_refuses_a_window_it_cannot_hold():
    sky = stars._sky
    if sky is None:
        pytest.skip("fieldtui.imaging._sky is not built (no C compiler)")
    img = np.full((20, 20), 100.0, np.float32)
    img[10, 10] = 500.0
    xy = np.array([[10.2, 9.8]])
    for sigma, nsig, max_shift in [(1e12, 4.0, 1.5), (2.0, np.nan, 1.5), (2.0, -50.0, 1.5), (2.0, 4.0, 1e300)]:
        out, ok = np.empty((1, 2)), np.ones(1, np.uint8)
        sky.windowed_centroids(img, 20, 20, 100.0, xy, 1, sigma, nsig, 16, 1e-4, max_shift, out, ok)
        assert ok[0] == 0 and out.tolist() == xy.tolist(), (sigma, nsig, max_shift)


def test_the_compiled_kernel_checks_sizes_without_overflow():
    # h * w * 4 = 2**64 wrapped to 0 and passed the size check: a read far outside the buffer
    sky = stars._sky
    if sky is None:
        pytest.skip("fieldtui.imaging._sky is not built (no C compiler)")
    img = np.zeros((4, 4), np.float32)
    m, s, g = np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.uint8)
    with pytest.raises(ValueError, match="buffer sizes"):
        sky.mesh_stats(img, 2**31, 2**31, 2**30, 2**30, m, s, g)
    with pytest.raises(ValueError, match="buffer sizes"):
        sky.mesh_stats(img, 4, 4, 2**63 - 1, 2**63 - 1, m[:0], s[:0], g[:0])  # ceil(4 / bw) is 1, not 0
    out, ok = np.empty((1, 2)), np.zeros(1, np.uint8)
    with pytest.raises(ValueError, match="buffer sizes"):
        sky.windowed_centroids(img, 2**31, 2**31, 0.0, np.zeros((1, 2)), 1, 1.0, 4.0, 16, 1e-4, 1.5, out, ok)
    with pytest.raises(ValueError, match="buffer sizes"):
        sky.windowed_centroids(img, 4, 4, 0.0, np.zeros((1, 2)), 2**62, 1.0, 4.0, 16, 1e-4, 1.5, out, ok)


def test_a_pixel_that_is_not_finite_spoils_only_the_stars_whose_disc_holds_it(rng, kernel):
    img, xy = _field(rng, n=4)
    y0 = int(round(xy[0, 1]))
    x_off = int(round(xy[0, 0])) + 13  # disc radius 4 sigma = 10.8 px
    img[y0, x_off] = np.inf   # in the star's box (half-width 14 px), off its disc: no effect
    img[int(round(xy[1, 1])), int(round(xy[1, 0])) + 3] = np.nan  # in the second star's disc
    start = xy + 0.3
    got = stars.windowed_centroids(img, 100.0, start, 2.7)
    assert np.abs(got[0] - xy[0]).max() < 1e-3
    np.testing.assert_array_equal(got[1], start[1])
    assert np.abs(got[2:] - xy[2:]).max() < 1e-3
    # an edge pixel that is not finite, repeated into a box that reaches past the image
    img2 = np.full((40, 40), 100.0, np.float32)
    yy, xx = np.mgrid[0:40, 0:40]
    img2 += (2000.0 * np.exp(-((xx - 11.3) ** 2 + (yy - 20.0) ** 2) / 4.5)).astype(np.float32)
    img2[20, 0] = -np.inf
    got = stars.windowed_centroids(img2, 100.0, np.array([[11.0, 20.0]]), 1.5)  # disc radius 6 px
    assert abs(got[0, 0] - 11.3) < 1e-3
