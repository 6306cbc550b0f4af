"""The stacking worker activity: a set stacked in a niced child, through the Session."""

from __future__ import annotations

import asyncio
import importlib
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
        # a second set queued at once starts when the first one's child has exited
        await _cmd(session, "stack.add", lights=[str(p) for p in small_set["light"]], name="again",
                   out=str(session.night_dir / "stacks" / "again.fits"))
        await _wait(lambda: len(w.results) == 2, wall_s=400)
        assert w.results[-1]["frames_used"] == 5, w.results[-1]
    finally:
        await session.registry.stop_all()
    assert nice_seen == [min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)] * 2
    res = w.results[0]
    assert "error" not in res, res
    assert res["frames_used"] == 5
    assert [Path(r["file"]).name for r in res["frames_rejected"]] == ["light_999.fits"]
    assert res["frames_rejected"][0]["reason"]
    out = Path(res["output"])
    assert out == session.night_dir / "stacks" / "m31.fits" and out.is_file()
    assert Path(res["preview"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "thumb" not in res   # only the newest set keeps its thumbnail
    th = w.results[-1]["thumb"]
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
        await _wait(lambda: len(w.results) == 2, wall_s=400)
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


CAPTURE_PLAN = """
[plan]
name = "auto stack"
[[target]]
name = "M31"
ra_deg = 10.6847
dec_deg = 41.2690
[[target.sequence]]
type = "bias"
count = 3
iso = 800
[[target.sequence]]
type = "dark"
count = 3
exposure = 30
iso = 800
[[target.sequence]]
type = "flat"
count = 3
iso = 800
[[target.sequence]]
type = "light"
count = 4
exposure = 30
iso = 800
"""


async def test_a_finished_capture_set_is_stacked_by_itself_with_the_librarys_calibration(tmp_path):
    """A capture run on the simulated rig: its CaptureSetFinished queues the lights (with the
    calibration the library gives them), its CaptureFrames feed the live stack, and a
    stacked FITS comes out without any command to the worker."""
    from astropy.io import fits

    from fieldtui.config import load_config
    from fieldtui.library import Library, default_db
    root = tmp_path / "astro"
    cfg = load_config(overrides={"storage": {"data_root": str(root), "min_free_gb": 0.0},
                                 "main_camera": {"width": 640, "height": 480},
                                 "telescope": {"focal_length_mm": 600}, "sim": {"seed": 7, "gusts_per_hour": 0.0}})
    (tmp_path / "plan.toml").write_text(CAPTURE_PLAN)
    statuses = []
    session = Session(cfg, VirtualClock(T0), activities=("fieldtui.service.guiding:Guider",
                                                         "fieldtui.service.capture:Capture",
                                                         "fieldtui.service.stacking:StackWorker"))
    orig = session.publish_activity
    session.publish_activity = lambda st: (statuses.append(st), orig(st))
    await session.start()
    w = session.registry["stacking"]
    try:
        res = await session.capture.run_plan(str(tmp_path / "plan.toml"))
        assert res["state"] == "done", res
        await _wait(lambda: w.results and not w.queue and w.current is None, wall_s=240)
        await _wait(lambda: w.live is not None and not w.live["running"], wall_s=120)
    finally:
        await session.stop()
    r = w.results[-1]
    assert "error" not in r, r
    night = Path(res["files"][-1]).relative_to(root).parts[0]
    assert r["output"] == str(root / night / "stacks" / "M31_30s_4.fits")  # the plan's 4th sequence
    assert r["frames_used"] == 4
    assert sorted(r["masters"]) == ["bias", "dark", "flat"]
    # the first night: masters combined from the night's calibration sets (taken before the
    # lights) by the live stack at its first light or by the final stack, whichever came first,
    # and kept in the library once
    h = fits.getheader(r["output"])
    assert h["STACKCNT"] == 4 and h["CALSTAT"] == "BDF"
    lib = Library(default_db(root))
    try:
        kept = lib.frames("master = 1")
        assert sorted(m["type"] for m in kept) == ["bias", "dark", "flat"]
        assert {m["path"] for m in kept} == {m["path"] for m in r["masters"].values()}
        assert len(lib.frames("type = 'light' AND master = 0")) == 4   # the child indexed the night
    finally:
        lib.close()
    # the live stack took the four lights as they were saved, calibrated by the library's
    # masters (made from the calibration sets taken before them), with a preview
    live = w.live
    assert live["frames"] == 4 and live["last"]["accepted"], live
    assert sorted(live["masters"]) == ["bias", "dark", "flat"]
    th = live["thumb"]
    assert th["width"] * th["height"] > 0
    seen = [s.summary["live"]["frames"] for s in statuses if s.name == "stacking" and s.summary.get("live")]
    assert seen and seen[-1] == 4 and sorted(seen) == seen


async def test_fieldtui_stack_queue_sends_the_set_to_the_running_service(cfg, small_set, tmp_path, capsys):
    """``fieldtui stack --queue``: the set goes to the service's worker (through its socket in
    this test's private runtime folder) and is stacked there, with the options given."""
    from fieldtui.commands import stack as stack_cmd
    from fieldtui.service import protocol
    from fieldtui.service.daemon import Server
    argv = ["--lights", *map(str, small_set["light"]), "--darks", *map(str, small_set["dark"]),
            "--biases", *map(str, small_set["bias"]), "--flats", *map(str, small_set["flat"]),
            "--rejection", "sigma", "--sigma-high", "2.5", "--out", str(tmp_path / "queued.fits"), "--queue"]
    # no service yet: one line, exit status 1, nothing stacked
    assert await asyncio.to_thread(stack_cmd.main, argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no rig service is running" in err
    session = _session(cfg, [])
    server = Server(session)
    sock = await asyncio.start_unix_server(server.handle, path=str(protocol.socket_path()), limit=protocol.MAX_LINE)
    w = session.registry["stacking"]
    try:
        assert await asyncio.to_thread(stack_cmd.main, argv) == 0
        assert "set 1 queued" in capsys.readouterr().out
        await _wait(lambda: w.results)
    finally:
        sock.close()
        await session.registry.stop_all()
    res = w.results[-1]
    assert "error" not in res, res
    assert res["output"] == str(tmp_path / "queued.fits") and Path(res["output"]).is_file()
    assert res["frames_used"] == 5
    from astropy.io import fits
    h = fits.getheader(res["output"])
    assert (h["REJECT"], h["REJHIGH"], h["REJLOW"]) == ("sigma", 2.5, 3.0)
    assert h["CALSTAT"] == "BDF"


def test_the_child_leaves_a_core_to_the_guider(cfg):
    import types

    from fieldtui.service.stack_worker import limit_threads
    comb = importlib.import_module("fieldtui.stacking.combine")  # the module (the package exports the function)
    session = Session(cfg, VirtualClock(T0), activities=("fieldtui.service.stacking:StackWorker",))
    w = session.registry["stacking"]
    cores = os.cpu_count()
    session.guider = types.SimpleNamespace(state="idle")
    assert w.threads() == cores
    for state in ("calibrating", "guiding", "settling"):
        session.guider.state = state
        assert w.threads() == max(1, cores - 1)
    before = comb.threads()
    try:
        limit_threads(1)
        assert comb.threads() == 1
        import cv2
        assert cv2.getNumThreads() == 1
    finally:
        limit_threads(before)


async def test_a_calibration_set_finished_later_that_night_queues_the_nights_light_sets_again(cfg, tmp_path):
    from fieldtui.events import CaptureSetFinished
    session = Session(cfg, VirtualClock(T0), activities=("fieldtui.service.stacking:StackWorker",))
    w = session.registry["stacking"]
    calls = []

    async def add(**kw):
        calls.append(kw)
        return len(calls)
    w.cmd_add = add
    ev = dict(plan="p", target="M31", exposure=30.0, root=str(tmp_path))
    await w._set_finished(CaptureSetFinished(type="light", sequence=0, night="2027-01-15", files=["/a.fits"], **ev))
    assert [(c["lights"], c["calibration"], c["name"]) for c in calls] == [(["/a.fits"], "library", "M31_30s_1")]
    assert calls[0]["out"] == str(tmp_path / "2027-01-15" / "stacks" / "M31_30s_1.fits")
    await w._set_finished(CaptureSetFinished(type="flat", sequence=1, night="2027-01-16", files=["/f"], **ev))
    assert len(calls) == 1                      # another night's flats: nothing
    await w._set_finished(CaptureSetFinished(type="flat", sequence=1, night="2027-01-15", files=["/f"], **ev))
    assert len(calls) == 2 and calls[1]["lights"] == ["/a.fits"]   # dawn flats: stacked again
    w.queue.append({"id": 9, "auto": ("2027-01-15", "M31", 0)})    # still waiting: not queued twice
    await w._set_finished(CaptureSetFinished(type="dark", sequence=2, night="2027-01-15", files=["/d"], **ev))
    assert len(calls) == 2
