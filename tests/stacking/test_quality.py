"""The per-frame FWHM the stacking selects on, plots and reports: in sensor pixels, as
``fieldtui analyze`` measures it (on a Bayer frame, on its green pixels at full
resolution). Known answers: the FWHM the simulated stars were rendered with. (The real
Seestar M94 frames against the testdata README's independent reference: test_realdata.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from fieldtui.frame import Frame
from fieldtui.imaging.io import write_fits
from fieldtui.imaging.metrics import frame_metrics
from fieldtui.stacking import StackOptions, stack, synth
from fieldtui.stacking.quality import measure

from .conftest import random_mats


def _calibrated(cam: synth.Camera, raw: np.ndarray) -> np.ndarray:
    """The light minus its (noiseless) bias: what calibration leaves, vignetting aside."""
    return raw.astype(np.float32) - np.float32(cam.bias) - cam.bias_pattern


@pytest.mark.parametrize("pattern,fwhm", [("GRBG", 2.4), ("RGGB", 3.2)])
def test_bayer_frame_fwhm_in_sensor_pixels_as_analyze(pattern, fwhm):
    # 2.4 px: undersampled, as the Seestar's stars. The 2x2 super-pixels' own fit read
    # these frames 8 % and 10 % wide (2.60 and 3.51 px)
    rng = np.random.default_rng(63)
    cam = synth.Camera(width=480, height=360, bayer=pattern, seed=61)
    fld = synth.Field.random(cam, n=250, fwhm=fwhm, seed=62)
    raw = synth.light(cam, fld, 60.0, None, rng)
    q = measure(_calibrated(cam, raw), pattern, white_level=cam.white - cam.bias)
    assert q.stars > 40
    assert q.fwhm == pytest.approx(fwhm, rel=0.03)
    assert q.roundness > 0.9  # round stars
    # the figure `fieldtui analyze` gives for the raw file
    m = frame_metrics(Frame(data=raw, bayer=pattern, white_level=cam.white))
    assert q.fwhm == pytest.approx(m["fwhm"], rel=0.02)
    # the same field on a mono sensor: the same figure, one unit for both
    mono = synth.Camera(width=480, height=360, seed=61)
    qm = measure(_calibrated(mono, synth.light(mono, fld, 60.0, None, rng)), None)
    assert qm.fwhm == pytest.approx(fwhm, rel=0.03)


def test_colour_frames_selected_and_reference_chosen_by_sensor_pixel_fwhm(tmp_path):
    # four colour frames of known, undersampled FWHM: the reference is the sharpest, a
    # limit between the two widest leaves out only the widest, and each frame's figure
    # (plot, --json) is its own FWHM
    rng = np.random.default_rng(71)
    cam = synth.Camera(width=480, height=360, bayer="GRBG", hot_pixels=0, seed=72)
    fld = synth.Field.random(cam, n=250, seed=73)
    widths = (2.7, 2.2, 2.45, 3.0)
    for i, (m, fw) in enumerate(zip(random_mats(cam, len(widths), seed=74), widths)):
        raw = synth.light(cam, fld, 60.0, m, rng, fwhm=fw)
        write_fits(tmp_path / f"l{i}.fits", Frame(data=raw, exposure=60.0, bayer="GRBG"))
    res = stack([tmp_path], options=StackOptions(max_fwhm=2.85))
    assert res.reference == str(tmp_path / "l1.fits")
    assert [r["file"].rsplit("/", 1)[-1] for r in res.rejected] == ["l3.fits"]
    assert res.rejected[0]["reason"].startswith("FWHM 3.0")
    for i, fw in enumerate(widths):
        assert res.quality[str(tmp_path / f"l{i}.fits")]["fwhm"] == pytest.approx(fw, rel=0.04)
