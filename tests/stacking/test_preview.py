"""The preview's first enhancement steps on images with known answers: the background
gradient goes and the stars and the target stay, the colour is balanced, SCNR by hand."""

import numpy as np
import pytest

from fieldtui.imaging.synth import gaussian_star
from fieldtui.stacking.preview import balance, preview, remove_gradient, scnr


def _scene(h=240, w=320, seed=1, gradient=True):
    """Sky 1000 with a gradient (a tilt of 120 across and a bowl of 60; none with
    ``gradient=False``), 60 stars, and a target (a galaxy 30 px across, 400 above the sky
    at its peak) right of the middle, noise 5."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / w - 0.5, yy / h - 0.5
    grad = (120.0 * u + 60.0 * (u * u + v * v) * 4) * float(gradient)
    objects = np.zeros((h, w))
    for _ in range(60):
        gaussian_star(objects, rng.uniform(10, w - 10), rng.uniform(10, h - 10), rng.uniform(2e3, 4e4), 3.0)
    objects += 400.0 * np.exp(-(((xx - 200) / 15) ** 2 + ((yy - 120) / 10) ** 2))
    noise = rng.normal(0, 5.0, (h, w))
    return (1000.0 + grad + objects + noise).astype(np.float32), grad, objects


def test_the_gradient_goes_and_the_stars_and_target_stay():
    img, grad, objects = _scene()
    out = remove_gradient(img)
    sky = objects < 1.0
    # the gradient's spread over the sky (120 ADU peak to peak) comes down below the noise
    left = (out - objects)[sky]
    assert np.ptp(grad[sky]) > 100
    assert np.std(left) < 1.2 * 5.0, np.std(left)
    # the sky level is kept (the mean of the sky samples: within the noise of the pixels'),
    # and the target is not taken for background: under it the sky is as flat as elsewhere
    assert np.mean(left) == pytest.approx(np.mean((img - objects)[sky]), abs=5.0)
    target = objects > 100
    assert np.median((out - objects)[target]) == pytest.approx(np.median(left), abs=3.0)
    # colour: each plane on its own
    rgb = np.stack([img, 0.5 * img, 2.0 * img], axis=-1)
    out3 = remove_gradient(rgb)
    for c, k in enumerate((1.0, 0.5, 2.0)):
        assert np.std((out3[..., c] - k * objects)[sky]) < 1.2 * 5.0 * k


def test_balance_neutral_background_and_white_stars():
    img, _, objects = _scene(seed=2, gradient=False)
    base = img - 1000.0
    # the camera's channels: sky 300 / 800 / 200 (green cast), stars 0.75 / 1 / 0.6 as bright
    rgb = np.stack([300 + 0.75 * base, 800 + base, 200 + 0.6 * base], axis=-1).astype(np.float32)
    out = balance(rgb)
    bg = np.median(out[objects < 1.0], axis=0)
    assert np.ptp(bg) < 2.0, bg
    bright = objects > 2000
    flux = (out[bright] - bg).sum(axis=0)
    assert flux / flux.mean() == pytest.approx([1, 1, 1], rel=0.03)
    assert np.mean(bg) == pytest.approx(np.mean([300, 800, 200]) + np.median(base[objects < 1.0]), abs=3.0)


def test_scnr_by_hand_and_a_green_stack_previews_neutral():
    px = np.array([[[10.0, 30.0, 20.0], [10.0, 12.0, 20.0], [0.0, 5.0, 0.0]]], np.float32)
    # average neutral: G = min(G, (R + B) / 2)
    assert scnr(px).tolist() == [[[10.0, 15.0, 20.0], [10.0, 12.0, 20.0], [0.0, 0.0, 0.0]]]
    img, _, _ = _scene(seed=3, gradient=False)
    rgb = np.stack([0.6 * img, 1.4 * img, 0.5 * img], axis=-1)
    pv = preview(rgb).astype(float)
    bg = np.median(pv.reshape(-1, 3), axis=0)
    assert 30 < bg[1] < 100 and np.ptp(bg) <= 2, bg
