"""The engine in closed loop on a tiny synthetic sky (tests/guiding/synth.py)."""

import io
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.events import (  # noqa: E402
    Alert, CalibrationDone, GuideState, GuideStep, SettleDone, StarFound, StarLost,
)
from fieldtui.guiding.log import GuideLogWriter, parse_guide_log  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def wrap(a):
    return (a + 180) % 360 - 180


@pytest.mark.parametrize("angle,flipped", [(0, False), (35, False), (-100, False), (160, True),
                                           (-45, True)])
def test_calibration_recovers_angle_rates_and_mirror(angle, flipped):
    sky = SynthSky(angle_deg=angle, flipped=flipped, jitter_arcsec=0.4, backlash_arcsec=10,
                   dec_deg=25, seed=abs(angle) + 3)
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=25)
    eng.start_calibration()
    events, _ = run(eng, sky, 300)
    done = [e for e in events if isinstance(e, CalibrationDone)]
    assert len(done) == 1 and eng.state == GuideState.LOOPING
    cal = eng.calibration
    assert abs(wrap(cal.ra_angle_deg - angle)) < 2.0
    assert cal.flipped == flipped
    assert cal.ra_rate == pytest.approx(sky.ra_rate_px_s, rel=0.05)
    assert cal.dec_rate == pytest.approx(sky.dec_rate_px_s, rel=0.05)
    assert cal.warnings == []
    # about 25 px in about 12 steps on each axis
    west = [e for e in events if type(e).__name__ == "CalibrationStep" and e.direction == "West"]
    assert 8 <= west[-1].step <= 20 and west[-1].dist >= 25


def _guided(seconds=400, **kw):
    sky = SynthSky(angle_deg=20, jitter_arcsec=0.3, drift_arcsec_s=(0.08, 0.04), **kw)
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale)
    eng.start_guiding()
    return sky, eng


def test_guiding_holds_a_drifting_star():
    sky, eng = _guided()
    events, _ = run(eng, sky, 400)
    steps = [e for e in events if isinstance(e, GuideStep)]
    assert eng.state == GuideState.GUIDING and len(steps) > 100
    late = steps[len(steps) // 2:]
    assert max(math.hypot(e.dx, e.dy) for e in late) < 1.0
    # Unguided, the same drift would have carried the star 400 s x 0.09″/s / 4.3 = 8 px away.


def test_star_lost_then_found_resumes_guiding():
    sky, eng = _guided()
    _, t = run(eng, sky, 150)
    assert eng.state == GuideState.GUIDING
    sky.cloud = 0.0
    events, t = run(eng, sky, 40, t0=t)
    assert eng.state == GuideState.STAR_LOST
    assert any(isinstance(e, StarLost) for e in events)
    assert any(isinstance(e, Alert) and e.code == "star-lost" and e.level == "critical" for e in events)
    sky.cloud = 1.0
    events, _ = run(eng, sky, 30, t0=t)
    found = [e for e in events if isinstance(e, StarFound)]
    assert found and found[0].same_star
    assert eng.state == GuideState.GUIDING
    assert any(isinstance(e, GuideStep) for e in events)


def test_refuses_to_guide_with_too_few_stars():
    sky = SynthSky(n_stars=2)
    eng = GuideEngine(GuideSettings())
    eng.start_guiding()
    events, _ = run(eng, sky, 5)
    alerts = [e for e in events if isinstance(e, Alert)]
    assert alerts and "only 2 stars visible" in alerts[0].message and alerts[0].level == "critical"
    assert eng.state == GuideState.LOOPING


def test_dither_moves_lock_and_settles():
    sky, eng = _guided()
    _, t = run(eng, sky, 150)
    lock0 = eng.lock
    assert eng.dither()
    assert math.hypot(eng.lock[0] - lock0[0], eng.lock[1] - lock0[1]) == pytest.approx(5.0, rel=0.05)
    events, _ = run(eng, sky, 60, t0=t)
    done = [e for e in events if isinstance(e, SettleDone)]
    assert done and done[0].ok and 10.0 <= done[0].settle_time_s <= 40.0
    assert eng.state == GuideState.GUIDING
    assert math.hypot(eng.star.x - eng.lock[0], eng.star.y - eng.lock[1]) < 1.5


def test_drift_watchdog_alerts_and_recovers():
    # The Dec algorithm ignores anything under 10 px, so a steady Dec drift walks
    # the star away: the watchdog must notice, say so, and bring it back.
    sky = SynthSky(angle_deg=20, drift_arcsec_s=(0.0, 0.3))
    s = GuideSettings(dec_min_move=10.0, drift_limit_px=3.0, drift_time_s=20.0)
    eng = GuideEngine(s, pixel_scale=sky.scale)
    eng.start_guiding()
    events, _ = run(eng, sky, 400)
    alerts = [e for e in events if isinstance(e, Alert) and e.code == "drift"]
    assert alerts and alerts[0].level == "critical"
    assert any(a.level == "info" and "back at the lock position" in a.message for a in alerts)
    first = alerts[0].t
    later = [e for e in events if isinstance(e, GuideStep) and e.t > first + 30]
    assert later and min(math.hypot(e.dx, e.dy) for e in later) < 1.0


def test_drift_watchdog_escalates_when_corrections_cannot_help():
    # The camera turns 150° in its holder after calibration: every correction now
    # pushes the star the wrong way, and only a new calibration helps.
    sky = SynthSky(angle_deg=20, drift_arcsec_s=(0.0, 0.3))
    s = GuideSettings(drift_limit_px=3.0, drift_time_s=20.0)
    eng = GuideEngine(s, pixel_scale=sky.scale)
    eng.start_guiding()
    events, t = run(eng, sky, 200)
    assert eng.state == GuideState.GUIDING
    sky.angle += math.radians(150)
    events, _ = run(eng, sky, 300, t0=t)
    alerts = [e for e in events if isinstance(e, Alert) and e.code == "drift"]
    assert len(alerts) >= 2 and all(a.level == "critical" for a in alerts)
    assert "Recalibrating" in alerts[1].message


def test_guide_log_round_trip():
    sky, eng = _guided()
    buf = io.StringIO()
    writer = GuideLogWriter(buf, 1000.0, camera="Synthetic", exposure_s=1.0)
    events, t = run(eng, sky, 200)
    eng.dither()
    events += eng.pop_events()
    more, t = run(eng, sky, 60, t0=t)
    events += more
    eng.stop_guiding()
    events += eng.pop_events()
    for e in events:
        writer.handle(e)
    writer.close(t)
    log = parse_guide_log(buf.getvalue())
    assert log.version.startswith("fieldtui")
    assert len(log.calibrations) == 1 and log.calibrations[0].complete
    cal_steps = [e for e in events if type(e).__name__ == "CalibrationStep"]
    assert len(log.calibrations[0].steps) == len(cal_steps)
    assert len(log.sessions) == 1
    sess = log.sessions[0]
    steps = [e for e in events if isinstance(e, GuideStep)]
    assert len(sess.entries) == len(steps)
    assert [e.frame for e in sess.entries] == [s.frame for s in steps]
    n = len(steps)
    m = sum(s.ra_px for s in steps) / n
    rms_ra = math.sqrt(sum((s.ra_px - m) ** 2 for s in steps) / n)
    m = sum(s.dec_px for s in steps) / n
    rms_dec = math.sqrt(sum((s.dec_px - m) ** 2 for s in steps) / n)
    assert sess.rms_ra_px == pytest.approx(rms_ra, abs=1e-3)
    assert sess.rms_dec_px == pytest.approx(rms_dec, abs=1e-3)
    assert sess.peak_ra_px == pytest.approx(max(abs(s.ra_px) for s in steps), abs=1e-3)
    for e, s in zip(sess.entries, steps):
        assert e.ra_ms == s.ra_ms and e.dec_ms == s.dec_ms
        assert e.ra_dir == (s.ra_dir if s.ra_ms else "") and e.dec_dir == (s.dec_dir if s.dec_ms else "")
    assert sess.pixel_scale == pytest.approx(4.3, abs=0.01)
    assert sess.x_angle == pytest.approx(eng.calibration.ra_angle_deg, abs=0.06)
    assert sess.x_rate == pytest.approx(eng.calibration.ra_rate, abs=1e-3)
    assert any(text.startswith("DITHER") for _, text in sess.infos)
    assert any("Settling complete" in text for _, text in sess.infos)
