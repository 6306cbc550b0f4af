"""Guided RMS against the seeing floor where guiding is hard: Dec backlash (with and without
polar drift, with dithering, without compensation), near the pole, a perfectly polar-aligned
mount, twice the seeing jitter, and the default rig on other random seeds.

Each case is a 30-minute guided run of ``fieldtui guide`` (calibration included) on the
simulated rig and its virtual clock, with a 320x240 guide frame: the physics, the worker
and the engine are those of a full frame, only fewer pixels are rendered (a run takes a few
seconds).  The ratio is the guided RMS over the seeing floor, the RMS a perfect mount
would still show.  FIELDTUI_SLOW_TESTS=1 adds 30″ of backlash, seeds 0, 1 and 3, full frames
and an hour.
"""

import os
import re

import pytest

from fieldtui.commands.guide import run_guide
from fieldtui.config import load_config

SLOW = os.environ.get("FIELDTUI_SLOW_TESTS") == "1"
SMALL = {"guide_camera": {"width": 320, "height": 240}}

CASES = {
    # name: (config overrides, dither every N minutes)
    "backlash 60″": ({"sim": {"backlash_arcsec": 60.0}}, 0.0),
    "backlash 60″, no polar drift": ({"sim": {"backlash_arcsec": 60.0, "polar_error_arcmin": 0.0}}, 0.0),
    "backlash 60″, dither every 2 min": ({"sim": {"backlash_arcsec": 60.0}}, 2.0),
    # Without backlash compensation and without drift the predictive Dec guider reverses
    # through the whole play; the play it measured lets it model that, and a replayed
    # resist switch is there to take over when it would do better (1.86x / 1.30x before).
    "backlash 30″, no polar drift, no compensation": (
        {"sim": {"backlash_arcsec": 30.0, "polar_error_arcmin": 0.0},
         "guiding": {"dec_backlash_comp": False}}, 0.0),
    "backlash 60″, no polar drift, no compensation": (
        {"sim": {"backlash_arcsec": 60.0, "polar_error_arcmin": 0.0},
         "guiding": {"dec_backlash_comp": False}}, 0.0),
    "Dec 85°": ({"plan": {"dec_deg": 85.0}}, 0.0),
    "perfect polar alignment": ({"sim": {"polar_error_arcmin": 0.0}}, 0.0),
    "seeing jitter 0.4": ({"sim": {"seeing_jitter": 0.4}}, 0.0),
    "default rig, seed 2": ({"sim": {"seed": 2}}, 0.0),
}
# Seeds 1 and 3 put fewer than min_stars stars in a 320x240 frame: 640x480 for those.
MID = {"guide_camera": {"width": 640, "height": 480}}
SLOW_CASES = {
    "backlash 30″": ({"sim": {"backlash_arcsec": 30.0}}, 0.0),
    "backlash 30″, no polar drift": ({"sim": {"backlash_arcsec": 30.0, "polar_error_arcmin": 0.0}}, 0.0),
    "backlash 30″, dither every 2 min": ({"sim": {"backlash_arcsec": 30.0}}, 2.0),
    "default rig, seed 0": ({"sim": {"seed": 0}}, 0.0),
    "default rig, seed 1": ({**MID, "sim": {"seed": 1}}, 0.0),
    "default rig, seed 3": ({**MID, "sim": {"seed": 3}}, 0.0),
}


def _merge(a: dict, b: dict) -> dict:
    out = {k: dict(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, {}).update(v)
    return out


async def _ratio(overrides, dither_min, minutes=30.0, small=True):
    if not small:
        overrides = {k: v for k, v in overrides.items() if k != "guide_camera"}
    cfg = load_config(user=False, overrides=_merge(SMALL, overrides) if small else overrides)
    res = await run_guide(cfg, minutes=minutes, fast=True, dither_every_min=dither_min)
    assert "error" not in res, res["error"]
    assert res["star_lost_events"] == 0
    return res, res["rms_total_arcsec"] / res["seeing_floor_arcsec"]


@pytest.mark.parametrize("name", list(CASES))
async def test_ratio_to_the_seeing_floor(name):
    overrides, dither = CASES[name]
    res, ratio = await _ratio(overrides, dither)
    assert res["frames"] > 1200
    if dither:
        assert res["dithers"] >= 12 and res["settled"] == res["dithers"]
    assert ratio <= 1.25, f"{name}: {res['rms_total_arcsec']:.2f}″ is {ratio:.2f}× the floor"
    # the default guide scope's stars (HFD about 2 px) are not called undersampled
    assert not [a for a in res["alerts"] if "undersampled" in a], res["alerts"]
    if "backlash 60″" in name:
        # Measured by the calibration, warned about, and compensated.
        found = [re.match(r"Dec backlash is large: about (\d+)″", a) for a in res["alerts"]]
        measured = [int(m.group(1)) for m in found if m]
        assert len(measured) == 1 and 54 <= measured[0] <= 66, res["alerts"]


@pytest.mark.skipif(not SLOW, reason="FIELDTUI_SLOW_TESTS=1 runs the longer variants")
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", list(SLOW_CASES) + list(CASES))
async def test_ratio_to_the_seeing_floor_full_frames_and_an_hour(name):
    overrides, dither = {**CASES, **SLOW_CASES}[name]
    for minutes, small in ((30.0, False), (60.0, True)):
        res, ratio = await _ratio(overrides, dither, minutes=minutes, small=small)
        assert ratio <= 1.25, f"{name}, {minutes:g} min: {ratio:.2f}× the floor"


async def test_undersampled_stars_within_the_issues_bound():
    """A 120-mm guide scope in 1.2″ seeing: stars of HFD ~1.4 px, guided on a Gaussian-fit
    centre, 30 minutes at the issue's 1.25x (1.23x; tests/guiding/test_hard_guiding.py runs
    4 minutes against a looser bound), with the note that the stars are undersampled."""
    from fieldtui.guiding.events import Alert
    events = []
    cfg = load_config(user=False, overrides=_merge(SMALL, {"guide_scope": {"focal_length_mm": 120.0},
                                                           "sim": {"seeing_fwhm_arcsec": 1.2}}))
    res = await run_guide(cfg, minutes=30.0, fast=True, on_event=events.append)
    assert "error" not in res and res["frames"] > 1200 and res["star_lost_events"] == 0
    ratio = res["rms_total_arcsec"] / res["seeing_floor_arcsec"]
    assert ratio <= 1.25, f"{res['rms_total_arcsec']:.2f}″ is {ratio:.2f}× the floor"
    notes = [e for e in events if isinstance(e, Alert) and e.code == "undersampled"]
    assert len(notes) == 1 and "undersampled (HFD 1." in notes[0].message
