import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private runtime folder (socket, lock) and state folder for this test."""
    rt = tmp_path / "rt"
    monkeypatch.setenv("FIELDTUI_RUNTIME_DIR", str(rt))
    monkeypatch.setenv("FIELDTUI_STATE_DIR", str(tmp_path / "state"))
    return rt


async def _serve(cfg, fast):
    from fieldtui.service.daemon import serve
    ready = asyncio.Event()
    task = asyncio.ensure_future(serve(cfg, fast=fast, ready=ready))
    await asyncio.wait_for(ready.wait(), 20)
    return task


async def _stop(task):
    task.cancel()
    try:
        await task
    except BaseException:
        pass


@pytest.fixture
async def service(cfg, runtime):
    """The rig service running in this test's event loop (real clock)."""
    task = await _serve(cfg, fast=False)
    yield task
    await _stop(task)


class ClockGate:
    """Holds the fast service's virtual clock still while a UI test presses keys and reads
    the screen, and lets it run only while the test waits for work it asked for.

    On the virtual clock time jumps to the next wake-up whenever every task waits on it,
    and a service with nothing to do always has one (its heartbeat, every 5 s): while the
    UI waits in real time (``pilot.pause``, a dialog, a poll) simulated time races ahead by
    thousands of seconds a second, as many as the CPU allows, so how much of the night
    passes between two key presses depends on the machine's load. Holding uses the
    clock's own rule: time stands still while blocking work is in flight
    (:meth:`~fieldtui.clock.Clock.run_blocking`); here that work is a thread waiting for
    :meth:`release`."""

    def __init__(self) -> None:
        self.clock = None  # the service's clock (set when the service makes it)
        self._open: threading.Event | None = None
        self._held: asyncio.Future | None = None

    async def hold(self) -> None:
        """Stop simulated time (from this loop step on) until :meth:`release`."""
        if self._held is not None:
            return
        self._open = threading.Event()
        self._held = asyncio.ensure_future(self.clock.run_blocking(self._open.wait))
        await asyncio.sleep(0)  # its first step counts it as in flight
        assert self.clock.in_flight > 0

    async def release(self) -> None:
        """Let simulated time run again."""
        if self._held is None:
            return
        self._open.set()
        await self._held
        self._held = None

    async def wait_until(self, pred, timeout=60.0, step_s=1.0) -> bool:
        """Let simulated time run until ``pred()`` holds (or ``timeout`` wall seconds pass),
        then hold it again; returns ``pred()``. ``pred`` is looked at every ``step_s``
        simulated seconds, so the clock stops a step or so after what the test waits for
        has happened (polling in wall time instead lets an idle service race on for
        minutes of simulated time before the test sees it)."""
        await self.release()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            while not pred() and loop.time() < end:
                await self.clock.sleep(step_s)
            return pred()
        finally:
            await self.hold()

    async def run_for(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass, then hold it again."""
        await self.release()
        try:
            await self.clock.sleep(seconds)
        finally:
            await self.hold()


@pytest.fixture
def clock_gate(monkeypatch):
    """A :class:`ClockGate` on the clock the fast service makes (time runs until held)."""
    from fieldtui.service import daemon
    gate = ClockGate()
    make = daemon.make_clock

    def made(fast, start=None):
        gate.clock = make(fast, start)
        return gate.clock

    monkeypatch.setattr(daemon, "make_clock", made)
    yield gate
    if gate._open is not None:
        gate._open.set()  # never leave a thread waiting (the loop's executor waits for it)


@pytest.fixture
async def fast_service(cfg, runtime, clock_gate):
    """The rig service in this test's event loop on the virtual clock (as fast as the CPU allows)."""
    task = await _serve(cfg, fast=True)
    yield task
    await clock_gate.release()
    await _stop(task)


async def wait_until(pilot, pred, timeout=30.0, step=0.1):
    """Let the app run until ``pred()`` holds (or the timeout passes); returns ``pred()``."""
    for _ in range(int(timeout / step)):
        if pred():
            return True
        await pilot.pause(step)
    return pred()


async def open_guiding(pilot, app) -> None:
    """Wait for the guide camera and guide port to connect, then switch to the Guiding
    screen with ``g``."""
    assert await wait_until(pilot, lambda: all(
        app.rig.devices.get(d, {}).get("state") == "connected" for d in ("guide_camera", "guide_port")))
    await pilot.press("g")
    assert app.current_mode == "guiding"


def wait_for(pred, timeout=15.0, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def service_process(config_file, runtime):
    """The rig service as its own detached process, as `fieldtui service start` runs it."""
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "fieldtui", "service", "start", "--config", str(config_file)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    yield env
    subprocess.run([sys.executable, "-m", "fieldtui", "service", "stop"], env=env, capture_output=True, timeout=60)
