"""Corrections off (the guiding assistant's unguided watch, `guide --no-corrections`): the
engine measures the star and sends nothing, and so raises no alert about corrections it
does not send (pulse limits, the predictive model, drift-away recovery); a lost star still
alerts."""

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.events import Alert, GuideState, GuideStep, GuidingStarted, StarLost  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402

DRIFT = 1.5  # ″/s in Dec: 200 ms of pulse per 1 s frame at 0.5x, twice the 100 ms limit


def _calibrated(corrections, drift_time_s=math.inf):
    # drift_time_s: the guiding assistant lets the star wander (infinite)
    sky = SynthSky(angle_deg=20, jitter_arcsec=0.2, dec_deg=30, seed=6)
    settings = replace(GuideSettings(), max_dec_pulse_ms=100, drift_time_s=drift_time_s)
    eng = GuideEngine(settings, pixel_scale=sky.scale, dec_deg=30, guide_rate=0.5)
    eng.corrections = corrections
    eng.start_calibration(then_guide=True)
    events, t = run(eng, sky, 400, cycle=1.0, on_frame=None)
    while eng.state != GuideState.GUIDING:  # calibration ran on a still sky
        d = eng.on_frame(sky.render(), t)
        events.extend(d.events)
        for p in d.pulses:
            sky.pulse(p.direction, p.ms)
        t += 1.0
    sky.drift = (0.0, DRIFT)
    return eng, sky, events, t


def _alerts(events, codes):
    return [e for e in events if isinstance(e, Alert) and e.code in codes]


def test_the_dec_limit_alert_fires_when_correcting():
    # The control: the same drift with corrections on binds the 100 ms Dec limit.
    eng, sky, _, t = _calibrated(True)
    events, _ = run(eng, sky, 12, t0=t)
    assert _alerts(events, {"guide-limit"})[0].message.startswith(
        "Dec corrections hit the 100 ms limit (max_dec_pulse_ms) 5 times in a row")


def test_no_correction_alerts_while_measuring_only():
    eng, sky, before, t = _calibrated(False)
    started = [e for e in before if isinstance(e, GuidingStarted)]
    assert len(started) == 1 and started[0].guiding_enabled is False  # the log says "guiding disabled"
    events, t = run(eng, sky, 60, t0=t)
    steps = [e for e in events if isinstance(e, GuideStep)]
    assert len(steps) == 60
    # Nothing asked for, nothing sent, nothing limited.
    assert all(s.ra_ms == s.dec_ms == 0 and s.ra_guide_px == s.dec_guide_px == 0.0
               and not s.ra_limited and not s.dec_limited for s in steps)
    # Not one alert about corrections: no limit, predictive, drift-away or Dec-mode alert,
    # though the star drifted 90″ (21 px) from its lock position.
    assert not _alerts(events, {"guide-limit", "predictive", "drift", "dec-mode"})
    assert eng.state == GuideState.GUIDING and eng.calibration is not None
    # The steps measure the unguided drift: 1.5″/s over 4.3″/px, 0.349 px/s in Dec.
    tt = np.array([s.t for s in steps])
    slope = np.polyfit(tt, [s.dec_px for s in steps], 1)[0]
    assert abs(abs(slope) - DRIFT / sky.scale) <= 0.05 * DRIFT / sky.scale
    # A star that goes away is still reported.
    sky.cloud = 0.0
    d = eng.on_frame(sky.render(), t)
    assert [e for e in d.events if isinstance(e, StarLost)] and d.pulses == []


def test_a_star_away_from_its_lock_still_alerts_without_corrections():
    # The drift-away alarm is about where the star is (the capture sequencer discards the
    # light): it still comes, saying nothing brings the star back, and never recalibrates.
    eng, sky, _, t = _calibrated(False, drift_time_s=10.0)
    events, _ = run(eng, sky, 60, t0=t)
    drift = _alerts(events, {"drift"})
    assert len(drift) == 1 and drift[0].level == "critical"
    assert drift[0].message.endswith("guide corrections are off, nothing brings it back")
    # 0.349 px/s: past the 3 px drift limit after 8.6 s, alarmed 10 s later
    assert 18.0 <= drift[0].t - t <= 20.5, drift[0].t - t
    assert eng.state == GuideState.GUIDING and eng.calibration is not None
