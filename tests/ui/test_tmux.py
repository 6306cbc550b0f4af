"""End to end in a real terminal (tmux): the night survives the client, and the
colour codes the terminal receives are reds only."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from fieldtui.service import protocol
from fieldtui.service.client import RigClient

from .conftest import wait_for
from .nightcheck import bad_sgr, default_coloured_text, sgr_colours

if shutil.which("tmux") is None and os.environ.get("CI"):
    # CI installs tmux (.ci/run): a missing one there is a broken run, not a skip.
    raise RuntimeError("tmux is not installed, and CI must run the end-to-end terminal tests")
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, env):
        self.sock = f"fieldtui-test-{os.getpid()}-{time.monotonic_ns()}"
        self.env = env

    def __call__(self, *args, check=True):
        r = subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {args}: {r.stderr}")
        return r.stdout

    def start_client(self, name, extra_env=None):
        env = " ".join(f"{k}={v}" for k, v in (extra_env or {}).items())
        cmd = f"env {env} {sys.executable} -m fieldtui"
        self("new-session", "-d", "-s", name, "-x", "80", "-y", "24", cmd)
        assert wait_for(lambda: "connected" in self.screen(name), timeout=30), self.screen(name)
        return int(self("list-panes", "-t", name, "-F", "#{pane_pid}").strip())

    def screen(self, name, colours=False):
        args = ["capture-pane", "-p", "-t", name] + (["-e"] if colours else [])
        return self(*args, check=False)

    def kill_server(self):
        self("kill-server", check=False)


@pytest.fixture
def tmux(service_process):
    env = {k: v for k, v in service_process.items() if k != "COLORTERM"}
    env["TERM"] = "xterm-256color"
    t = Tmux(env)
    yield t
    t.kill_server()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


async def _rig_state():
    c = RigClient(protocol.socket_path())
    await c.connect()
    snap = c.snapshot
    await c.close()
    return snap


def rig_state():
    return asyncio.run(_rig_state())


def loop_frames():
    return rig_state()["activities"].get("loop:guide_camera", {}).get("progress", 0)


def test_client_killed_while_the_service_runs_an_activity(tmux):
    pid = tmux.start_client("one")
    # An activity runs in the service (a guide camera loop); tick a checklist item from this client.
    asyncio.run(_start_loop())
    assert wait_for(lambda: loop_frames() >= 2, timeout=20)
    assert wait_for(lambda: "guide loop" in tmux.screen("one"))
    tmux("send-keys", "-t", "one", "3")
    assert wait_for(lambda: "3 [x] Camera set to RAW" in tmux.screen("one"))

    # The link drops: the terminal goes away and the client gets SIGHUP.
    tmux("kill-session", "-t", "one")
    assert wait_for(lambda: not alive(pid), timeout=10), "client kept running after SIGHUP"
    n = loop_frames()
    assert wait_for(lambda: loop_frames() > n + 1, timeout=20), "the activity stopped with the client"

    # A second client, killed outright.
    pid2 = tmux.start_client("two")
    os.kill(pid2, signal.SIGKILL)
    assert wait_for(lambda: not alive(pid2), timeout=10)
    n = loop_frames()
    assert wait_for(lambda: loop_frames() > n + 1, timeout=20)

    # A new client attaches and sees the same state.
    tmux.start_client("three")
    assert wait_for(lambda: "3 [x] Camera set to RAW" in tmux.screen("three"))
    assert wait_for(lambda: "guide loop" in tmux.screen("three"), timeout=10), tmux.screen("three")
    snap = rig_state()
    assert snap["checklist"]["raw"] is True
    assert snap["activities"]["loop:guide_camera"]["state"] == "running"


@pytest.mark.parametrize("colorterm", ["", "truecolor"])
def test_terminal_receives_only_reds(tmux, colorterm):
    extra = {"COLORTERM": colorterm} if colorterm else {}
    tmux.start_client("c", extra)
    asyncio.run(_start_loop())
    seen = 0
    for key, title in (("e", "EQUIPMENT"), ("f", "FOCUS"), ("g", "GUIDING"), ("c", "CAPTURE"),
                       ("k", "CALIBRATION"), ("s", "STACKING")):
        tmux("send-keys", "-t", "c", key)
        assert wait_for(lambda: title in tmux.screen("c")), tmux.screen("c")
        time.sleep(1.5 if key == "f" else 0.3)
        text = tmux.screen("c", colours=True)
        seen += len(sgr_colours(text))
        assert not bad_sgr(text), (title, bad_sgr(text))
        assert not default_coloured_text(text), (title, default_coloured_text(text)[:5])
    assert seen > 20  # the check did see colours


async def _start_loop():
    c = RigClient(protocol.socket_path())
    await c.connect()
    await c.command("loop.start", camera="guide_camera", exposure=0.5)
    await c.close()
