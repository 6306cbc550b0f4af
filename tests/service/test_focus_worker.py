"""The focus worker on the simulated rig, on the virtual clock."""

import asyncio

import numpy as np
import pytest

from fieldtui.clock import VirtualClock
from fieldtui.events import Command, FramePreview
from fieldtui.events import FocusFrame, FocusTest
from fieldtui.service.focus import fit_v_curve
from fieldtui.service.session import Session

T0 = 1_800_000_000.0


async def _session(cfg):
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    return session


async def _next(q, kind, n=1):
    got = []
    while len(got) < n:
        ev = await asyncio.wait_for(q.get(), 30)
        if isinstance(ev, kind):
            got.append(ev)
    return got


def test_v_curve_fit_recovers_a_known_hyperbola():
    rng = np.random.default_rng(1)
    p = np.repeat(np.arange(4700, 5600, 50), 2).astype(float)
    a, b, c = 5.6, 0.045, 5130.0
    v = np.sqrt(a * a + (b * (p - c)) ** 2) * rng.normal(1, 0.03, p.size)
    fit = fit_v_curve(p, v)
    assert fit is not None and not fit["extrapolated"]
    assert abs(fit["c"] - c) < 15
    assert fit["a"] == pytest.approx(a, rel=0.1)
    assert fit_v_curve(p[:8], v[:8]) is None  # four positions: too few


async def test_focus_worker_follows_a_star_and_measures_it(cfg):
    session = await _session(cfg)
    q = session.subscribe()
    try:
        await session.command(Command("focus.start", {"camera": "main_camera"}))
        frames = await _next(q, FocusFrame, 4)
        cam = session.rig.sim.main_camera
        truth = cam.rig.sky.star_fwhm_arcsec(cam.rig.sky.main, cfg.sim.seeing_fwhm_arcsec) / cfg.main_scale
        fw = [f.star["fwhm"] for f in frames if f.star]
        assert len(fw) == 4
        assert np.median(fw) == pytest.approx(truth, rel=0.12)
        st = frames[-1].star
        assert not st["saturated"] and st["hfr"] < st["fwhm"]
        assert len(st["profile"]) == 10 and st["profile"][0] > st["profile"][-1]
        # the same star is followed frame after frame
        assert abs(frames[-1].star["x"] - frames[1].star["x"]) < 10
        assert frames[-1].focuser == session.rig.sim.sky.focus_position
        assert frames[-1].point is not None and frames[-1].best is not None
        # previews stay small, events at most 2 per second of clock time
        prev = session.last_preview["main_camera"]
        assert isinstance(prev, FramePreview) and prev.width <= 160 and prev.height <= 120
        ts = [f.t for f in frames]
        assert min(np.diff(ts)) >= 0.5 - 1e-6
        nxt = await session.command(Command("focus.select", {"star": "next"}))
        assert nxt == "manual"
        f2 = (await _next(q, FocusFrame))[0]
        assert f2.star["rank"] == 2
        await session.command(Command("focus.stop"))
    finally:
        await session.stop()


async def test_guide_camera_focus_matches_truth(cfg):
    session = await _session(cfg)
    q = session.subscribe()
    try:
        await session.command(Command("focus.start", {"camera": "guide_camera", "exposure": 1.0}))
        frames = await _next(q, FocusFrame, 3)
        truth = session.rig.sim.guide_camera.last_truth["fwhm_px"]
        assert frames[-1].star["fwhm"] == pytest.approx(truth, rel=0.15)
    finally:
        await session.stop()


async def test_focuser_sweep_gives_a_v_curve_through_best_focus(cfg):
    session = await _session(cfg)
    q = session.subscribe()
    best = cfg.sim.best_focus
    try:
        await session.command(Command("focuser.move", {"to": best - 300}))
        await session.command(Command("focus.start", {"camera": "main_camera"}))
        for _ in range(13):
            await _next(q, FocusFrame, 2)
            await session.command(Command("focuser.move", {"steps": 50}))
        await _next(q, FocusFrame, 2)
        fit = session.focus.fit
        assert fit is not None and fit["positions"] >= 5
        assert abs(fit["best"] - best) <= 25
    finally:
        await session.stop()


async def test_focus_loop_survives_a_camera_disconnect(cfg):
    cfg.service.retry_interval_s = 3.0
    session = await _session(cfg)
    q = session.subscribe()
    try:
        await session.command(Command("focus.start", {"camera": "guide_camera", "exposure": 1.0}))
        await _next(q, FocusFrame)
        session.rig.sim.faults.disconnected.add("guide_camera")
        await session.clock.sleep(5.0)
        assert session.slots["guide_camera"].status.state != "connected"
        session.rig.sim.faults.disconnected.discard("guide_camera")
        ev = (await _next(q, FocusFrame))[0]
        assert ev.star is not None
    finally:
        await session.stop()


async def test_focuser_move_without_a_focuser_says_so(cfg):
    cfg.focuser.driver = "none"
    session = await _session(cfg)
    try:
        with pytest.raises(ValueError, match="no focuser is configured"):
            await session.command(Command("focuser.move", {"steps": 10}))
    finally:
        await session.stop()


async def test_test_exposure_gives_histograms_and_advice(cfg):
    session = await _session(cfg)
    q = session.subscribe()
    try:
        res = await session.command(Command("focus.test_exposure", {"exposure": 60}))
        ev = (await _next(q, FocusTest))[0]
        assert set(ev.hist) == {"R", "G1", "G2", "B"}
        assert all(len(h) == 64 for h in ev.hist.values())
        assert ev.lo < ev.black < ev.hi
        assert ev.advice and any("exposure" in a for a in ev.advice)
        assert 0.0 <= res["metrics"]["clipped_black_pct"] <= 100.0
    finally:
        await session.stop()
