"""The stacking worker activity: a set stacked in a niced child, through the Session."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from fieldtui.clock import VirtualClock
from fieldtui.events import Command
from fieldtui.service.session import Session
from fieldtui.stacking import synth

from tests.stacking.conftest import random_mats, write_set

T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("stackset")
    cam = synth.Camera(width=320, height=240, seed=31)
    fld = synth.Field.random(cam, n=60, seed=32)
    mats = random_mats(cam, 5, seed=33)
    sets = write_set(folder, cam, fld, mats, n_cal=3, trails=[None, None, None, None, None])
    # a corrupt light: the stack goes on without it, with its reason
    (folder / "light" / "light_999.fits").write_bytes(b"SIMPLE  =  not a fits file")
    return sets


def _cmd(session, cmd_name, **args):
    return session.command(Command(cmd_name, args))


async def _wait(pred, wall_s=120.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + wall_s
    while not pred():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


def _session(cfg, statuses):
    session = Session(cfg, VirtualClock(T0), activities=("fieldtui.service.stacking:StackWorker",))
    orig = session.publish_activity

    def spy(st):
        statuses.append(st)
        orig(st)
    session.publish_activity = spy
    return session


async def test_a_set_is_stacked_in_a_niced_child_with_progress_and_result(cfg, small_set):
    statuses = []
    session = _session(cfg, statuses)
    w = session.registry["stacking"]
    nice_seen = []

    orig_send = w.send

    async def send(msg):
        nice_seen.append(os.getpriority(os.PRIO_PROCESS, w.proc.pid))
        await orig_send(msg)
    w.send = send
    try:
        jid = await _cmd(session, "stack.add", lights=[str(p) for p in small_set["light"]],
                         darks=[str(p) for p in small_set["dark"]], flats=[str(p) for p in small_set["flat"]],
                         biases=[str(p) for p in small_set["bias"]], name="m31")
        assert jid == 1
        await _wait(lambda: w.results)
    finally:
        await session.registry.stop_all()
    assert nice_seen == [min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)]
    res = w.results[-1]
    assert "error" not in res, res
    assert res["frames_used"] == 5
    assert [Path(r["file"]).name for r in res["frames_rejected"]] == ["light_999.fits"]
    assert res["frames_rejected"][0]["reason"]
    out = Path(res["output"])
    assert out == session.night_dir / "stacks" / "m31.fits" and out.is_file()
    assert Path(res["preview"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    th = res["thumb"]
    thumb = np.frombuffer(__import__("base64").b64decode(th["pixels"]), np.uint8)
    assert thumb.size == th["width"] * th["height"] and max(th["width"], th["height"]) <= 240
    assert thumb.max() > 200 > np.median(thumb)  # stars bright on a dark sky
    fwhm = [f["fwhm"] for f in res["frames"] if f["used"]]
    assert len(fwhm) == 5 and all(2.0 < f < 5.0 for f in fwhm)  # synth stars are 3 px FWHM
    from astropy.io import fits
    data = fits.getdata(out)
    assert data.dtype.kind == "f" and np.isfinite(data).mean() > 0.9
    # progress published as the activity's status: stages, i/N, and at most ~1/s while running
    running = [s for s in statuses if s.name == "stacking" and s.state == "running"]
    stages = {s.summary["current"]["stage"] for s in running if s.summary.get("current")}
    assert {"stack"} <= stages, stages
    assert statuses[-1].state == "idle" and statuses[-1].summary["results"][-1]["frames_used"] == 5
    assert any("/" in s.detail for s in running)


async def test_bad_input_is_refused_in_one_line_and_cancel_stops_the_child(cfg, small_set, tmp_path):
    statuses = []
    session = _session(cfg, statuses)
    w = session.registry["stacking"]
    try:
        with pytest.raises(ValueError, match="no such file"):
            await _cmd(session, "stack.add", lights=[str(tmp_path / "nope")])
        with pytest.raises(ValueError, match="unknown stacking option"):
            await _cmd(session, "stack.add", lights=[str(p) for p in small_set["light"]], options={"sigma": 3})
        assert w.queue == [] and w.results == []
        a = await _cmd(session, "stack.add", lights=[str(p) for p in small_set["light"]])
        await _wait(lambda: w.current is not None)
        b = await _cmd(session, "stack.add", lights=[str(p) for p in small_set["light"]],
                       options={"rejection": {"kind": "sigma", "low": 3, "high": 3}})
        assert (await _cmd(session, "stack.state"))["queue"][0]["id"] == b
        assert "dropped" in await _cmd(session, "stack.cancel", id=b)
        await _wait(lambda: w.proc is not None and w.current is not None)
        pid = w.proc.pid
        assert "cancelled" in await _cmd(session, "stack.cancel")
        await _wait(lambda: len(w.results) == 2)
        assert w.proc.returncode is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        await session.registry.stop_all()
    assert [(r["id"], r.get("error")) for r in w.results] == [(b, "cancelled before it started"), (a, "cancelled")]
    assert w.state == "idle"


async def test_a_child_crash_fails_the_activity_with_its_reason(cfg, small_set):
    statuses = []
    session = _session(cfg, statuses)
    w = session.registry["stacking"]
    try:
        await _cmd(session, "stack.add", lights=[str(p) for p in small_set["light"]])
        await _wait(lambda: w.proc is not None and w.current is not None)
        w.proc.kill()
        await _wait(lambda: w.state == "failed")
    finally:
        await session.registry.stop_all()
    assert "exited with status -9" in w.reason
    assert w.results[-1]["error"] == w.reason
