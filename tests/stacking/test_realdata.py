"""Real frames: the M13 frames and the Seestar M94 frames of three nights register and stack."""

from __future__ import annotations

import numpy as np
import pytest

from fieldtui.imaging.stars import detect_stars
from fieldtui.stacking import StackOptions, stack

import os
from pathlib import Path

TESTDATA = Path(os.environ.get("FIELDTUI_TESTDATA", Path(__file__).resolve().parents[3] / "shared" / "testdata"))
FITS = TESTDATA / "fits"
pytestmark = pytest.mark.skipif(not (FITS / "seestar").is_dir(), reason="shared test data not present")


def test_m13_frames_register_and_stack():
    files = sorted(FITS.glob("astropydata_M13_blue_000*.fits"))
    res = stack(files, options=StackOptions(reference=str(files[0])))
    assert len(res.used) == 3 and not res.rejected
    shifts = {k.rsplit("_", 1)[-1]: v["registration"]["shift"] for k, v in res.quality.items() if "registration" in v}
    # the telescope drifts about 11 px per frame along -x (the imaging tests' independent pair
    # voting). These 5 s frames show a few dozen faint, wide stars whose centroids scatter by
    # ~2 px, so the shift is only known to a few pixels
    assert shifts["0002.fits"][0] == pytest.approx(-11.5, abs=3.5)
    assert shifts["0003.fits"][0] == pytest.approx(-23, abs=3.5)
    assert abs(shifts["0002.fits"][1]) < 5 and abs(shifts["0003.fits"][1]) < 6
    # the stack is smoother than one frame: the sky noise falls by about sqrt(3)
    one = np.asarray(res.image)  # stacked
    from fieldtui.imaging.io import read_frame
    single = read_frame(files[0]).data.astype(np.float32)
    x0, y0, x1, y1 = res.crop
    def noise(a):
        s = a[::3, ::3].ravel()
        return 1.4826 * np.median(np.abs(s - np.median(s)))
    assert noise(one) < 0.75 * noise(single[y0:y1, x0:x1])


def test_seestar_m94_three_nights_register_across_field_rotation_and_stack():
    files = sorted((FITS / "seestar").glob("*.fit"))
    assert len(files) == 8
    res = stack(files)
    assert len(res.used) == 8, res.rejected
    rot = {k.rsplit("-", 1)[0][-8:]: v["registration"]["rotation_deg"] for k, v in res.quality.items()
           if "registration" in v}
    # the alt-az mount rotates the field between nights: the third night is ~70 degrees off the others
    nights = {n: [r for k, r in rot.items() if k == n] for n in ("20250326", "20250327", "20250409")}
    assert max(abs(r) for r in nights["20250409"]) > 30
    for v in res.quality.values():
        if "registration" in v:
            assert v["registration"]["rms"] < 0.6 and v["registration"]["matched"] >= 20
    assert res.image.ndim == 3
    # stars stay sharp: the stack's FWHM within 20 % of the frames' median (same measurement)
    med = float(np.median([v["fwhm"] for v in res.quality.values()]))
    lum = np.nan_to_num(res.image.sum(axis=2))
    stars = [s for s in detect_stars(lum, max_fit=60) if s.fitted and not s.saturated]
    fwhm = float(np.median([s.fwhm for s in stars]))
    print("stack FWHM", fwhm, "frames", med)
    assert fwhm < 1.2 * med, (fwhm, med)
