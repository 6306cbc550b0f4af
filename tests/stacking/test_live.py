"""Live stack: frames join one by one; noise falls, trails are left out, colour on super-pixels."""

import numpy as np
import pytest

from fieldtui.stacking import synth
from fieldtui.stacking.live import LiveStack, superpixels

from .conftest import random_mats


def _frames(cam, fld, n, seed, trail_at=None):
    rng = np.random.default_rng(seed)
    mats = random_mats(cam, n, seed=seed)
    out = []
    for i, m in enumerate(mats):
        raw = synth.light(cam, fld, 60.0, m, rng, trail=(0, 20, cam.width, cam.height - 20) if i == trail_at else None)
        out.append(raw.astype(np.float32) - cam.bias - cam.thermal(60.0) / cam.gain - cam.bias_pattern)
    return out


def test_live_stack_noise_falls_and_a_trail_is_left_out():
    cam = synth.Camera(width=320, height=240, hot_pixels=0, vignetting=0.0, seed=81)
    fld = synth.Field.random(cam, n=90, seed=82)
    live = LiveStack(None)
    truth = synth.truth_adu(cam, fld, 60.0)
    sky = truth < 1.02 * np.median(truth)
    noise = {}
    for i, f in enumerate(_frames(cam, fld, 12, 83, trail_at=7)):
        r = live.add(f)
        assert r.accepted and r.frames == i + 1
        if i + 1 in (3, 12):
            d = live.image() - truth
            core = sky & np.isfinite(d)
            core[:30], core[-30:], core[:, :30], core[:, -30:] = False, False, False, False
            noise[i + 1] = float(1.4826 * np.median(np.abs(d[core] - np.median(d[core]))))
    assert noise[3] / noise[12] == pytest.approx(2.0, rel=0.15)
    # the trail of frame 8 is not in the stack: along its middle the stack matches the truth
    d = live.image() - truth
    ys = np.linspace(40, 200, 60).astype(int)
    xs = (ys - 20) * cam.width / (cam.height - 40)
    vals = d[ys, np.clip(xs.astype(int), 0, cam.width - 1)]
    assert np.nanmedian(vals) < 3 * noise[12]


def test_live_stack_of_bayer_frames_on_superpixels_and_other_field_refused():
    cam = synth.Camera(width=320, height=240, bayer="RGGB", hot_pixels=0, vignetting=0.0, seed=91)
    fld = synth.Field.random(cam, n=120, seed=92)
    live = LiveStack("RGGB")
    for f in _frames(cam, fld, 4, 93):
        assert live.add(f).accepted
    img = live.image()
    assert img.shape == (120, 160, 3)
    t = superpixels(_mosaic_truth(cam, fld), "RGGB")
    ratio = np.nanmedian(img.reshape(-1, 3), axis=0) / np.median(t.reshape(-1, 3), axis=0)
    assert np.allclose(ratio, 1.0, atol=0.03)
    other = synth.Field.random(cam, n=120, seed=94)
    r = live.add(_frames(cam, other, 1, 95)[0])
    assert not r.accepted and "registered" in r.reason and r.frames == 4


def _mosaic_truth(cam, fld):
    return fld.render((cam.height, cam.width)) * np.float32(60.0 / cam.gain) * cam.response


def test_live_stack_equals_the_batch_stack_within_the_noise(tmp_path):
    """The same calibrated lights, one by one through the live stack and all at once
    through the pipeline (same reference, no crop): the two agree to a fraction of the
    stack's noise on the sky, and to 2 % on stars; both match the truth."""
    from fieldtui.imaging.io import read_frame
    from fieldtui.stacking import StackOptions, stack
    from fieldtui.stacking import calibrate as cal
    from fieldtui.stacking.pipeline import frame_files

    from .conftest import write_set
    cam = synth.Camera(width=320, height=240, seed=91, hot_pixels=20)
    fld = synth.Field.random(cam, n=80, seed=92)
    sets = write_set(tmp_path, cam, fld, random_mats(cam, 8, seed=93, shift=6, rot=0.5), n_cal=4)
    lights = frame_files(sets["light"])
    batch = stack(sets["light"], darks=sets["dark"], flats=sets["flat"], biases=sets["bias"],
                  options=StackOptions(reference=str(lights[0]), crop=False, save_masters=str(tmp_path / "m")))
    m = cal.Masters(bias=read_frame(tmp_path / "m" / "master_bias.fits").data,
                    dark=read_frame(tmp_path / "m" / "master_dark.fits").data,
                    flat=read_frame(tmp_path / "m" / "master_flat.fits").data)
    m.bad_pixels = cal.find_bad_pixels(m)
    live = LiveStack(None)
    for p in lights:
        f = read_frame(p)
        assert live.add(cal.calibrate(f.data, m, light_exposure=f.exposure).data).accepted
    a, b = live.image()[20:-20, 20:-20], batch.image[20:-20, 20:-20]
    truth = synth.truth_adu(cam, fld, 60.0)[20:-20, 20:-20]
    sky = (truth < 1.02 * np.median(truth)) & np.isfinite(a) & np.isfinite(b)
    mad = lambda x: float(1.4826 * np.median(np.abs(x - np.median(x))))  # noqa: E731
    noise = mad((b - truth)[sky])
    assert mad((a - truth)[sky]) < 1.15 * noise        # no noisier than the batch stack
    d = (a - b)[sky]
    assert abs(float(np.median(d))) < 0.1 * noise and mad(d) < 0.5 * noise
    stars = (truth > np.median(truth) + 200) & np.isfinite(a) & np.isfinite(b)
    assert stars.sum() > 50
    assert float(np.sum(a[stars]) / np.sum(b[stars])) == pytest.approx(1.0, abs=0.02)
