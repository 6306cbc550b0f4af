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


@pytest.fixture
async def service(cfg, runtime):
    """The rig service running in this test's event loop (real clock)."""
    from fieldtui.service.daemon import serve
    ready = asyncio.Event()
    task = asyncio.ensure_future(serve(cfg, fast=False, ready=ready))
    await asyncio.wait_for(ready.wait(), 20)
    yield task
    task.cancel()
    try:
        await task
    except BaseException:
        pass


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
