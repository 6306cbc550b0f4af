"""The whole stacking run on simulated sets with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

from fieldtui.stacking import Rejection, StackError, StackOptions, stack, synth
from fieldtui.stacking.preview import preview

from .conftest import random_mats, write_set


def _resid(res, truth):
    """Stack minus the truth (scale and offset fitted: the flat's level, the bias when not
    calibrated) on the sky, and its robust rms."""
    x0, y0, x1, y1 = res.crop
    t = truth[y0:y1, x0:x1]
    use = t < 20 * np.median(t)
    s, b = np.polyfit(t[use][::7], res.image[use][::7], 1)
    d = res.image - (s * t + b)
    # sky: no star brighter than 3 % of the sky within 7 px (wings of saturated stars ring)
    sky = maximum_filter(t, 15) < 1.03 * np.median(t)
    return d, sky, float(1.4826 * np.median(np.abs(d[sky] - np.median(d[sky]))))


def test_noise_falls_as_one_over_root_n(tmp_path):
    cam = synth.Camera(width=320, height=240, hot_pixels=0, vignetting=0.0, bias_stripes=0.0, seed=21)
    fld = synth.Field.random(cam, n=90, seed=22)
    mats = random_mats(cam, 16, seed=23)
    sets = write_set(tmp_path, cam, fld, mats, kinds=())
    files = sorted(sets["light"][0].iterdir())
    truth = synth.truth_adu(cam, fld, 60.0)
    opts = StackOptions(rejection=Rejection("winsorized"), weighting="none")
    noise = {}
    for n in (4, 16):
        res = stack(files[:n], options=opts)
        assert len(res.used) == n and not res.rejected
        noise[n] = _resid(res, truth)[2]
    # one frame's sky noise, from the physics: sky + read noise, in ADU (times the vignetting)
    single = np.sqrt((fld.sky + cam.dark_current) * 60 + cam.read_noise ** 2) / cam.gain
    assert noise[4] / noise[16] == pytest.approx(2.0, rel=0.10)
    assert noise[16] < 1.1 * single / 4


def test_rejection_removes_satellite_trails_and_cosmic_rays(tmp_path):
    cam = synth.Camera(width=320, height=240, seed=31)
    fld = synth.Field.random(cam, n=90, seed=32)
    mats = random_mats(cam, 10, seed=33, rot=0.5)
    trail = (0.0, 30.0, 320.0, 200.0)
    write_set(tmp_path, cam, fld, mats, trails=[None, None, trail, None, None, (320, 10, 0, 230)], cosmic_rays=40,
              n_cal=5)
    truth = synth.truth_adu(cam, fld, 60.0)
    kw = dict(darks=[tmp_path / "dark"], flats=[tmp_path / "flat"], biases=[tmp_path / "bias"])
    # on the first light's grid, where the truth and the trail's line are (the sharpest-frame
    # choice is a near tie here: frames 0 and 8 differ by 0.001 px of FWHM)
    ref = str(tmp_path / "light" / "light_000.fits")
    clean = stack([tmp_path / "light"], options=StackOptions(rejection=Rejection("winsorized"), cosmetic=False,
                                                             reference=ref), **kw)
    plain = stack([tmp_path / "light"], options=StackOptions(rejection=Rejection("none"), cosmetic=False,
                                                             reference=ref), **kw)
    d_clean, sky, rms = _resid(clean, truth)
    d_plain, _, _ = _resid(plain, truth)
    # the trail of frame 2 on the reference grid: along the line through its ends
    m = np.linalg.inv(np.vstack([mats[2], [0, 0, 1]]))[:2]
    x0, y0 = clean.crop[:2]
    ts = np.linspace(0.1, 0.9, 200)
    p = np.column_stack([trail[0] + ts * (trail[2] - trail[0]), trail[1] + ts * (trail[3] - trail[1])]) @ m[:, :2].T + m[:, 2]
    ix, iy = np.rint(p[:, 0]).astype(int) - x0, np.rint(p[:, 1]).astype(int) - y0
    ok = (ix >= 0) & (iy >= 0) & (ix < clean.image.shape[1]) & (iy < clean.image.shape[0])
    ok &= sky[np.clip(iy, 0, sky.shape[0] - 1), np.clip(ix, 0, sky.shape[1] - 1)]
    assert ok.sum() > 50
    assert np.median(d_plain[iy[ok], ix[ok]]) > 8 * rms       # the trail is there without rejection
    assert abs(np.median(d_clean[iy[ok], ix[ok]])) < 1.0 * rms  # and gone with it
    # cosmic rays: 400 hits of ~7500 ADU; none left above 6 sigma on the sky with rejection
    assert (d_plain[sky] > 8 * rms).sum() > 100
    assert (d_clean[sky] > 6 * rms).sum() < 5


def test_unmatched_and_corrupt_frames_are_left_out_with_reasons(tmp_path):
    cam = synth.Camera(width=320, height=240, seed=41)
    fld = synth.Field.random(cam, n=90, seed=42)
    write_set(tmp_path, cam, fld, random_mats(cam, 5, seed=43), kinds=())
    other = synth.Field.random(cam, n=90, seed=44)
    from fieldtui.frame import Frame
    from fieldtui.imaging.io import write_fits
    rng = np.random.default_rng(1)
    write_fits(tmp_path / "light" / "other_field.fits", Frame(data=synth.light(cam, other, 60, None, rng), exposure=60))
    (tmp_path / "light" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage")
    write_fits(tmp_path / "light" / "small.fits", Frame(data=np.full((100, 100), 500, np.uint16), exposure=60))
    res = stack([tmp_path / "light"])
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in ((x["file"], x["reason"]) for x in res.rejected)}
    assert set(reasons) == {"other_field.fits", "broken.fits", "small.fits"}
    assert "registered" in reasons["other_field.fits"]
    assert "100×100" in reasons["small.fits"]
    assert len(res.used) == 5
    with pytest.raises(StackError):
        stack([tmp_path / "light" / "broken.fits"])


def test_selection_by_fwhm_threshold(tmp_path):
    cam = synth.Camera(width=320, height=240, hot_pixels=0, seed=51)
    fld = synth.Field.random(cam, n=90, seed=52)
    rng = np.random.default_rng(3)
    from fieldtui.frame import Frame
    from fieldtui.imaging.io import write_fits
    for i, m in enumerate(random_mats(cam, 6, seed=53)):
        write_fits(tmp_path / f"l{i}.fits", Frame(data=synth.light(cam, fld, 60, m, rng, fwhm=5.0 if i == 4 else 3.0),
                                                  exposure=60))
    res = stack([tmp_path], options=StackOptions(max_fwhm=4.0))
    assert [r["file"].rsplit("/", 1)[-1] for r in res.rejected] == ["l4.fits"]
    assert "FWHM" in res.rejected[0]["reason"]
    assert res.quality[str(tmp_path / "l4.fits")]["fwhm"] == pytest.approx(5.0, rel=0.1)
    assert res.quality[str(tmp_path / "l0.fits")]["fwhm"] == pytest.approx(3.0, rel=0.1)
    res = stack([tmp_path], options=StackOptions(fwhm_sigma=3.0))
    assert [r["file"].rsplit("/", 1)[-1] for r in res.rejected] == ["l4.fits"]


def test_a_frame_through_thick_cloud_is_left_out(tmp_path):
    # 2 % of the starlight gets through (4.2 magnitudes of cloud): 4 of the clear frames'
    # 22 stars are detected (5 % lets 6-7 through, at the 30 % limit), and the frame is
    # left out with the reason, the others stacked
    cam = synth.Camera(width=320, height=240, hot_pixels=0, seed=51)
    fld = synth.Field.random(cam, n=90, seed=52)
    cloud = synth.Field(fld.x, fld.y, fld.flux * 0.02, fld.fwhm, fld.sky)
    rng = np.random.default_rng(3)
    from fieldtui.frame import Frame
    from fieldtui.imaging.io import write_fits
    for i, m in enumerate(random_mats(cam, 6, seed=53)):
        write_fits(tmp_path / f"l{i}.fits", Frame(data=synth.light(cam, cloud if i == 2 else fld, 60, m, rng),
                                                  exposure=60))
    res = stack([tmp_path])
    assert [r["file"].rsplit("/", 1)[-1] for r in res.rejected] == ["l2.fits"]
    assert "clouds" in res.rejected[0]["reason"]
    stars = {p.rsplit("/", 1)[-1]: q["stars"] for p, q in res.quality.items()}
    assert stars["l2.fits"] < 0.3 * np.median(list(stars.values()))
    assert len(res.used) == 5


def test_colour_fits_set_is_calibrated_debayered_and_balanced(tmp_path):
    cam = synth.Camera(width=320, height=240, bayer="GRBG", seed=61)
    fld = synth.Field.random(cam, n=120, seed=62)
    write_set(tmp_path, cam, fld, random_mats(cam, 6, seed=63))
    res = stack([tmp_path / "light"], darks=[tmp_path / "dark"], flats=[tmp_path / "flat"],
                biases=[tmp_path / "bias"])
    assert res.image.ndim == 3 and res.image.shape[2] == 3
    truth = synth.truth_adu(cam, fld, 60.0)
    x0, y0, x1, y1 = res.crop
    for c in range(3):
        t = truth[y0:y1, x0:x1, c]
        ratio = np.median(res.image[..., c][t < 1.03 * np.median(t)]) / np.median(t)
        assert ratio == pytest.approx(0.9, abs=0.03)  # the flat's median level of the vignetted field
    assert res.header["CALSTAT"] == "BDF" and res.header["CFA-PAT"] == "GRBG"


def test_simulated_dslr_set_comes_out_with_neutral_background(dslr_night):
    from fieldtui.stacking.pipeline import night_folder
    sets = night_folder(dslr_night)
    assert all(len(v) == 5 for k, v in sets.items() if k not in ("lights", "dark_flats"))
    res = stack(sets["lights"], darks=sets["darks"], flats=sets["flats"], biases=sets["biases"])
    assert len(res.used) == 8, res.rejected
    lin = np.median(res.image.reshape(-1, 3), axis=0)
    assert lin[1] > 1.2 * lin[0] and lin[1] > 1.2 * lin[2]  # the raw stack is green
    pv = preview(res.image).astype(float)
    bg = np.median(pv.reshape(-1, 3), axis=0)
    assert 40 < bg[1] < 90
    assert abs(bg[0] - bg[1]) <= 2 and abs(bg[2] - bg[1]) <= 2, bg


def test_stacking_memory_follows_the_budget_not_the_number_of_frames(tmp_path):
    # tracemalloc (numpy's arrays) from registration's end to the stack: the image, one
    # block of rows of every frame within memory_mb, one frame's source rows; 12 frames
    # held whole would be 12 × 0.48 MB
    import tracemalloc
    cam = synth.Camera(width=400, height=300, hot_pixels=0, seed=31)
    sets = write_set(tmp_path, cam, synth.Field.random(cam, n=80, seed=32), random_mats(cam, 12, seed=33),
                     kinds=())
    files = sorted(sets["light"][0].iterdir())
    frame = 400 * 300 * 4
    peaks = {}
    for n in (4, 12):
        base = []

        def progress(stage, done, total):
            if stage == "register" and done == total:
                base.append(tracemalloc.get_traced_memory()[0])
                tracemalloc.reset_peak()

        tracemalloc.start()
        try:
            res = stack(files[:n], options=StackOptions(memory_mb=1, reference=str(files[0])), progress=progress)
            peaks[n] = tracemalloc.get_traced_memory()[1] - base[-1]
        finally:
            tracemalloc.stop()
        assert len(res.used) == n
    assert peaks[12] < frame + 2**20 + 0.5 * 2**20, peaks
    assert abs(peaks[12] - peaks[4]) < 0.25 * 2**20, peaks


def test_two_threads_give_the_serial_runs_masters_stack_and_reasons(tmp_path):
    # masters' frames read on two threads, calibration and resampling on two: the same
    # masters, the same stack to the bit and the same rejected frames, in the same order,
    # as one thread (a corrupt and a wrong-size frame among the flats, one among the lights)
    from fieldtui.frame import Frame
    from fieldtui.imaging.io import write_fits
    from fieldtui.stacking import pipeline
    cam = synth.Camera(width=240, height=180, seed=61)
    fld = synth.Field.random(cam, n=60, seed=62)
    write_set(tmp_path, cam, fld, random_mats(cam, 6, seed=63), n_cal=5)
    (tmp_path / "flat" / "flat_002.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage")
    write_fits(tmp_path / "flat" / "flat_100.fits", Frame(data=np.full((90, 120), 900, np.uint16), exposure=1.0))
    write_fits(tmp_path / "light" / "light_100.fits", Frame(data=np.full((90, 120), 900, np.uint16), exposure=60))
    kw = dict(darks=[tmp_path / "dark"], flats=[tmp_path / "flat"], biases=[tmp_path / "bias"])
    runs = []
    for threads in (1, 2):
        opts = StackOptions(threads=threads, memory_mb=1, reference=str(tmp_path / "light" / "light_000.fits"))
        scratch = pipeline._Scratch(str(tmp_path))
        rejected: list[dict] = []
        try:
            bias, _ = pipeline._master(sorted((tmp_path / "bias").iterdir()), "bias", opts, scratch, rejected)
            flat, first = pipeline._master(sorted((tmp_path / "flat").iterdir()), "flat", opts, scratch, rejected,
                                           subtract=bias, normalise=True)
        finally:
            scratch.close()
        res = stack([tmp_path / "light"], options=opts, **kw)
        runs.append((bias, flat, first.meta["ncombine"], rejected, res))
    (b1, f1, n1, r1, s1), (b2, f2, n2, r2, s2) = runs
    assert np.array_equal(b1, b2) and np.array_equal(f1, f2) and n1 == n2 == 4
    assert [x["file"].rsplit("/", 1)[-1] for x in r1] == ["flat_002.fits", "flat_100.fits"] and r1 == r2
    assert "120×90" in r1[1]["reason"]
    assert np.array_equal(s1.image, s2.image, equal_nan=True) and s1.used == s2.used and s1.rejected == s2.rejected
    assert [x["file"].rsplit("/", 1)[-1] for x in s1.rejected] == ["flat_002.fits", "flat_100.fits", "light_100.fits"]


def test_scratch_files_from_several_threads_at_once_are_all_kept(tmp_path):
    """The calibrate threads put frames into the scratch folder at the same time: every
    frame gets a file of its own (two threads once took the same name and one frame was
    stacked twice, another not at all)."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from fieldtui.stacking.pipeline import _Scratch

    scratch = _Scratch(str(tmp_path))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        with ThreadPoolExecutor(8) as pool:
            paths = list(pool.map(lambda i: (i, scratch.put(np.full((2, 3), i, np.float32))), range(2000)))
    finally:
        sys.setswitchinterval(old)
    assert len({p for _, p in paths}) == 2000
    for i, p in paths:
        assert np.array_equal(_Scratch.rows(p, 3, 0, 2), np.full((2, 3), i, np.float32))
    scratch.close()
