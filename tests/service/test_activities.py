"""The activity pattern, device leases and the device proxy, on the simulated rig and the virtual clock."""

import asyncio
import logging
import sys
import textwrap

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.devices.base import Device, DeviceError, DeviceInfo, DeviceTimeout
from fieldtui.devices.proxy import DeviceBusy, DeviceProxy
from fieldtui.events import ActivityStatus, Alert, Command
from fieldtui.service.activity import Activity, SubprocessActivity
from fieldtui.service.session import Session
from fieldtui.ui.state import RigState

T0 = 1_800_000_000.0


def _cmd(session, name, **args):
    return session.command(Command(name, args))


async def _until(session, pred, clock_s=600.0, step=0.5, what=""):
    end = session.clock.now() + clock_s
    while not pred():
        assert session.clock.now() < end, f"timed out waiting for {what}"
        await session.clock.sleep(step)


def _drain(q):
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


# ----- the registry -------------------------------------------------------------

class _Probe(Activity):
    """A test activity: one command, a task that may raise, a stop that is recorded."""

    name = "probe"
    stopped: list = []

    def __init__(self, session, name="probe", cmds=("probe.go",)):
        super().__init__(session)
        self.name = name  # type: ignore[misc]
        self._cmds = cmds

    def commands(self):
        return {c: self.go for c in self._cmds}

    def snapshot(self):
        return {"n": 1}

    async def go(self, fail_after: float | None = None):
        self.set_status("running")
        self.spawn(self._work(fail_after), name=f"{self.name}-work")
        return "going"

    async def _work(self, fail_after):
        if fail_after is None:
            await asyncio.Event().wait()
        await self.s.clock.sleep(fail_after)
        raise RuntimeError("the probe broke")

    async def shutdown(self):
        _Probe.stopped.append(self.name)


async def test_registry_refuses_duplicate_commands_and_bad_names(cfg):
    session = Session(cfg, VirtualClock(T0))
    # The Session's two activities registered their commands once each.
    assert "guide.start" in session.commands and "focus.start" in session.commands
    assert [a.name for a in session.registry] == ["loop", "focus", "guiding", "capture", "calibration", "stacking"]
    session.add_activity(_Probe(session, "a", ("a.go",)))
    with pytest.raises(ValueError, match="'a.go' is already registered"):
        session.add_activity(_Probe(session, "b", ("b.go", "a.go")))
    assert "b.go" not in session.commands and "b" not in session.registry  # nothing half-registered
    with pytest.raises(ValueError, match="'guide.start' is already registered"):
        session.add_activity(_Probe(session, "c", ("guide.start",)))
    with pytest.raises(ValueError, match="'ping' is already registered|not of the form"):
        session.add_activity(_Probe(session, "d", ("ping",)))
    with pytest.raises(ValueError, match="not of the form name.verb"):
        session.add_activity(_Probe(session, "e", ("e.go.now",)))
    with pytest.raises(ValueError, match="already registered"):
        session.add_activity(_Probe(session, "a", ("a.other",)))


async def test_activities_stop_in_reverse_order(cfg):
    session = Session(cfg, VirtualClock(T0), activities=())
    _Probe.stopped = []
    for n in ("first", "second", "third"):
        session.add_activity(_Probe(session, n, (f"{n}.go",)))
    await session.start()
    for n in ("first", "second", "third"):
        assert await _cmd(session, f"{n}.go") == "going"
    assert sorted(session.running_activities()) == ["first", "second", "third"]
    await session.stop()
    assert _Probe.stopped == ["third", "second", "first"]
    assert {session.activities[n].state for n in ("first", "second", "third")} == {"stopped"}


async def test_an_exception_in_an_activity_task_fails_it_with_an_alert(cfg, caplog):
    session = Session(cfg, VirtualClock(T0), activities=())
    probe = session.add_activity(_Probe(session, "probe", ("probe.go",)))
    await session.start()
    q = session.subscribe()
    lease = probe.lease("guide_camera")
    await _cmd(session, "probe.go", fail_after=3.0)
    with caplog.at_level(logging.ERROR):
        await session.clock.sleep(5.0)
    assert probe.state == "failed" and probe.reason == "RuntimeError: the probe broke"
    st = session.activities["probe"]
    assert st.state == "failed" and st.reason == "RuntimeError: the probe broke"
    assert st.summary == {"n": 1}
    crit = [a for a in session.alerts if a.level == "critical"]
    assert crit and "probe stopped on an error: RuntimeError: the probe broke" in crit[-1].text
    assert any("probe failed" in r.getMessage() and r.exc_info for r in caplog.records)
    # Its lease is given back; every subscriber got the failed status and the alert.
    assert session.holder("guide_camera") is None and lease is not session.holder("guide_camera")
    events = _drain(q)
    assert any(isinstance(e, ActivityStatus) and e.name == "probe" and e.state == "failed" for e in events)
    assert any(isinstance(e, Alert) and e.level == "critical" for e in events)
    # A client folds it without knowing the activity, and shows it.
    rig = RigState()
    rig.load(session.snapshot())
    assert rig.failed()[0]["name"] == "probe" and rig.failed()[0]["reason"] == "RuntimeError: the probe broke"
    assert rig.extra["probe"] == {"n": 1}
    await session.stop()


def test_client_folds_any_activity_status():
    rig = RigState()
    rig.load({"activities": {}})
    part = rig.apply(ActivityStatus(name="capture", state="running", progress=3, summary={"done": 3, "total": 40}))
    assert part == "activities"
    assert rig.extra["capture"] == {"done": 3, "total": 40} and rig.activities["capture"]["state"] == "running"
    rig.apply(ActivityStatus(name="capture", state="failed", reason="disk full", summary={"done": 4, "total": 40}))
    assert rig.extra["capture"]["done"] == 4 and rig.failed() == [rig.activities["capture"]]
    from fieldtui.ui.widgets.status import status_text
    rig.heartbeat = {"disk_free_gb": 10.0}
    assert "capture failed: disk full" in status_text(rig, 200)


# ----- leases -------------------------------------------------------------------

async def test_leases_refuse_a_second_owner(cfg):
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    try:
        lease = session.lease("guide_camera", "guiding")
        assert session.lease("guide_camera", "guiding") is lease  # the same owner again
        assert session.slots["guide_camera"].status.holder == "guiding"
        with pytest.raises(DeviceBusy, match=r"guide camera is in use by guiding \(since \d\d:\d\d\)"):
            session.lease("guide_camera", "focus")
        # A device handed out without the lease cannot act on it, only read.
        with pytest.raises(DeviceBusy, match="in use by guiding"):
            await session.device("guide_camera").expose(1.0)
        frame = await lease.device.expose(1.0)
        assert frame.data.shape == (960, 1280)
        with pytest.raises(ValueError, match="guide camera is in use by guiding"):
            await _cmd(session, "focus.start", camera="guide_camera")
        with pytest.raises(ValueError, match="guide camera is in use by guiding"):
            await _cmd(session, "loop.start", camera="guide_camera")
        session.release(lease)
        assert session.holder("guide_camera") is None and session.slots["guide_camera"].status.holder == ""
        # Guiding cannot take the camera the focus aid loops on, and says why.
        await _cmd(session, "focus.start", camera="guide_camera", exposure=1.0)
        with pytest.raises(ValueError, match="guide camera is in use by focus"):
            await _cmd(session, "guide.loop")
        assert session.holder("guide_port") is None  # nothing half-taken
        await _cmd(session, "focus.stop")
        assert session.holder("guide_camera") is None
        assert await _cmd(session, "guide.loop") == "looping"
        assert session.holder("guide_camera").owner == "guiding"
        assert session.holder("guide_port").owner == "guiding"
        await _cmd(session, "guide.stop")
        assert session.holder("guide_camera") is None and session.holder("guide_port") is None
    finally:
        await session.stop()


async def test_two_quick_loop_starts_start_one_loop(cfg):
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    cam = session.rig.sim.guide_camera
    busy = {"now": 0, "max": 0}
    expose = cam.expose

    async def counted(*a, **kw):
        busy["now"] += 1
        busy["max"] = max(busy["max"], busy["now"])
        try:
            return await expose(*a, **kw)
        finally:
            busy["now"] -= 1

    cam.expose = counted
    try:
        r = await asyncio.gather(_cmd(session, "loop.start", camera="guide_camera", exposure=1.0),
                                 _cmd(session, "loop.start", camera="guide_camera", exposure=1.0))
        assert sorted(r) == ["already looping", "looping"]
        assert [t.get_name() for t in session._tasks].count("loop:guide_camera") == 1
        assert session.holder("guide_camera").owner == "loop:guide_camera"
        await session.clock.sleep(10.0)
        assert session.activities["loop:guide_camera"].progress >= 5
        assert busy["max"] == 1
        await _cmd(session, "loop.stop", camera="guide_camera")
        assert session.holder("guide_camera") is None
    finally:
        await session.stop()


async def test_an_error_in_one_loop_ends_that_loop_only(cfg, monkeypatch):
    import fieldtui.service.session as session_module
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    real = session_module.preview_of

    def preview(frame):
        if frame.bayer:  # the main camera's frames
            raise MemoryError("no room for the preview")
        return real(frame)

    monkeypatch.setattr(session_module, "preview_of", preview)
    try:
        await _cmd(session, "loop.start", camera="guide_camera", exposure=1.0)
        await _cmd(session, "loop.start", camera="main_camera", exposure=1.0)
        await session.clock.sleep(10.0)
        st = session.activities["loop:main_camera"]
        assert st.state == "failed" and st.reason == "MemoryError: no room for the preview"
        assert any(a.level == "critical" and a.source == "loop:main_camera" for a in session.alerts)
        assert session.holder("main_camera") is None
        n = session.activities["loop:guide_camera"].progress
        await session.clock.sleep(5.0)
        assert session.activities["loop:guide_camera"].state == "running"
        assert session.activities["loop:guide_camera"].progress > n
        assert session.running_activities() == ["loop:guide_camera"]
    finally:
        await session.stop()
    assert session.activities["loop:guide_camera"].state == "stopped"


async def test_check_while_guiding_reports_the_holder_and_the_last_frame(cfg):
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    cam = session.rig.sim.guide_camera
    busy = {"now": 0, "max": 0}
    expose = cam.expose

    async def counted(*a, **kw):
        busy["now"] += 1
        busy["max"] = max(busy["max"], busy["now"])
        try:
            return await expose(*a, **kw)
        finally:
            busy["now"] -= 1

    cam.expose = counted
    try:
        await _cmd(session, "guide.loop")
        await session.clock.sleep(10.0)
        res = await _cmd(session, "check")
        by = {c["name"]: c for c in res["checks"]}
        g = by["guide_camera"]
        assert g["ok"] and "in use by guiding (since" in g["detail"]
        last = session.slots["guide_camera"].use.last_frame
        assert f"{last.width}x{last.height} px" in g["detail"] and "median" in g["detail"]
        assert busy["max"] == 1  # the check never exposed the camera guiding holds
        assert "test frame" in by["main_camera"]["detail"]  # a free camera is still tested
        assert session.holder("main_camera") is None
    finally:
        await session.stop()


# ----- the proxy ----------------------------------------------------------------

class _Hanging(Device):
    kind = "main_camera"
    driver = "test"

    def __init__(self):
        self.calls = 0

    async def connect(self):
        return DeviceInfo("main_camera", "test", "hangs")

    async def expose(self, seconds, iso=None, path=None, kind="light"):
        self.calls += 1
        await asyncio.Event().wait()

    async def broken(self):
        raise ZeroDivisionError("driver bug")

    async def io(self):
        raise OSError(5, "Input/output error")


async def test_a_hanging_device_call_times_out_through_the_proxy():
    clock = VirtualClock(T0)
    lost = []
    proxy = DeviceProxy(_Hanging(), "main_camera", clock, on_lost=lambda n, e: lost.append(n))
    with pytest.raises(DeviceTimeout, match="main camera: expose got no answer within 90 s"):
        await proxy.expose(60.0)
    assert clock.now() - T0 == pytest.approx(90.0)  # the exposure's length + the DSLR's 30 s margin
    assert proxy.use.timeouts == 1
    with pytest.raises(DeviceError, match="main camera: broken failed in the driver: ZeroDivisionError: driver bug"):
        await proxy.broken()
    with pytest.raises(DeviceError, match="main camera: io failed: .*Input/output error"):
        await proxy.io()
    assert proxy.use.errors == 2 and not lost
    assert proxy.kind == "main_camera"  # plain attributes pass through


async def test_a_hung_dslr_ends_a_test_exposure_as_failed(cfg):
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    try:
        session.rig.sim.faults.hang.add("main_camera")
        t0 = session.clock.now()
        res = await _cmd(session, "focus.test_exposure", exposure=20, wait=False)
        assert res["started"]
        assert session.activities["focus.test"].state == "running"
        await _until(session, lambda: session.activities["focus.test"].state != "running", clock_s=120,
                     what="the test exposure to end")
        st = session.activities["focus.test"]
        assert st.state == "failed" and "no answer within 50 s" in st.reason
        assert session.clock.now() - t0 == pytest.approx(50.0, abs=1.0)
        assert any("Test exposure failed" in a.text for a in session.alerts)
        assert session.holder("main_camera") is None
        # Waiting for it: the caller gets the reason.
        with pytest.raises(ValueError, match="test exposure failed: main camera: expose got no answer within 31 s"):
            await _cmd(session, "focus.test_exposure", exposure=1)
        session.rig.sim.faults.hang.clear()
        res = await _cmd(session, "focus.test_exposure", exposure=1)
        assert session.activities["focus.test"].state == "done" and res["advice"]
    finally:
        session.rig.sim.faults.hang.clear()
        await session.stop()


# ----- nothing stops silently ---------------------------------------------------

async def test_an_engine_fault_while_guiding_fails_guiding_with_an_alert(cfg, caplog):
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    g = session.guider
    q = session.subscribe()
    try:
        await _cmd(session, "guide.start")
        await _until(session, lambda: g.state == "guiding", what="guiding")
        await session.clock.sleep(30)
        n_alerts = len(session.alerts)

        def broken(*a, **kw):
            raise FloatingPointError("injected engine fault")

        dither = asyncio.ensure_future(_cmd(session, "guide.dither"))  # waits for the settle
        for _ in range(3):
            await asyncio.sleep(0)
        assert g.state == "settling"
        g.worker.engine.on_frame = broken
        with caplog.at_level(logging.ERROR):
            await _until(session, lambda: g.state == "failed", clock_s=120, what="guiding to fail")
        await session.clock.sleep(1)
        assert dither.done()  # the dither waiting for its settle is answered, not left hanging
        res = dither.result()
        assert res["ok"] is False and "guiding stopped" in res["reason"]
        assert "FloatingPointError: injected engine fault" in g._failed
        st = session.activities["guiding"]
        assert st.state == "failed" and st.reason == "FloatingPointError: injected engine fault"
        assert st.summary["state"] == "failed"
        crit = [a for a in session.alerts[n_alerts:] if a.level == "critical" and a.source == "guiding"]
        assert crit and "injected engine fault" in crit[0].text
        assert any("guiding failed" in r.getMessage() for r in caplog.records)
        assert not g.worker.running and session.holder("guide_camera") is None
        assert "guiding" not in session.running_activities()
        events = _drain(q)
        assert any(isinstance(e, ActivityStatus) and e.name == "guiding" and e.state == "failed" for e in events)
        await session.clock.sleep(30)
        assert g.state == "failed"  # stays failed until the user starts again
        # Starting again clears it.
        del g.worker.engine.on_frame
        await _cmd(session, "guide.start")
        await _until(session, lambda: g.state == "guiding", what="guiding again")
    finally:
        await session.stop()


# ----- a child process ----------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(json.dumps({"hello": os.getpid(), "nice": os.nice(0)}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("crash"):
            print("boom: asked to crash", file=sys.stderr, flush=True)
            sys.exit(3)
        print("not json", flush=True)
        print(json.dumps({"echo": msg, "sum": sum(msg.get("add", []))}), flush=True)
""")


class _Child(SubprocessActivity):
    name = "child"
    term_grace_s = 1.0

    def __init__(self, session):
        super().__init__(session)
        self.got: list = []
        self.msg = asyncio.Event()

    async def on_message(self, msg):
        self.got.append(msg)
        self.msg.set()

    async def next(self):
        self.msg.clear()
        await asyncio.wait_for(self.msg.wait(), 10)
        return self.got[-1]


async def test_subprocess_activity_niced_json_lines_term_then_kill(cfg, tmp_path):
    import os
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    session = Session(cfg, VirtualClock(T0), activities=())
    child = session.add_activity(_Child(session))
    await child.start_child([sys.executable, str(script)])
    hello = await child.next()
    assert hello["hello"] == child.proc.pid
    assert hello["nice"] == min(19, os.nice(0) + 10)
    await child.send({"add": [1, 2, 39]})
    assert (await child.next()) == {"echo": {"add": [1, 2, 39]}, "sum": 42}  # the non-JSON line was skipped
    assert await child.stop_child() == -15  # SIGTERM was enough
    assert child.state != "failed"

    await child.start_child([sys.executable, str(script), "--ignore-term"])
    await child.next()
    rc = await child.stop_child()
    assert rc == -9  # it ignored SIGTERM: killed after the grace time

    # A child that dies while it should run fails the activity, with its last words.
    await child.start_child([sys.executable, str(script)])
    await child.next()
    await child.send({"crash": True})
    for _ in range(100):
        if child.state == "failed":
            break
        await asyncio.sleep(0.05)
    assert child.state == "failed"
    assert "exited with status 3 (boom: asked to crash)" in child.reason
    assert any(a.level == "critical" and "boom" in a.text for a in session.alerts)
    await session.stop()
