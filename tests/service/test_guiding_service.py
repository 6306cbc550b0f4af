"""Guiding through the Session on the simulated rig, on the virtual clock (closed loop)."""

import asyncio
import math
from dataclasses import replace

from fieldtui.clock import VirtualClock
from fieldtui.events import Alert, Command
from fieldtui.events import GuidePoint, GuideStar, GuideStatus
from fieldtui.service.session import Session

T0 = 1_800_000_000.0


async def _session(cfg, **settings):
    session = Session(cfg, VirtualClock(T0))
    if settings:
        session.guider.settings = replace(session.guider.settings, **settings)
    await session.start()
    return session


async def _until(session, pred, clock_s=900.0, step=1.0):
    end = session.clock.now() + clock_s
    while not pred():
        assert session.clock.now() < end, f"timed out; guider {session.guider.state}: {session.guider.detail}"
        await session.clock.sleep(step)


def _cmd(session, name, **args):
    return session.command(Command(name, args))


async def test_calibrate_guide_dither_and_clouds_with_no_client(cfg):
    # Nobody subscribes: guiding runs with no client attached.
    session = await _session(cfg)
    g = session.guider
    try:
        assert session.snapshot()["guiding"] is None
        assert await _cmd(session, "guide.loop") == "looping"
        await _cmd(session, "guide.select")
        await _cmd(session, "guide.calibrate")
        await _until(session, lambda: g.state == "calibrating", clock_s=30, step=0.5)
        await _until(session, lambda: g.state == "looping" and g.summary()["calibration"] is not None)
        cal = g.summary()["calibration"]
        assert cal["ra_rate_px_s"] > 0.5 and not cal["warnings"]
        assert (session.night_dir / "guide_calibration.json").exists()
        await _cmd(session, "guide.start")
        await _until(session, lambda: g.state == "guiding", clock_s=30)
        await session.clock.sleep(300)
        snap = session.snapshot()["guiding"]
        assert snap["state"] == "guiding"
        assert snap["rms_total_arcsec"] < 1.5, snap
        assert snap["rms_total_px"] == snap["rms_total_px"] and snap["window_frames"] > 60
        assert session.activities["guiding"].state == "guiding"
        assert "RMS" in session.activities["guiding"].detail

        # The capture schedule's dither: returns once settled.
        t0 = session.clock.now()
        res = await session.commands["guide.dither"]()
        assert res["ok"], res
        assert 0 < res["settle_time_s"] <= session.guider.settings.settle_timeout_s
        assert session.clock.now() - t0 >= res["settle_time_s"] - 1.5
        assert g.state == "guiding"

        # A cloud: an alert, then guiding resumes on its own.
        n_alerts = len(session.alerts)
        session.rig.sim.clouds(20)
        await _until(session, lambda: g.state == "star lost", clock_s=30, step=0.5)
        await _until(session, lambda: g.state == "guiding", clock_s=120)
        texts = [a.text for a in session.alerts[n_alerts:]]
        assert any("lost" in t for t in texts) and any("back" in t for t in texts), texts
        await session.clock.sleep(120)
        assert session.snapshot()["guiding"]["rms_total_arcsec"] < 1.5

        # The guide camera unplugged and back: alerts, then guiding resumes.
        n_alerts = len(session.alerts)
        session.rig.sim.faults.disconnect_guide = True
        await _until(session, lambda: any("disconnected" in a.text for a in session.alerts[n_alerts:]),
                     clock_s=30, step=0.5)
        assert any(a.level == "error" for a in session.alerts[n_alerts:])
        await session.clock.sleep(10)
        # The Equipment screen shows it down: the Session knows, and reconnects it.
        assert session.slots["guide_camera"].status.state in ("disconnected", "failed", "connecting")
        session.rig.sim.faults.disconnect_guide = False
        await _until(session, lambda: session.slots["guide_camera"].status.state == "connected", clock_s=60)
        await _until(session, lambda: any("back" in a.text for a in session.alerts[n_alerts:]), clock_s=60)
        await _until(session, lambda: g.state == "guiding", clock_s=120)

        # A dither while not guiding is refused with a reason, not an exception.
        await _cmd(session, "guide.stop", keep_looping=True)
        assert g.state == "looping"
        res = await _cmd(session, "guide.dither")
        assert not res["ok"] and "not guiding" in res["reason"]

        # Guiding again reuses the stored calibration: no calibration steps.
        await _cmd(session, "guide.start")
        await _until(session, lambda: g.state == "guiding", clock_s=20)
        await _cmd(session, "guide.stop")
        assert g.state == "stopped"
        logs = list(session.night_dir.glob("PHD2_GuideLog_*.txt"))
        assert logs and "Guiding Begins" in logs[0].read_text()
        await _cmd(session, "guide.clear_calibration")
        assert not (session.night_dir / "guide_calibration.json").exists()
    finally:
        await session.stop()


async def test_guided_rms_is_well_below_the_unguided_drift_and_events_are_small(cfg):
    # No drift-away watchdog here: the unguided half lets the star wander on purpose.
    session = await _session(cfg, drift_time_s=math.inf, stats_window_s=300.0)
    g = session.guider
    q = session.subscribe()
    got: dict[str, list] = {}

    async def drain():
        while True:
            ev = await q.get()
            got.setdefault(ev.kind, []).append(ev)

    drainer = asyncio.ensure_future(drain())
    try:
        await _cmd(session, "guide.start")  # selects, calibrates, then guides
        await _until(session, lambda: g.state == "guiding")
        await session.clock.sleep(300)
        guided = g.summary()["rms_total_arcsec"]
        g.worker.corrections = False
        await session.clock.sleep(300)
        unguided = g.summary()["rms_total_arcsec"]
        assert guided < 1.5 and unguided > 3 * guided, (guided, unguided)
        await asyncio.sleep(0)
        points = got["GuidePoint"]
        assert len(points) > 300
        p = points[-1]
        assert isinstance(p, GuidePoint) and len(p.rms) == 3 and p.snr > 10
        assert len(str(p.to_dict())) < 400
        assert any(pt.ra_ms != 0 for pt in points[:200])  # corrections were sent while guiding
        stars = got["GuideStar"]
        assert isinstance(stars[-1], GuideStar) and stars[-1].star is not None
        assert len(stars) <= session.clock.now() - T0 + 1  # at most one a second
        assert any(isinstance(s, GuideStatus) and s.state == "calibrating" for s in got["GuideStatus"])
        assert not [a for a in got.get("Alert", []) if isinstance(a, Alert) and a.level == "error"]
        print(f"guided RMS {guided:.2f}\", unguided {unguided:.2f}\" (5 min each)")
        hist = (await _cmd(session, "guide.state", minutes=2))["history"]
        assert 60 < len(hist) <= 130 and len(hist[-1]) == 5
    finally:
        drainer.cancel()
        await session.stop()


async def test_stop_while_settling_sticks_and_the_dither_is_answered(cfg):
    """Stopping guiding during a dither's settle goes back to looping and stays there; the
    dither that waited for its settle is answered, not left hanging."""
    session = await _session(cfg)
    g = session.guider
    try:
        await _cmd(session, "guide.start")
        await _until(session, lambda: g.state == "guiding", clock_s=600)
        await session.clock.sleep(30)
        dither = asyncio.ensure_future(_cmd(session, "guide.dither"))
        await _until(session, lambda: g.state == "settling", clock_s=30, step=0.2)
        await _cmd(session, "guide.stop", keep_looping=True)
        assert g.state == "looping", g.state
        await session.clock.sleep(60)
        assert g.state == "looping", (g.state, g.detail)
        res = await dither
        assert res["ok"] is False, res
    finally:
        await session.stop()


async def test_guide_darks_and_assistant_commands(cfg, tmp_path, monkeypatch):
    """D and A on the Guiding screen: the dark library is built on the capped
    simulated scope and used by the next loop; the assistant reports its findings."""
    from dataclasses import replace as dc_replace
    monkeypatch.setenv("FIELDTUI_STATE_DIR", str(tmp_path / "state"))
    cfg = dc_replace(cfg, guide_camera=dc_replace(cfg.guide_camera, width=480, height=360))
    session = await _session(cfg, min_stars=1)
    g = session.guider
    try:
        res = await _cmd(session, "guide.darks", exposures=[1.0], frames=3)
        assert res["darks"][0]["hot_pixels"] > 0
        assert (tmp_path / "state" / "guide_darks" / "guide_dark_1000ms_g50.npz").exists()
        assert session.rig.sim.guide_covered is False  # uncapped again
        await _cmd(session, "guide.assistant", minutes=2.0)
        # While it watches the star unguided the guider says so, with the time left (the
        # 2 min watch, then about 18 backlash pulses of 3 s), and shows no guiding RMS.
        await _until(session, lambda: g.state == "assistant", clock_s=600)
        await session.clock.sleep(30)
        snap = session.snapshot()["guiding"]
        assert snap["state"] == "assistant" and session.activities["guiding"].state == "assistant"
        assert snap["detail"].startswith("guiding assistant: measuring, the star unguided for 2 min")
        p = snap["progress"]
        assert p["what"] == "assistant" and p["phase"] == "watching"
        assert abs(p["left_s"] - (120 - (p["at"] - p["since"]) + 18 * 3.0)) < 0.2
        assert 90 - 5 <= 120 - (p["at"] - p["since"]) <= 90 + 2  # 30 s into the watch
        assert snap["rms_total_arcsec"] is None and snap["window_frames"] == 0
        assert "RMS" not in session.activities["guiding"].detail
        assert len(g.history) >= 25  # the unguided frames are measured (and plotted)
        await _until(session, lambda: any("Guiding assistant:" in a.text for a in session.alerts),
                     clock_s=900)
        texts = [a.text for a in session.alerts]
        assert any(t.startswith("Seeing jitter") for t in texts)
        assert any("Guide dark of 1 s at gain 50 in use" in t for t in texts)
        # Nothing was corrected: no alert about corrections, limits or the predictive model.
        assert not [t for t in texts if "corrections hit" in t or "predictive model" in t
                    or "full strength" in t], texts
        assert g.worker.corrections is True  # guiding afterwards corrects again
        # Afterwards the unguided frames are no guiding statistics: none shown, none counted.
        await _until(session, lambda: g.state == "stopped", clock_s=60)
        snap = session.snapshot()["guiding"]
        assert snap["rms_total_arcsec"] is None and snap["total"]["frames"] == 0
        # The guide log: the unguided section says "guiding disabled"; the findings follow.
        log = next(session.night_dir.glob("PHD2_GuideLog_*.txt")).read_text()
        assert "connected, guiding disabled," in log and "guiding enabled" not in log
        assert "INFO: Guiding assistant: 2.0 min unguided" in log and "INFO: Seeing jitter" in log
        # x while it runs stops it: back to looping, corrections on again, nothing counted.
        await _cmd(session, "guide.assistant", minutes=2.0)
        await _until(session, lambda: g.state == "assistant", clock_s=120)
        await session.clock.sleep(20)
        assert await _cmd(session, "guide.stop", keep_looping=True) == "looping"
        assert g.detail == "guiding assistant stopped" and g.worker.corrections is True
        assert g.worker.engine.settings.drift_time_s == g.settings.drift_time_s < math.inf
        assert session.snapshot()["guiding"]["total"]["frames"] == 0
    finally:
        await session.stop()
