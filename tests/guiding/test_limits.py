"""Pulse limits and the tolerance alert when they bind (PHD2: after 5 in a row); the
tolerance never holds back a predictive algorithm's feed-forward."""

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.events import Alert, GuideStep  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def _guide(settings, drift, seconds):
    sky = SynthSky(angle_deg=20, jitter_arcsec=0.2, dec_deg=30, seed=6, drift_arcsec_s=drift)
    eng = GuideEngine(settings, pixel_scale=sky.scale, dec_deg=30, guide_rate=0.5)
    eng.start_calibration(then_guide=True)
    events, _ = run(eng, sky, seconds)
    return events


def test_ra_pulse_limit_alerts_after_five_in_a_row():
    # 1.5″/s of RA drift (a steep periodic error) needs 230 ms of pulse per 1 s frame at
    # 0.5x: 200 ms cannot keep up.
    events = _guide(replace(GuideSettings(), max_ra_pulse_ms=200), (1.5, 0.0), 200)
    steps = [e for e in events if isinstance(e, GuideStep)]
    alerts = [e for e in events if isinstance(e, Alert) and e.code == "guide-limit"]
    assert len(alerts) == 1  # and not again within 5 minutes
    a = alerts[0]
    assert a.message.startswith("RA corrections hit the 200 ms limit (max_ra_pulse_ms) 5 times in a row")
    assert "Raise max_ra_pulse_ms" in a.message
    # It came exactly on the fifth limited correction in a row.
    before = [s for s in steps if s.t <= a.t]
    assert [s.ra_limited for s in before[-5:]] == [True] * 5
    assert not all(s.ra_limited for s in before[-6:]) or len(before) == 5
    assert all(s.ra_ms <= 200 for s in steps)


def test_no_limit_alert_when_the_limits_do_not_bind():
    events = _guide(GuideSettings(), (0.05, 0.02), 260)
    assert not [e for e in events if isinstance(e, Alert) and e.code == "guide-limit"]


def test_tolerance_passes_the_feed_forward_and_alerts_at_its_edge():
    s = replace(GuideSettings(), tolerance_px=1.0, ra_algorithm="predictive")
    events = _guide(s, (0.08, 0.0), 300)
    steps = [e for e in events if isinstance(e, GuideStep)]
    inside = [e for e in steps[60:] if abs(e.ra_px) < 1.0]
    # The learned drift goes out as pulses even while the star is inside the tolerance.
    assert sum(1 for e in inside if e.ra_ms > 0) > 0.5 * len(inside)
    alerts = [e for e in events if isinstance(e, Alert) and e.code == "guide-limit"]
    assert all("tolerance_px = 1" in a.message for a in alerts)
    # The classic algorithm has no feed-forward: held back, the star rides the edge, and it says so.
    s = replace(GuideSettings(), tolerance_px=1.0, ra_algorithm="hysteresis")
    events = _guide(s, (0.08, 0.0), 300)
    alerts = [e for e in events if isinstance(e, Alert) and e.code == "guide-limit"]
    assert alerts and alerts[0].message.startswith("The tolerance (tolerance_px = 1) held back RA")
