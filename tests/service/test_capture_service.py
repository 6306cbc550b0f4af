"""The capture sequencer on the simulated rig, on the virtual clock."""

import asyncio
import json

import numpy as np
import pytest
from astropy.io import fits

from fieldtui.capture.plan import BIAS_EXPOSURE_S
from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.events import CaptureFrame, CaptureSetFinished
from fieldtui.service import capture as capture_mod
from fieldtui.service.session import Session

T0 = 1_800_000_000.0   # 2027-01-15 08:00 UTC

PLAN = """
[plan]
name = "test plan"
[[target]]
name = "M31"
ra_deg = 10.6847
dec_deg = 41.2690
[[target.sequence]]
type = "light"
count = {lights}
exposure = 60
iso = 1600
filter = "L"
[[target.sequence]]
type = "dark"
count = 2
[[target.sequence]]
type = "flat"
count = 2
filter = "L"
[[target.sequence]]
type = "bias"
count = 2
"""

ACTIVITIES = ("fieldtui.service.guiding:Guider", "fieldtui.service.capture:Capture")


@pytest.fixture
def small_cfg(data_root):
    return load_config(overrides={"storage": {"data_root": str(data_root), "min_free_gb": 0.0},
                                  "main_camera": {"width": 640, "height": 480}})


@pytest.fixture
def plan_file(tmp_path):
    def make(lights=3):
        p = tmp_path / "plan.toml"
        p.write_text(PLAN.format(lights=lights))
        return str(p)
    return make


async def _session(cfg):
    s = Session(cfg, VirtualClock(T0), activities=ACTIVITIES)
    await s.start()
    return s


def _events(session, kind):
    q = session.subscribe()
    got = []

    def drain():
        while not q.empty():
            ev = q.get_nowait()
            if isinstance(ev, kind):
                got.append(ev)
        return got
    return drain


def _fits_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.fits"))


async def test_plan_runs_to_completion_with_names_and_headers(small_cfg, plan_file, data_root):
    s = await _session(small_cfg)
    sets = _events(s, CaptureSetFinished)
    try:
        res = await s.capture.run_plan(plan_file())
    finally:
        await s.stop()
    assert res["state"] == "done", res
    assert (res["planned"], res["done"], res["failed"], res["resumed"]) == (9, 9, 0, False)
    night = s.night
    files = _fits_files(data_root)
    assert len(files) == 9 and len(res["files"]) == 9
    assert f"{night}/M31/light/M31_light_60s_ISO1600_13C_0001.fits" in files
    # darks take the lights' ISO and exposure, biases the shortest exposure
    assert f"{night}/M31/dark/M31_dark_60s_ISO1600_13C_0002.fits" in files
    assert f"{night}/M31/bias/M31_bias_0.00025s_ISO1600_13C_0001.fits" in files
    h = fits.getheader(data_root / files[files.index(f"{night}/M31/light/M31_light_60s_ISO1600_13C_0001.fits")])
    cfg = small_cfg
    assert h["IMAGETYP"].lower().startswith("light")
    assert (h["EXPTIME"], h["ISOSPEED"], h["CCD-TEMP"]) == (60.0, 1600, cfg.sim.temperature_c)
    assert (h["OBJECT"], h["FILTER"], h["BAYERPAT"]) == ("M31", "L", "RGGB")
    assert (h["RA"], h["DEC"]) == (10.6847, 41.2690)
    assert (h["SITELAT"], h["SITELONG"]) == (cfg.site.latitude, cfg.site.longitude)
    assert (h["XPIXSZ"], h["FOCALLEN"]) == (cfg.main_camera.pixel_um, cfg.telescope.focal_length_mm)
    assert h["DATE-OBS"].startswith("2027-01-15T08:")
    assert h["NSTARS"] > 5
    bias = [f for f in files if "/bias/" in f][0]
    assert fits.getheader(data_root / bias)["EXPTIME"] == BIAS_EXPOSURE_S
    # one announcement per finished set, with its files in order
    got = sets()
    assert [(e.type, len(e.files)) for e in got] == [("light", 3), ("dark", 2), ("flat", 2), ("bias", 2)]
    assert got[0].files == [str(data_root / f) for f in files if "/light/" in f]
    assert got[1].exposure == 60.0 and got[1].iso == 1600
    assert not list(data_root.rglob("*.part"))


async def test_flats_land_at_half_range(small_cfg, plan_file, data_root):
    s = await _session(small_cfg)
    try:
        res = await s.capture.run_plan(plan_file(lights=1))
    finally:
        await s.stop()
    assert res["state"] == "done"
    flats = sorted(data_root.rglob("*/flat/*.fits"))
    assert len(flats) == 2
    m = small_cfg.main_camera
    for f in flats:
        data = fits.getdata(f).astype(np.float64)
        mean = (data.mean() - m.black_level) / (m.white_level - m.black_level)
        assert 0.45 <= mean <= 0.55, (f.name, mean)
        assert not (data >= m.white_level).any()
        # the search starts at 0.5 s; the panel gives 45 % (times the vignetting) in 1 s
        assert fits.getheader(f)["EXPTIME"] > 1.0


async def test_camera_disconnect_mid_sequence_is_retried(small_cfg, plan_file, data_root):
    s = await _session(small_cfg)
    s.capture.retry_s = 5.0
    frames = _events(s, CaptureFrame)
    try:
        await s.capture.cmd_start(plan_file(lights=4))
        while len(frames()) < 2:
            await s.clock.sleep(1.0)
        s.rig.sim.faults.set("main_camera", "disconnect")
        await s.clock.sleep(90.0)        # lost mid-exposure of the third light, and for a while after
        assert s.slots["main_camera"].status.state != "connected"
        s.rig.sim.faults.set("main_camera", "disconnect", False)
        await asyncio.wait_for(asyncio.shield(s.capture.task), 60)
    finally:
        await s.stop()
    assert s.capture.state == "done", s.capture.reason
    assert len(list(data_root.rglob("*/light/*.fits"))) == 4
    assert any("lost" in a.text for a in s.alerts if a.source == "main_camera")


async def test_full_disk_stops_cleanly_then_resumes(small_cfg, plan_file, data_root, monkeypatch):
    frames_on_disk = lambda: len(list(data_root.rglob("*.fits")))  # noqa: E731
    # the probe says the disk fills after the second frame
    monkeypatch.setattr(capture_mod, "disk_free_bytes",
                        lambda path: 10**12 if frames_on_disk() < 2 else 10**5)
    s = await _session(small_cfg)
    try:
        res = await s.capture.run_plan(plan_file(lights=3))
    finally:
        await s.stop()
        s.clock.close()
    assert res["state"] == "stopped" and "disk nearly full" in res["reason"]
    assert res["done"] == 2 and frames_on_disk() == 2
    assert not list(data_root.rglob("*.part"))
    monkeypatch.setattr(capture_mod, "disk_free_bytes", lambda path: 10**12)
    s = await _session(small_cfg)
    try:
        res = await s.capture.run_plan(plan_file(lights=3))
    finally:
        await s.stop()
    assert res["state"] == "done" and res["resumed"] and res["taken"] == 7
    assert frames_on_disk() == 9


async def test_pause_skip_and_abort(small_cfg, plan_file, data_root):
    s = await _session(small_cfg)
    frames = _events(s, CaptureFrame)
    try:
        await s.capture.cmd_start(plan_file(lights=5))
        while len(frames()) < 1:
            await s.clock.sleep(1.0)
        await s.commands["capture.pause"]()
        await s.clock.sleep(300.0)
        n = len(frames())
        assert s.capture.state == "paused" and n <= 2
        await s.commands["capture.skip"]()       # the rest of the lights
        await s.commands["capture.resume"]()
        while not any(f.type == "dark" for f in frames()):
            await s.clock.sleep(1.0)
        await s.commands["capture.abort"]()
        await asyncio.wait_for(asyncio.shield(s.capture.task), 60)
    finally:
        await s.stop()
    assert s.capture.state == "stopped" and "aborted" in s.capture.reason
    assert len(list(data_root.rglob("*/light/*.fits"))) == n
    # the dark in progress when the abort came is finished, then the run stops
    assert len(list(data_root.rglob("*/dark/*.fits"))) == 2
    journal = [json.loads(x) for x in (data_root / ".capture" / "test_plan.jsonl").read_text().splitlines()]
    assert any(r["ev"] == "skipped" for r in journal)


async def test_resume_adopts_a_landed_frame_and_removes_half_written_files(small_cfg, plan_file, data_root):
    s = await _session(small_cfg)
    frames = _events(s, CaptureFrame)
    try:
        await s.capture.cmd_start(plan_file(lights=3))
        while len(frames()) < 1:
            await s.clock.sleep(1.0)
        await s.clock.sleep(20.0)
        assert await s.commands["capture.abort"](now=True) == "aborted"   # mid-exposure of light 2
        with pytest.raises(asyncio.CancelledError):
            await s.capture.task
        assert s.capture.state == "stopped" and not s.capture.holds("main_camera")
    finally:
        await s.stop()
        s.clock.close()
    (first,) = list(data_root.rglob("*/light/*.fits"))
    # a kill after frame 2 was renamed into place but before "finished" was written,
    # and a kill during frame 3's write (a hidden .part file)
    second = first.with_name(first.name.replace("_0001", "_0002"))
    second.write_bytes(first.read_bytes())
    journal = data_root / ".capture" / "test_plan.jsonl"
    with journal.open("a") as fh:
        fh.write(json.dumps({"ev": "saving", "key": "0:0:light", "index": 2,
                             "path": second.relative_to(data_root).as_posix(), "exposure": 60.0,
                             "iso": 1600, "temperature": 13.0}) + "\n")
        fh.write('{"ev": "finished", "key": "0:0:li')   # a line cut short
    part = second.with_name(f".{second.name}.abc123.part")
    part.write_bytes(b"half")
    s = await _session(small_cfg)
    try:
        res = await s.capture.run_plan(plan_file(lights=3))
    finally:
        await s.stop()
    assert res["state"] == "done" and res["resumed"] and res["adopted"] == 1
    assert res["taken"] == 7                 # 3 lights + 6 calibration - 2 kept
    lights = sorted(p.name for p in data_root.rglob("*/light/*.fits"))
    assert lights == [first.name, second.name, first.name.replace("_0001", "_0003")]
    assert not part.exists()
