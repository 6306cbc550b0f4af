"""The capture sequencer's own moves between frames, on the simulated rig and the virtual
clock: meridian flip (and a mount that cannot flip), filter change without a wheel, refocus
triggers, a guide-star loss mid-frame."""

import asyncio
import json
import math

import pytest

from fieldtui import astro
from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.events import Alert, CaptureFrame, CaptureWaiting, GuidePoint
from fieldtui.service.session import Session

T0 = 1_800_000_000.0   # 2027-01-15 08:00 UTC
ACTIVITIES = ("fieldtui.service.guiding:Guider", "fieldtui.service.capture:Capture")

LIGHTS = """
[[target.sequence]]
type = "light"
count = {count}
exposure = {exposure}
iso = 800
filter = "{filter}"
"""


def _plan(tmp_path, ra, dec, *seqs, name="triggers"):
    text = f'[plan]\nname = "{name}"\n[[target]]\nname = "T"\nra_deg = {ra}\ndec_deg = {dec}\n'
    text += "".join(LIGHTS.format(count=c, exposure=e, filter=f) for c, e, f in seqs)
    p = tmp_path / "plan.toml"
    p.write_text(text)
    return str(p)


def _cfg(data_root, ha_min, **over):
    """640×480 main frames; the mount and the plan's target ``ha_min`` minutes from the meridian
    at the start (negative: east of it)."""
    o = {"storage": {"data_root": str(data_root), "min_free_gb": 0.0},
         "main_camera": {"width": 640, "height": 480}}
    for k, v in over.items():
        o.setdefault(k, {}).update(v)
    cfg = load_config(user=False, overrides=o)
    cfg.plan.ra_deg = (astro.local_sidereal_deg(T0, cfg.site.longitude) - ha_min / 4.0) % 360.0
    return cfg


def _collect(session, *kinds):
    q = session.subscribe()
    got = []

    def drain():
        while not q.empty():
            ev = q.get_nowait()
            if isinstance(ev, kinds):
                got.append(ev)
        return got
    return drain


def _journal(res):
    with open(res["journal"]) as fh:
        return [json.loads(x) for x in fh]


async def _until(clock, cond, limit_s, step=1.0):
    end = clock.now() + limit_s
    while not cond():
        assert clock.now() < end, "timed out on the virtual clock"
        await clock.sleep(step)


def _finished_indices(journal):
    return sorted(r["index"] for r in journal if r["ev"] == "finished")


async def test_non_flipping_mount_pauses_before_the_meridian_then_resumes(data_root, tmp_path):
    cfg = _cfg(data_root, -3.0, sim={"mount_flips": False},
               capture={"flip_after_min": 1.0, "meridian_limit_min": 2.0})
    s = Session(cfg, VirtualClock(T0), activities=ACTIVITIES)
    await s.start()
    waits = _collect(s, CaptureWaiting)
    try:
        await s.capture.cmd_start(_plan(tmp_path, cfg.plan.ra_deg, cfg.plan.dec_deg, (6, 60, "L")))
        await _until(s.clock, lambda: s.capture.waiting is not None, 1200)
        w = s.capture.waiting
        lst = astro.local_sidereal_deg(s.clock.now(), cfg.site.longitude)
        ha_min = ((lst - cfg.plan.ra_deg + 540) % 360 - 180) * 4
        done_at_pause = s.capture.summary["done"]
        assert s.capture.state == "paused" and w["reason"] == "meridian"
        assert "cannot flip" in w["message"] and "capture.resume" in w["message"]
        # before the frame that would have run past the limit (end = HA + 1.5 min > 2 min)
        assert 0.5 - 0.05 < ha_min <= 2.0 and 1 <= done_at_pause < 6
        await s.clock.sleep(600)
        assert s.capture.summary["done"] == done_at_pause          # it really waits
        await s.commands["capture.resume"]()
        res = await asyncio.wait_for(asyncio.shield(s.capture.task), 60)
    finally:
        await s.stop()
    assert s.capture.state == "done" and s.capture.summary["done"] == 6
    assert [e.reason for e in waits()] == ["meridian"] and waits()[0].resume == "capture.resume"
    assert s.rig.sim.mount.pier_side == "west"                      # never flipped


async def test_filter_change_without_a_wheel_pauses_and_resumes(data_root, tmp_path):
    cfg = _cfg(data_root, -120.0)
    s = Session(cfg, VirtualClock(T0), activities=ACTIVITIES)
    await s.start()
    waits = _collect(s, CaptureWaiting)
    try:
        with pytest.raises(ValueError, match="not guiding"):   # nothing to move the lock of
            await s.commands["guide.lock"](dx=1.0)
        plan = _plan(tmp_path, cfg.plan.ra_deg, cfg.plan.dec_deg, (2, 30, "L"), (2, 30, "Ha"))
        await s.capture.cmd_start(plan)
        await _until(s.clock, lambda: s.capture.waiting is not None, 600)
        assert s.capture.summary["done"] == 2 and s.capture.state == "paused"
        assert s.capture.waiting["reason"] == "filter"
        assert "take out L, put in Ha" in s.capture.waiting["message"]
        await s.clock.sleep(300)
        assert s.capture.summary["done"] == 2
        await s.commands["capture.resume"]()
        await asyncio.wait_for(asyncio.shield(s.capture.task), 60)
    finally:
        await s.stop()
    assert s.capture.state == "done" and s.capture.summary["done"] == 4
    assert [(e.reason, e.resume) for e in waits()] == [("filter", "capture.resume")]
    journal = [json.loads(x) for x in (data_root / ".capture" / "triggers.jsonl").read_text().splitlines()]
    assert [r["filter"] for r in journal if r["ev"] == "filter"] == ["L", "Ha"]
    assert len(list(data_root.rglob("*/light/*.fits"))) == 4


async def _run_focus_plan(data_root, tmp_path, defocus_to=None, after=4, temp_step=None, **over):
    cfg = _cfg(data_root, -120.0, capture={"autofocus_exposure_s": 5.0, "autofocus_step": 100,
                                          "refocus_temp_c": 2.0}, **over)
    s = Session(cfg, VirtualClock(T0), activities=ACTIVITIES)
    await s.start()
    frames = _collect(s, CaptureFrame)
    s.test_alerts = _collect(s, Alert)
    try:
        await s.capture.cmd_start(_plan(tmp_path, cfg.plan.ra_deg, cfg.plan.dec_deg, (10, 30, "L")))
        await _until(s.clock, lambda: len(frames()) >= after, 1200, step=0.5)
        if defocus_to is not None:
            s.rig.sim.sky.focus_position = defocus_to
        if temp_step is not None:
            s.rig.sim.cfg.sim.temperature_c += temp_step
        await asyncio.wait_for(asyncio.shield(s.capture.task), 120)
    finally:
        await s.stop()
    assert s.capture.state == "done" and s.capture.summary["done"] == 10
    return s, frames(), _journal(s.capture.summary)


async def test_hfr_growth_triggers_an_autofocus_that_finds_best_focus(data_root, tmp_path):
    s, frames, journal = await _run_focus_plan(data_root, tmp_path, defocus_to=5350)
    best = s.rig.sim.cfg.sim.best_focus
    refocus = [r for r in journal if r["ev"] == "refocus"]
    assert len(refocus) == 1 and refocus[0]["done"] and "HFR" in refocus[0]["reason"]
    assert refocus[0]["start"] == 5350 and abs(refocus[0]["best"] - best) <= 60
    assert abs(s.rig.sim.sky.focus_position - best) <= 60
    hfr = [f.figures["hfr"] for f in frames]
    # the last lights are as sharp as the first ones again (better: the start was 130 steps off)
    assert max(hfr[-2:]) < 1.1 * min(hfr[:3]) and max(hfr[4:6]) > 1.2 * min(hfr[:3])


async def test_no_refocus_when_nothing_changes(data_root, tmp_path):
    # (the unguided simulated mount trails two of these lights: trailing is not focus)
    s, _, journal = await _run_focus_plan(data_root, tmp_path)
    assert not any(r["ev"] == "refocus" for r in journal)
    assert s.rig.sim.sky.focus_position == 5000


async def test_temperature_change_without_a_focuser_alerts_only(data_root, tmp_path):
    s, _, journal = await _run_focus_plan(data_root, tmp_path, after=3, temp_step=-3.0,
                                          focuser={"driver": "none"})
    refocus = [r for r in journal if r["ev"] == "refocus"]
    assert len(refocus) == 1 and not refocus[0]["done"]
    assert "temperature" in refocus[0]["reason"] and "-3.0 °C" in refocus[0]["reason"]
    assert any("no focuser, focus by hand" in a.text for a in s.test_alerts())


def _pump(session, kind):
    """Every event of ``kind`` from now on (read as they come: a subscriber's queue is bounded)."""
    q = session.subscribe()
    got = []

    async def run():
        while True:
            ev = await q.get()
            if isinstance(ev, kind):
                got.append(ev)
    session.test_pump = asyncio.ensure_future(run())
    return got


def _rms(points):
    return math.sqrt(sum(p.ra ** 2 + p.dec ** 2 for p in points) / len(points)) if points else float("nan")


async def _guided_session(cfg):
    s = Session(cfg, VirtualClock(T0), activities=ACTIVITIES)
    await s.start()
    await s.commands["guide.start"]()
    await _until(s.clock, lambda: s.guider.state == "guiding", 1800)
    return s


GUIDED = {"guide_camera": {"width": 480, "height": 360}, "sim": {"gusts_per_hour": 0.0}}


async def test_meridian_flip_mid_plan_resumes_guiding_and_capture_without_recalibrating(data_root, tmp_path):
    cfg = _cfg(data_root, -6.0, capture={"flip_after_min": 1.0, "meridian_limit_min": 2.0},
               main_camera={"width": 1280, "height": 960}, **GUIDED)   # stars enough to match
    s = await _guided_session(cfg)
    points = _pump(s, GuidePoint)
    cal0 = s.guider.worker.engine.calibration
    assert cal0.pier_side == "west"
    try:
        res = await s.capture.run_plan(_plan(tmp_path, cfg.plan.ra_deg, cfg.plan.dec_deg, (10, 60, "L")))
    finally:
        await s.stop()
    journal = _journal(res)
    assert res["state"] == "done" and res["done"] == 10 and res["flips"] == 1 and res["discarded"] == 0
    assert _finished_indices(journal) == list(range(1, 11))
    start, done = [r for r in journal if r["ev"] == "flip"]
    assert start["stage"] == "start" and 1.0 <= start["ha_min"] < 2.5 and start["guided"]
    assert done["stage"] == "done" and done["pier_side"] == "east"
    # the calibration was flipped, not redone: same timestamp, RA reversed
    cal = done["calibration"]
    assert cal["pier_side"] == "east" and cal["timestamp"] == cal0.timestamp
    assert (cal["ra_angle_deg"] - cal0.ra_angle_deg) % 360 == pytest.approx(180.0, abs=0.01)
    assert s.rig.sim.mount.pier_side == "east" and s.rig.sim.sky.pier_flipped
    # the framing check saw the field turned 180° and moved by the flip's goto error (~1′)
    fr = done["framing"]
    assert abs(abs(fr["rotation_deg"]) - 180) < 0.2 and fr["matched"] >= 6 and 5 < fr["offset_arcsec"] < 400
    # and the guider brought it back: main px per guide px is the ratio of the two plate scales
    rc = fr["recentre"]
    assert rc["before_px"] == pytest.approx(fr["offset_px"], rel=0.1) and rc["after_px"] < 3.0
    assert rc["main_px_per_guide_px"] == pytest.approx(cfg.guide_scale / cfg.main_scale, rel=0.1)
    # lights before and after the flip, guided as well after as before
    starts = [r for r in journal if r["ev"] == "started"]
    assert any(r["t"] < start["t"] for r in starts) and sum(r["t"] > done["t"] for r in starts) >= 3
    s.test_pump.cancel()
    pts = [p for p in points if p.state == "guiding" and p.ra is not None]
    before = [p for p in pts if start["t"] - 240 <= p.t < start["t"]]        # the 4 min before
    after = [p for p in pts if done["t"] + 30 < p.t <= done["t"] + 270]      # 4 min after settling
    print(f"flip {done['seconds']} s, settle {done['settle_s']} s; guided RMS before {_rms(before):.3f}″ "
          f"({len(before)} frames), after {_rms(after):.3f}″ ({len(after)})")
    assert len(before) > 200 and len(after) > 200
    assert _rms(after) < 1.5 * _rms(before), (_rms(before), _rms(after))


async def test_guide_star_loss_and_drift_away_discard_the_light_and_capture_resumes(data_root, tmp_path):
    # the drift-away alarm after 20 s away from the lock position (inside a 30-s light)
    cfg = _cfg(data_root, -120.0, guiding={"drift_time_s": 20.0}, **GUIDED)
    s = await _guided_session(cfg)
    waits = _collect(s, CaptureWaiting)
    try:
        await s.capture.cmd_start(_plan(tmp_path, cfg.plan.ra_deg, cfg.plan.dec_deg, (5, 30, "L")))
        await _until(s.clock, lambda: (s.capture.current or {}).get("index") == 2, 600, step=0.5)
        await s.clock.sleep(10.0)
        s.rig.sim.clouds(40.0)                     # the guide star goes for 40 s mid-light
        await _until(s.clock, lambda: s.capture.waiting is not None, 120, step=0.5)
        assert s.capture.waiting["reason"] == "guiding" and s.capture.state == "paused"
        assert "guide star lost" in s.capture.waiting["message"]
        # then the star drifts away: no corrections while the lock sits 6 px off it
        await _until(s.clock, lambda: (s.capture.current or {}).get("index") == 4, 600, step=0.5)
        await s.clock.sleep(5.0)
        w = s.guider.worker
        w.corrections = False
        w.engine.set_lock_position(w.engine.lock[0] + 6.0, w.engine.lock[1])
        await _until(s.clock, lambda: s.capture.waiting is not None, 180, step=0.5)
        assert "lock position" in s.capture.waiting["message"]
        w.corrections = True                       # full-strength corrections bring it back
        await asyncio.wait_for(asyncio.shield(s.capture.task), 120)
    finally:
        await s.stop()
    res = s.capture.summary
    journal = _journal(res)
    assert s.capture.state == "done" and res["done"] == 5 and res["discarded"] == 2
    # no frame lost or counted twice: indices 1-5 once each, five files
    assert _finished_indices(journal) == [1, 2, 3, 4, 5]
    assert len(set(res["files"])) == 5 and len(list(data_root.rglob("*/light/*.fits"))) == 5
    disc = [r for r in journal if r["ev"] == "discarded"]
    back = [r for r in journal if r["ev"] == "guiding_back"]
    assert [r["index"] for r in disc] == [2, 4] and len(back) == 2
    # each light taken again after guiding came back and settled (the clouds lasted 40 s)
    for d, b in zip(disc, back):
        restart = [r for r in journal if r["ev"] == "started" and r["index"] == d["index"]][-1]
        assert restart["t"] >= b["t"] and b["settle_s"] is not None
    assert back[0]["waited_s"] >= 20
    assert [w.reason for w in waits()] == ["guiding", "guiding"] and waits()[0].resume == ""
