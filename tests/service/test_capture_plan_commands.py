"""The service commands the Capture and Calibration screens send: load a plan without
starting it, edit a sequence (also while it runs), the calibration checklist from the
frame library, and appending what is missing to the plan."""

import asyncio
import tomllib

import pytest

from fieldtui.capture.plan import parse_plan
from fieldtui.capture.planedit import Need
from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.events import CaptureFrame
from fieldtui.service.session import Session
from tests.capture.libframes import write_frames

T0 = 1_800_000_000.0   # 2027-01-15 08:00 UTC: the night of 2027-01-15 in Asia/Kolkata
NIGHT = "2027-01-15"
ACTIVITIES = ("fieldtui.service.guiding:Guider", "fieldtui.service.capture:Capture",
              "fieldtui.service.calibration:CalibrationCheck")

PLAN = """\
# my plan: comments stay
[plan]
name = "edit test"

[[target]]
name = "M31"
ra_deg = 10.6847
dec_deg = 41.2690

[[target.sequence]]
type = "light"   # the lights
count = 3
exposure = 60
iso = 1600

[[target.sequence]]
type = "dark"
count = 2
"""


@pytest.fixture
def small_cfg(data_root):
    return load_config(overrides={"storage": {"data_root": str(data_root), "min_free_gb": 0.0},
                                  "main_camera": {"width": 320, "height": 240}})


async def _session(cfg):
    s = Session(cfg, VirtualClock(T0), activities=ACTIVITIES)
    await s.start()
    return s


async def test_load_shows_the_plan_and_the_default_plan_comes_from_config(small_cfg, tmp_path, data_root):
    s = await _session(small_cfg)
    try:
        res = await s.commands["capture.load"]()
        # no [plan] file: DATA/plans/<target>.toml from the [plan] section
        path = data_root / "plans" / "M33.toml"
        assert res["path"] == str(path.resolve()) and path.exists()
        p = parse_plan(path.read_text(), resolver=None)
        assert p.targets[0].sequences[0].count == small_cfg.plan.light_count
        assert p.targets[0].sequences[0].exposure == small_cfg.plan.light_exposure_s
        snap = s.capture.snapshot()
        assert snap["running"] is False and s.capture.state == "idle"
        assert [q["type"] for q in snap["sequences"]] == ["light", "dark", "flat", "bias"]
        # darks take the lights' exposure and ISO; the time left counts every frame
        dark = snap["sequences"][1]
        assert dark["exposure"] == 120.0 and dark["iso"] == small_cfg.main_camera.iso
        light = snap["sequences"][0]
        assert light["left_s"] == pytest.approx(40 * (120 + 2) + (39 // 3) * 15)
        plan = tmp_path / "p.toml"
        plan.write_text(PLAN)
        res = await s.commands["capture.load"](plan=str(plan))
        assert (res["plan"], res["planned"], res["done"]) == ("edit test", 5, 0)
        with pytest.raises(ValueError, match="cannot read plan"):
            await s.commands["capture.load"](plan=str(tmp_path / "none.toml"))
    finally:
        await s.stop()


async def test_edits_refused_or_written_and_a_running_plan_follows_them(small_cfg, tmp_path, data_root):
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN)
    s = await _session(small_cfg)
    q = s.subscribe()
    try:
        await s.commands["capture.load"](plan=str(plan))
        await s.commands["capture.edit"](target=0, sequence=1, count=1, exposure=30.0)
        assert "# my plan: comments stay" in plan.read_text() and "# the lights" in plan.read_text()
        doc = tomllib.loads(plan.read_text())
        assert doc["target"][0]["sequence"][1] == {"type": "dark", "count": 1, "exposure": 30.0}
        await s.commands["capture.start"]()
        # after the first light: more lights, and the count cannot drop below what is taken
        while True:
            ev = await asyncio.wait_for(q.get(), 60)
            if isinstance(ev, CaptureFrame):
                break
        assert (ev.type, ev.index) == ("light", 1)
        with pytest.raises(ValueError, match="1 frames are taken; the count cannot go below 1"):
            await s.commands["capture.edit"](target=0, sequence=0, count=0)
        with pytest.raises(ValueError, match="never mixes exposures"):
            await s.commands["capture.edit"](target=0, sequence=0, exposure=30.0)
        await s.commands["capture.edit"](target=0, sequence=0, count=4)
        assert s.capture.snapshot()["planned"] == 5
        # a sequence appended while it runs is taken too (here under a new target)
        added = s.capture.append_sequences([Need("dark sky", "bias", 2, None, 1600, None, "", NIGHT, "test")])
        assert added == ["2 biases ISO 1600 for dark sky"]
        assert s.capture.snapshot()["planned"] == 7
        await asyncio.wait_for(asyncio.shield(s.capture.task), 120)
    finally:
        await s.stop()
    assert s.capture.state == "done", s.capture.reason
    files = sorted(p.name for p in data_root.rglob("*.fits"))
    assert len([f for f in files if "_light_" in f]) == 4
    assert [f for f in files if "_dark_" in f] == ["M31_dark_30s_ISO1600_13C_0001.fits"]
    assert len([f for f in files if f.startswith("dark_sky_bias_")]) == 2


async def test_checklist_from_the_library_and_append_adds_only_what_the_plan_lacks(small_cfg, tmp_path,
                                                                                  data_root):
    write_frames(data_root, NIGHT, "M31", "light", 10, exposure=60, iso=800)
    write_frames(data_root, NIGHT, "M31", "dark", 10, exposure=60, iso=1600)       # another ISO
    write_frames(data_root, NIGHT, "M31", "bias", 10, exposure=0.00025, iso=800)  # fine
    write_frames(data_root, "2027-01-10", "M31", "flat", 10, exposure=1, iso=800)  # another night
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN)
    s = await _session(small_cfg)
    try:
        snap = await s.commands["calibration.check"]()
        assert snap["frames"] == 40 and len(snap["sets"]) == 1
        st = snap["sets"][0]
        assert (st["object"], st["iso"], st["exposure"], st["night"], st["count"]) == ("M31", 800, 60.0, NIGHT, 10)
        rules = {r["rule"]: r for r in st["rules"]}
        assert rules["darks"]["state"] == "mismatched" and "ISO 1600" in rules["darks"]["reason"]
        assert rules["flats"]["state"] == "mismatched" and "2027-01-10" in rules["flats"]["reason"]
        assert rules["biases"]["state"] == "done" and rules["darkflats"]["state"] == "optional"
        with pytest.raises(ValueError, match="no plan loaded"):
            await s.commands["calibration.append"]()
        await s.commands["capture.load"](plan=str(plan))
        res = await s.commands["calibration.append"]()
        assert res["added"] == ["20 darks 60 s ISO 800 for M31", "20 flats ISO 800 for M31"], res
        doc = tomllib.loads(plan.read_text())
        added = doc["target"][0]["sequence"][2:]
        assert added == [{"type": "dark", "count": 20, "exposure": 60.0, "iso": 800},
                         {"type": "flat", "count": 20, "iso": 800}]
        assert "# my plan: comments stay" in plan.read_text()
        assert [q["type"] for q in s.capture.snapshot()["sequences"]] == ["light", "dark", "dark", "flat"]
        # asked again: the plan already queues them
        res = await s.commands["calibration.append"]()
        assert res["added"] == [] and len(res["queued"]) == 2
        rules = {r["rule"]: r for r in s.calibration.snapshot()["sets"][0]["rules"]}
        assert rules["darks"]["queued"] == 20 and rules["flats"]["queued"] == 20
    finally:
        await s.stop()
