"""The guide worker's loop: a bad frame is skipped, a wall-clock step changes
nothing, refits never hold up a pulse, the virtual clock waits for threads."""

import asyncio
import logging
import threading
import time

import numpy as np
import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.devices.sim import SimRig
from fieldtui.guiding.events import Alert, FrameDropped, GuideState, GuideStep, SettleDone
from fieldtui.guiding.settings import GuideSettings
from fieldtui.service.guide_worker import MAX_BAD_IN_ROW, GuideWorker

T0 = 1_800_000_000.0


class SteppedClock(VirtualClock):
    """A virtual clock whose wall time can be stepped (as NTP does) while its
    monotonic time runs on undisturbed."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.step = 0.0

    def now(self) -> float:
        return self._now + self.step


class BadFrames:
    """The guide camera, with ``bad`` frames to come that carry a 1-D array."""

    def __init__(self, camera) -> None:
        self._camera = camera
        self.bad = 0

    def __getattr__(self, name):
        return getattr(self._camera, name)

    async def expose(self, *a, **kw):
        frame = await self._camera.expose(*a, **kw)
        if self.bad > 0:
            self.bad -= 1
            frame.data = frame.data.ravel()
        return frame


async def _guiding(clock, events, camera_wrap=None):
    cfg = load_config(user=False, overrides={"guide_camera": {"width": 320, "height": 240}})
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    cam = camera_wrap(rig.guide_camera) if camera_wrap else rig.guide_camera
    w = GuideWorker(cam, rig.guide_port, clock, GuideSettings.from_config(cfg), mount=rig.mount,
                    pixel_scale=cfg.guide_scale, on_event=events.append)
    await w.calibrate(then_guide=True)
    while w.state != GuideState.GUIDING:
        await clock.sleep(1.0)
    return rig, w


async def test_a_bad_frame_is_logged_counted_and_skipped(caplog):
    clock = VirtualClock(T0)
    events = []
    rig, w = await _guiding(clock, events, BadFrames)
    await clock.sleep(30)
    n_steps = sum(isinstance(e, GuideStep) for e in events)
    with caplog.at_level(logging.ERROR, logger="fieldtui.service.guide_worker"):
        w.camera.bad = 1
        await clock.sleep(30)
    assert w.running and w.state == GuideState.GUIDING
    assert w.bad_frames == 1
    assert sum(isinstance(e, GuideStep) for e in events) >= n_steps + 25  # the frames after it
    assert any(isinstance(e, FrameDropped) and "bad frame" in e.reason for e in events)
    assert [a for a in events if isinstance(a, Alert) and a.code == "bad-frame"]
    assert any("could not be measured" in r.getMessage() for r in caplog.records)
    # Frames that stay bad end the loop with the error (the Session reports it).
    w.camera.bad = 1000
    await clock.sleep(30)
    assert not w.running
    assert w.bad_frames == 1 + MAX_BAD_IN_ROW
    assert isinstance(w._task.exception(), IndexError)
    assert w.last_frame.data.ndim == 2  # previews (the star cut-out) never get a bad frame
    await w.stop()
    clock.close()


async def test_a_wall_clock_step_does_not_break_settling():
    clock = SteppedClock(T0)
    events = []
    rig, w = await _guiding(clock, events)
    await clock.sleep(60)
    clock.step = -3600.0  # NTP sets the wall clock back an hour mid-guiding
    res = await w.dither_and_settle()
    assert res is not None and res.ok, res
    assert res.settle_time_s < w.settings.settle_timeout_s
    await clock.sleep(60)
    assert w.state == GuideState.GUIDING
    steps = [e for e in events if isinstance(e, GuideStep)]
    # Event times follow the wall clock (for the log and the clients)…
    assert abs(steps[-1].t - clock.now()) < 2.0
    # …while the engine ran on undisturbed time: the frame counter never jumped.
    assert w.engine.guide_frame == steps[-1].frame
    assert w.engine.last_t == pytest.approx(clock.monotonic(), abs=2.0)
    await w.stop()
    clock.close()


async def test_a_refit_in_a_thread_never_delays_a_pulse(monkeypatch):
    """The refit runs in a thread: frames keep their wall-time latency while it
    computes, and the virtual clock holds until it is done."""
    from fieldtui.guiding import predictive

    real = predictive.fit_periodic
    calls = []

    def slow_fit(*a, **kw):
        calls.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.3)  # a refit that takes long
        return real(*a, **kw)

    monkeypatch.setattr(predictive, "fit_periodic", slow_fit)
    clock = VirtualClock(T0)
    events = []
    rig, w = await _guiding(clock, events)
    lat_before = len(w.latencies_ms)
    await clock.sleep(120)  # several refits are due (every 30 s)
    assert calls and not any(calls)  # every refit ran off the loop thread
    lat = list(w.latencies_ms)[lat_before:]
    assert max(lat) < 300.0  # no frame waited for a 300 ms refit
    await w.stop()
    clock.close()


async def test_virtual_clock_holds_while_work_runs_in_a_thread():
    clock = VirtualClock(T0)
    seen = []

    async def ticker():
        while True:
            await clock.sleep(1.0)
            seen.append(clock.now())

    task = asyncio.ensure_future(ticker())
    await clock.sleep(0.5)
    t_before = clock.now()
    r = await clock.run_blocking(lambda: (time.sleep(0.2), np.arange(3).sum())[1])
    # 0.2 s of wall time in a thread cost no virtual time and no tick went by.
    assert r == 3 and clock.now() == t_before and seen == []
    await clock.sleep(2.0)
    assert seen == [T0 + 1.0, T0 + 2.0]
    task.cancel()
    clock.close()
