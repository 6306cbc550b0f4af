import asyncio
import os
import subprocess
import sys
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


@pytest.fixture
async def fast_service(cfg, runtime):
    """The rig service in this test's event loop on the virtual clock (as fast as the CPU allows)."""
    task = await _serve(cfg, fast=True)
    yield task
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
