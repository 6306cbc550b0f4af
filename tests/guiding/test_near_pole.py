"""Calibration near the celestial pole: longer RA steps, a short RA leg accepted with a note,
and a failure that names the cause (cos δ), never the guide cable."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky  # noqa: E402

from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.events import Alert, CalibrationDone, CalibrationFailed  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def _until_calibrated(eng, sky, seconds):
    """Close the loop until the calibration ends (done or failed)."""
    events, t = [], 1000.0
    while t < 1000.0 + seconds:
        d = eng.on_frame(sky.render(), t)
        events.extend(d.events)
        if any(isinstance(e, (CalibrationDone, CalibrationFailed)) for e in d.events):
            break
        for p in d.pulses:
            sky.pulse(p.direction, p.ms)
        t += max(1.0, max((p.ms for p in d.pulses), default=0) / 1000.0)
    return events


def _calibrate(dec):
    sky = SynthSky(angle_deg=-40, jitter_arcsec=0.3, dec_deg=dec, seed=3)
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=dec, guide_rate=0.5)
    eng.start_calibration()
    return sky, eng, _until_calibrated(eng, sky, 3000)


@pytest.mark.parametrize("dec", [88.0, 89.0])
def test_calibration_near_the_pole_succeeds_with_the_right_rate(dec):
    sky, eng, events = _calibrate(dec)
    assert [e for e in events if isinstance(e, CalibrationFailed)] == []
    cal = eng.calibration
    assert cal is not None
    # The RA rate is cos(dec) of the Dec rate: within 10 % even from a short leg.
    assert cal.ra_rate == pytest.approx(sky.ra_rate_px_s, rel=0.10)
    assert cal.dec_rate == pytest.approx(sky.dec_rate_px_s, rel=0.05)
    steps = [e for e in events if type(e).__name__ == "CalibrationStep" and e.direction == "West"]
    assert max(s.pulse_ms for s in steps) > 5000  # longer RA pulses than anywhere else
    text = " ".join(a.message for a in events if isinstance(a, Alert))
    assert "cable" not in text
    if dec == 89.0:
        # 60 steps of 10 s cannot reach 25 px at cos 89° = 0.017: accepted, and said so.
        short = [w for w in cal.warnings if w.startswith("RA calibration used a short leg")]
        assert len(short) == 1 and "near the pole RA moves only cos δ as far" in short[0]
        assert "1.7 %" in short[0]


def test_too_close_to_the_pole_fails_naming_the_pole_not_the_cable():
    sky, eng, events = _calibrate(89.8)
    failed = [e for e in events if isinstance(e, CalibrationFailed)]
    assert len(failed) == 1 and eng.calibration is None
    msg = failed[0].reason
    assert msg.startswith("RA calibration failed: near the pole RA moves only cos δ as far")
    assert "Dec 89.8°" in msg and "below Dec 60°" in msg and "cable" not in msg


def test_a_dead_ra_line_away_from_the_pole_still_blames_the_cable():
    sky = SynthSky(angle_deg=-40, jitter_arcsec=0.3, dec_deg=30, seed=3)
    sky.pulse = lambda d, ms, _p=sky.pulse: None if d in "WE" else _p(d, ms)  # RA never moves
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=30, guide_rate=0.5)
    eng.start_calibration()
    events = _until_calibrated(eng, sky, 400)
    failed = [e for e in events if isinstance(e, CalibrationFailed)]
    assert len(failed) == 1 and "check the guide cable" in failed[0].reason
