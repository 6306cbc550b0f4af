"""The guide worker against the simulated rig on the virtual clock."""

import asyncio
import math

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.devices.sim import SimRig
from fieldtui.commands.guide import main as guide_main, run_guide
from fieldtui.guiding.events import Alert, GuideState, GuideStep, StarFound, StarLost
from fieldtui.guiding.settings import GuideSettings
from fieldtui.service.guide_worker import GuideWorker


def _cfg(**sim):
    return load_config(user=False, overrides={"sim": sim} if sim else None)


async def _guiding_worker(cfg, events):
    clock = VirtualClock(1_800_000_000.0)
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    w = GuideWorker(rig.guide_camera, rig.guide_port, clock, GuideSettings.from_config(cfg),
                    mount=rig.mount, pixel_scale=cfg.guide_scale, on_event=events.append,
                    retry_s=2.0)
    await w.calibrate(then_guide=True)
    while w.state != GuideState.GUIDING:
        await clock.sleep(1.0)
    return clock, rig, w


@pytest.mark.parametrize("angle,flipped", [(17.0, False), (-60.0, True)])
async def test_calibration_on_sim_rig(angle, flipped):
    cfg = _cfg(guide_angle_deg=angle, guide_flipped=flipped, gusts_per_hour=0.0)
    events = []
    clock, rig, w = await _guiding_worker(cfg, events)
    await w.stop()
    cal = w.engine.calibration
    # The sim's angle is that of the east axis; a mirror reflects x.
    expected = angle if not flipped else 180.0 - angle
    assert abs((cal.ra_angle_deg - expected + 180) % 360 - 180) < 2.0
    assert cal.flipped == flipped
    scale = cfg.guide_scale
    dec_rate = cfg.mount.guide_rate * 15.041 / scale
    ra_rate = dec_rate * math.cos(math.radians(cfg.plan.dec_deg))
    assert cal.ra_rate == pytest.approx(ra_rate, rel=0.05)
    assert cal.dec_rate == pytest.approx(dec_rate, rel=0.05)


async def test_guiding_cuts_periodic_error_and_drift():
    cfg = _cfg()
    guided = await run_guide(cfg, minutes=8, fast=True)
    unguided = await run_guide(_cfg(), minutes=8, fast=True, corrections=False)
    assert guided["frames"] > 300 and unguided["frames"] > 300
    assert guided["rms_total_arcsec"] < 0.2 * unguided["rms_total_arcsec"]
    assert guided["peak_ra_arcsec"] < 0.3 * unguided["peak_ra_arcsec"]
    assert guided["rms_total_arcsec"] < 2.0 * guided["seeing_floor_arcsec"]
    assert guided["star_lost_events"] == 0


async def test_star_lost_to_clouds_then_found_resumes():
    cfg = _cfg(gusts_per_hour=0.0)
    events = []
    clock, rig, w = await _guiding_worker(cfg, events)
    await clock.sleep(60)
    rig.clouds(45)
    await clock.sleep(60)
    await clock.sleep(60)
    await w.stop()
    kinds = [type(e) for e in events]
    assert StarLost in kinds and StarFound in kinds
    assert any(isinstance(e, Alert) and e.code == "star-lost" for e in events)  # > 30 s lost
    i = max(i for i, e in enumerate(events) if isinstance(e, StarFound))
    assert sum(isinstance(e, GuideStep) for e in events[i:]) > 30
    steps = [e for e in events[i:] if isinstance(e, GuideStep)][-20:]
    assert max(math.hypot(s.dx, s.dy) for s in steps) < 1.5


async def test_camera_disconnect_is_survived():
    cfg = _cfg(gusts_per_hour=0.0)
    events = []
    clock, rig, w = await _guiding_worker(cfg, events)
    await clock.sleep(30)
    rig.faults.disconnect_guide = True
    await clock.sleep(20)
    rig.faults.disconnect_guide = False
    n_before = len(events)
    await clock.sleep(90)
    await w.stop()
    codes = [e.code for e in events if isinstance(e, Alert)]
    assert "camera-disconnected" in codes and "camera-reconnected" in codes
    after = [e for e in events[n_before:] if isinstance(e, GuideStep)]
    assert len(after) > 40
    assert max(math.hypot(s.dx, s.dy) for s in after[-20:]) < 1.5


async def test_dither_settles_on_sim_rig(tmp_path):
    cfg = _cfg(gusts_per_hour=0.0)
    events = []
    clock, rig, w = await _guiding_worker(cfg, events)
    await clock.sleep(60)
    lock0 = w.engine.lock
    done = await w.dither_and_settle()
    await w.stop()
    assert done is not None and done.ok
    assert 10.0 <= done.settle_time_s <= 40.0 and done.distance_px <= 1.5
    moved = math.hypot(w.engine.lock[0] - lock0[0], w.engine.lock[1] - lock0[1])
    assert moved == pytest.approx(5.0, rel=0.1)


def test_cli_json(capsys, tmp_path):
    assert guide_main(["--minutes", "2", "--fast", "--json", "--log-dir", str(tmp_path)]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    for k in ("minutes", "frames", "rms_ra_arcsec", "rms_dec_arcsec", "rms_total_arcsec",
              "peak_ra_arcsec", "peak_dec_arcsec", "star_lost_events", "seeing_floor_arcsec"):
        assert k in out
    assert out["frames"] > 60
    logs = list(tmp_path.glob("PHD2_GuideLog_*.txt"))
    assert len(logs) == 1
    from fieldtui.guiding.log import parse_guide_log
    log = parse_guide_log(logs[0])
    assert len(log.sessions) == 1 and len(log.sessions[0].entries) >= out["frames"]


async def test_a_run_that_did_not_start_leaves_the_loop_to_the_next_run():
    """Guiding that does not start (more stars asked for than the frame shows) returned
    without stopping its virtual clock's driver, and the next run in the same event loop
    (a script or benchmark calling run_guide in turn) spun for ever."""
    small = {"guide_camera": {"width": 320, "height": 240}}
    bad = load_config(user=False, overrides={**small, "guiding": {"min_stars": 1000}})
    res = await asyncio.wait_for(run_guide(bad, minutes=1.0, fast=True), 60)
    assert "frames" not in res and "need at least 1000" in res["error"]
    res = await asyncio.wait_for(run_guide(load_config(user=False, overrides=small), minutes=1.0, fast=True), 60)
    assert "error" not in res and res["frames"] > 40
