import asyncio
import json
import subprocess
import sys
import time

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.events import Command, DeviceStatus
from fieldtui.service.session import Session

T0 = 1_800_000_000.0


async def test_virtual_clock_orders_sleepers_and_times_out():
    clock = VirtualClock(0.0)
    seen = []

    async def sleeper(name, dt, n):
        for _ in range(n):
            await clock.sleep(dt)
            seen.append((clock.now(), name))

    await asyncio.gather(sleeper("a", 2.0, 3), sleeper("b", 3.0, 2))
    # a and b both wake at t = 6: either may run first.
    assert seen[:3] == [(2.0, "a"), (3.0, "b"), (4.0, "a")]
    assert sorted(seen[3:]) == [(6.0, "a"), (6.0, "b")]
    with pytest.raises(TimeoutError):
        await clock.wait_for(asyncio.Event().wait(), 30.0)
    assert clock.now() == pytest.approx(36.0)


async def test_virtual_hour_runs_in_seconds():
    clock = VirtualClock(0.0)
    start = time.monotonic()
    while clock.now() < 3600:
        await clock.sleep(1.0)
    assert time.monotonic() - start < 5.0


async def test_hanging_and_disconnecting_devices_never_block_the_others(cfg):
    cfg.service.retry_interval_s = 5.0
    clock = VirtualClock(T0)
    session = Session(cfg, clock, connect_timeout=3.0)
    sim = session.rig.sim
    sim.faults.hang.add("focuser")
    sim.faults.disconnected.add("mount")
    q = session.subscribe()
    await session.start()
    st = {n: s.status for n, s in session.slots.items()}
    assert st["guide_camera"].state == "connected"
    assert st["main_camera"].state == "connected"
    assert st["focuser"].state == "failed" and "no answer within 3 s" in st["focuser"].error
    assert st["mount"].state == "failed" and "not connected" in st["mount"].error
    assert st["mount"].fix and st["focuser"].fix
    # Connecting took the focuser's timeout, not forever, and the cameras were not held up.
    assert clock.now() - T0 == pytest.approx(3.0, abs=0.01)
    # The guide camera works while the others fail.
    frame = await session.device("guide_camera").expose(1.0)
    assert frame.data.shape == (960, 1280)
    # Both are retried: clear the faults and they come back by themselves.
    sim.faults.clear()
    await clock.sleep(12.0)
    assert session.slots["mount"].status.state == "connected"
    assert session.slots["focuser"].status.state == "connected"
    assert session.slots["mount"].status.attempts >= 2
    events = []
    while not q.empty():
        events.append(q.get_nowait())
    states = [(e.name, e.state) for e in events if isinstance(e, DeviceStatus)]
    assert ("mount", "failed") in states and ("mount", "connected") in states
    await session.stop()


async def test_device_that_vanishes_mid_loop_is_reported_and_reconnected(cfg):
    cfg.service.retry_interval_s = 2.0
    clock = VirtualClock(T0)
    session = Session(cfg, clock)
    await session.start()
    await session.command(Command("loop.start", {"camera": "guide_camera", "exposure": 1.0}))
    await clock.sleep(5.0)
    assert session.activities["loop:guide_camera"].progress >= 3
    session.rig.sim.faults.disconnected.add("guide_camera")
    await clock.sleep(3.0)
    assert session.slots["guide_camera"].status.state in ("failed", "connecting", "disconnected")
    assert any("guide camera lost" in a.text for a in session.alerts)
    session.rig.sim.faults.disconnected.discard("guide_camera")
    before = session.activities["loop:guide_camera"].progress
    await clock.sleep(10.0)
    assert session.slots["guide_camera"].status.state == "connected"
    assert session.activities["loop:guide_camera"].progress > before
    assert "guide_camera" in session.last_preview
    await session.stop()


async def test_checklist_is_kept_for_the_night(cfg):
    clock = VirtualClock(T0)
    s1 = Session(cfg, clock)
    await s1.command(Command("checklist.toggle", {"item": "caps"}))
    assert s1.checklist["caps"] is True
    s2 = Session(cfg, clock)  # a restarted service, same night
    assert s2.checklist["caps"] is True and s2.checklist["raw"] is False
    with pytest.raises(ValueError, match="unknown checklist item"):
        await s2.command(Command("checklist.toggle", {"item": "cap"}))


def test_check_on_the_default_profile_as_a_subprocess(config_file):
    r = subprocess.run([sys.executable, "-m", "fieldtui", "check", "--json", "--config", str(config_file)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True
    names = [c["name"] for c in out["checks"]]
    assert names == ["guide_camera", "main_camera", "mount", "guide_port", "focuser", "disk", "clock", "site", "cpu"]
    for c in out["checks"]:
        assert set(c) >= {"name", "ok", "detail", "fix"}
    by = {c["name"]: c for c in out["checks"]}
    assert "1280x960" in by["guide_camera"]["detail"]
    assert "5184x3456" in by["main_camera"]["detail"] and "RGGB" in by["main_camera"]["detail"]
    assert "tracking on" in by["mount"]["detail"]
    assert "local sidereal time" in by["site"]["detail"]


def test_check_fails_with_a_fix_and_nonzero_status(tmp_path, data_root):
    p = tmp_path / "big.toml"
    p.write_text(f'[storage]\ndata_root = "{data_root}"\nmin_free_gb = 1000000.0\n')
    r = subprocess.run([sys.executable, "-m", "fieldtui", "check", "--json", "--config", str(p)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    disk = next(c for c in out["checks"] if c["name"] == "disk")
    assert out["ok"] is False and disk["ok"] is False and "free some space" in disk["fix"]
    r = subprocess.run([sys.executable, "-m", "fieldtui", "check", "--config", str(p)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "FAIL disk" in r.stdout and "→ free some space" in r.stdout
