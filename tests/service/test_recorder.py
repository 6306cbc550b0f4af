"""The flight recorder (what runs, kept on disk), interruption reports, resuming, and the night rollover."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import ConfigError, load_config
from fieldtui.events import ChecklistChanged, Command, NightChanged
from fieldtui.service.session import Session

T0 = 1_800_000_000.0


def _cmd(session, name, **args):
    return session.command(Command(name, args))


async def _until(session, pred, clock_s=900.0, step=1.0, what=""):
    end = session.clock.now() + clock_s
    while not pred():
        assert session.clock.now() < end, f"timed out waiting for {what}"
        await session.clock.sleep(step)


def _record(path):
    return json.loads(path.read_text())


async def _guide_then_vanish(cfg, path):
    """Guide, then leave without a clean stop (what kill -9 leaves behind)."""
    session = Session(cfg, VirtualClock(T0), record_path=path)
    await session.start()
    g = session.guider
    await _cmd(session, "guide.start")
    await _until(session, lambda: g.state == "guiding", what="guiding")
    await session.clock.sleep(60)
    rec = _record(path)
    g.frame = g.worker.last_frame
    for task in list(session._tasks):  # the process dies: no stop, no last write
        task.cancel()
    await asyncio.sleep(0)
    session.clock.close()
    return rec, g


async def test_the_record_follows_guiding_and_a_clean_stop_clears_it(cfg, tmp_path):
    path = tmp_path / "state" / "service-state.json"
    session = Session(cfg, VirtualClock(T0), record_path=path)
    assert session.interrupted is None
    await session.start()
    g = session.guider
    try:
        await session.clock.sleep(1)
        assert _record(path)["running"] is True and _record(path)["activities"] == {}
        await _cmd(session, "guide.start")
        await _until(session, lambda: g.state == "guiding", what="guiding")
        await session.clock.sleep(5)
        rec = _record(path)["activities"]["guiding"]
        assert rec["state"] == "guiding"
        assert rec["guiding_since"] == pytest.approx(g.guiding_since)
        assert T0 < rec["guiding_since"] <= session.clock.now()
        lock = g.worker.engine.lock
        assert rec["lock"] == [round(lock[0], 2), round(lock[1], 2)]
        assert rec["calibration"]["angle_deg"] == round(g.worker.engine.calibration.ra_angle_deg, 1)
        assert rec["calibration_file"].endswith("guide_calibration.json")
        writes = session.recorder.writes
        await session.clock.sleep(30)  # nothing changed: at most the once-a-minute "alive" write
        assert session.recorder.writes - writes <= 1
        await _cmd(session, "guide.stop")
        await session.clock.sleep(1)
        assert _record(path)["activities"] == {}
    finally:
        await session.stop()
    assert _record(path)["running"] is False
    again = Session(cfg, VirtualClock(T0), record_path=path)
    assert again.interrupted is None  # a clean stop interrupts nothing


async def test_after_a_crash_the_next_start_reports_and_offers_to_resume(cfg, tmp_path):
    path = tmp_path / "service-state.json"
    rec, g = await _guide_then_vanish(cfg, path)
    assert rec["running"] and rec["activities"]["guiding"]["state"] == "guiding"
    # Make the record name another star than the one the guider picks by itself, so
    # resuming is seen to guide on the recorded star.
    from fieldtui.guiding.select import detect_candidates
    auto = rec["activities"]["guiding"]["lock"]
    h, w = g.frame.data.shape
    other = max((c for c in detect_candidates(g.frame.data) if not c.saturated and 60 < c.x < w - 60
                 and 60 < c.y < h - 60 and abs(c.x - auto[0]) + abs(c.y - auto[1]) > 100),
                key=lambda c: c.snr)
    rec["activities"]["guiding"]["lock"] = [other.x, other.y]
    path.write_text(json.dumps(rec))

    session = Session(cfg, VirtualClock(rec["alive_at"] + 120), record_path=path)  # back 2 minutes later
    try:
        prev = session.interrupted
        assert prev is not None and prev["activities"]["guiding"]["lock"] == rec["activities"]["guiding"]["lock"]
        assert prev["alive_at"] == rec["alive_at"] and prev["resumable"] == ["guiding"]
        await session.start()
        await session.clock.sleep(5)
        alert = next(a for a in session.alerts if a.source == "service")
        assert alert.level == "critical" and "stopped unexpectedly" in alert.text
        assert "guiding (guiding since" in alert.text and "send guide.resume" in alert.text.lower()
        assert session.snapshot()["interrupted"]["activities"]["guiding"]["state"] == "guiding"
        # Default: offered, not done.
        assert session.guider.state == "stopped"
        await _cmd(session, "guide.resume")
        await _until(session, lambda: session.guider.state == "guiding", what="resumed guiding")
        # The recorded star (a new simulated rig starts with the mount where it began:
        # the star sits a few pixels from where the first calibration had moved it).
        lock = session.guider.worker.engine.lock
        assert abs(lock[0] - other.x) < 10 and abs(lock[1] - other.y) < 10, (lock, other, auto)
        with pytest.raises(ValueError, match="resumed already"):
            await _cmd(session, "guide.resume")
    finally:
        await session.stop()


async def test_resume_guiding_true_guides_again_by_itself(cfg, tmp_path):
    path = tmp_path / "service-state.json"
    await _guide_then_vanish(cfg, path)
    cfg.service.resume_guiding = True
    session = Session(cfg, VirtualClock(T0 + 3600), record_path=path)
    try:
        await session.start()
        await _until(session, lambda: session.guider.state == "guiding", what="guiding by itself")
        assert session.interrupted["resumed"] == ["guiding"]
        assert any("Resuming guiding" in a.text for a in session.alerts)
        # The calibration stored before the crash was reused: no calibration ran.
        assert session.guider.worker.engine.calibrator is None
    finally:
        await session.stop()


def test_resume_guiding_is_validated(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[service]\nresume_guiding = "yes"\n')
    with pytest.raises(ConfigError, match="resume_guiding"):
        load_config(p)
    p.write_text('[service]\nresume_guiding = true\n')
    assert load_config(p).service.resume_guiding is True
    assert load_config().service.resume_guiding is False


async def test_the_night_rolls_over_at_local_noon(cfg):
    tz = ZoneInfo(cfg.site.timezone)
    before_noon = datetime(2027, 3, 10, 11, 59, 0, tzinfo=tz).timestamp()
    clock = VirtualClock(before_noon)
    session = Session(cfg, clock)
    assert session.night == "2027-03-09"
    first_dir = session.night_dir
    await _cmd(session, "checklist.toggle", item="caps")
    assert (first_dir / "checklist.json").exists()
    q = session.subscribe()
    await session.start()
    try:
        await clock.sleep(50)  # 11:59:50: still last night
        assert session.night == "2027-03-09" and session.checklist["caps"] is True
        await clock.sleep(20)  # 12:00:10
        assert session.night == "2027-03-10"
        assert session.night_dir == cfg.storage.root / "2027-03-10"
        assert not any(session.checklist.values())
        assert session.snapshot()["night"] == "2027-03-10"
        events = []
        while not q.empty():
            events.append(q.get_nowait())
        night = [e for e in events if isinstance(e, NightChanged)]
        assert len(night) == 1 and night[0].night == "2027-03-10"
        assert 0 <= night[0].t - datetime(2027, 3, 10, 12, 0, 0, tzinfo=tz).timestamp() < 5.0  # next heartbeat
        assert any(isinstance(e, ChecklistChanged) and not any(e.items.values()) for e in events)
        assert any("Night of 2027-03-10 begins" in a.text for a in session.alerts)
        # The new night's ticks go to its own folder; last night's stay where they were.
        await _cmd(session, "checklist.toggle", item="raw")
        assert json.loads((session.night_dir / "checklist.json").read_text())["raw"] is True
        assert json.loads((first_dir / "checklist.json").read_text())["caps"] is True
        # Nothing happens on the next heartbeats: one rollover a day.
        await clock.sleep(3600)
        assert session.night == "2027-03-10"
    finally:
        await session.stop()


async def test_guiding_after_noon_logs_into_the_new_night(cfg):
    tz = ZoneInfo(cfg.site.timezone)
    clock = VirtualClock(datetime(2027, 3, 10, 11, 50, 0, tzinfo=tz).timestamp())
    session = Session(cfg, clock)
    await session.start()
    g = session.guider
    try:
        await _cmd(session, "guide.loop")
        await clock.sleep(20)
        await _cmd(session, "guide.stop")
        old = session.night_dir
        assert list(old.glob("PHD2_GuideLog_*.txt"))
        await clock.sleep(15 * 60)
        assert session.night == "2027-03-10" and session.night_dir != old
        await _cmd(session, "guide.loop")
        await clock.sleep(20)
        await _cmd(session, "guide.stop")
        assert list(session.night_dir.glob("PHD2_GuideLog_*.txt"))
        assert len(list(old.glob("PHD2_GuideLog_*.txt"))) == 1
        assert g.worker.calibration_path == session.night_dir / "guide_calibration.json"
    finally:
        await session.stop()


# ----- a real service process, killed --------------------------------------------

def _fieldtui(*args, env):
    return subprocess.run([sys.executable, "-m", "fieldtui", *args], capture_output=True, text=True,
                          env=env, timeout=60)


async def _client():
    from fieldtui.service.client import RigClient
    c = RigClient()
    for _ in range(300):
        try:
            await c.connect(timeout=1.0)
            return c
        except Exception:  # noqa: BLE001 - not up yet
            await asyncio.sleep(0.05)
    raise AssertionError("the service did not answer")


def test_kill_9_of_a_guiding_service_is_reported_at_the_next_start(config_file, tmp_path):
    env = dict(os.environ)  # a private FIELDTUI_RUNTIME_DIR and FIELDTUI_STATE_DIR (conftest)
    state = os.environ["FIELDTUI_STATE_DIR"]
    record = os.path.join(state, "service-state.json")
    cmd = [sys.executable, "-m", "fieldtui", "service", "run", "--fast", "--config", str(config_file)]
    log = open(tmp_path / "service.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        async def guide():
            c = await _client()
            try:
                await c.command("guide.start")
                for _ in range(600):
                    st = await c.command("guide.state", minutes=1)
                    if st["state"] == "guiding":
                        break
                    await asyncio.sleep(0.1)
                assert st["state"] == "guiding", st
            finally:
                await c.close()

        asyncio.run(guide())
        for _ in range(200):  # the record says guiding (written as it changes)
            try:
                with open(record) as fh:
                    rec = json.load(fh)
                if rec["activities"].get("guiding", {}).get("state") == "guiding":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert rec["activities"]["guiding"]["state"] == "guiding" and rec["pid"] == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        async def look():
            c = await _client()
            try:
                snap = c.snapshot
                for _ in range(100):  # the alert comes as the service starts
                    if any(a["source"] == "service" for a in snap["alerts"]):
                        break
                    await asyncio.sleep(0.05)
                    await c.close()
                    c = await _client()
                    snap = c.snapshot
                return snap, await c.command("service.status")
            finally:
                await c.close()

        snap, status = asyncio.run(look())
        prev = snap["interrupted"]
        assert prev["pid"] == rec["pid"] and prev["activities"]["guiding"]["state"] == "guiding"
        assert status["interrupted"]["pid"] == rec["pid"]
        alert = next(a for a in snap["alerts"] if a["source"] == "service")
        assert alert["level"] == "critical"
        assert f"stopped unexpectedly (pid {rec['pid']}" in alert["text"] and "guiding" in alert["text"]
        assert snap["guiding"] is None  # offered, not resumed (resume_guiding = false)
        r = _fieldtui("service", "resume", env=env)
        assert r.returncode == 0 and "guiding resumed" in r.stdout, r.stderr
        r = _fieldtui("service", "resume", env=env)
        assert r.returncode == 1 and "resumed already" in r.stderr
    finally:
        r = _fieldtui("service", "stop", env=env)
        assert r.returncode == 0
        proc.wait(30)
    with open(record) as fh:
        assert json.load(fh)["running"] is False


def test_a_late_write_never_replaces_a_newer_record(tmp_path):
    """A write whose task was cancelled finishes in its thread after the clean stop's
    write: the older record must not land on top of the newer one."""
    from types import SimpleNamespace

    from fieldtui.service.recorder import Recorder
    fake = SimpleNamespace(clock=SimpleNamespace(now=lambda: 0.0))
    rec = Recorder(fake, tmp_path / "service-state.json")
    rec._write_in_order(2, {"running": False})
    rec._write_in_order(1, {"running": True})
    assert json.loads((tmp_path / "service-state.json").read_text()) == {"running": False}
    rec._write_in_order(3, {"running": True})
    assert json.loads((tmp_path / "service-state.json").read_text()) == {"running": True}
