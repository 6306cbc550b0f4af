"""A one-direction Dec mode against a drift the other way: detected, and the message says to
switch the mode (not that it is being corrected); no recalibration."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.events import Alert, CalibrationStarted, GuideStep  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def _guide(mode, drift_north=0.05, seconds=360):
    # The pointing drifts north at 0.05″/s (3″/min): the star needs south pulses.
    sky = SynthSky(angle_deg=20, jitter_arcsec=0.3, dec_deg=30, seed=4, drift_arcsec_s=(0.0, drift_north))
    eng = GuideEngine(replace(GuideSettings(), dec_mode=mode), pixel_scale=sky.scale, dec_deg=30,
                      guide_rate=0.5)
    eng.start_calibration(then_guide=True)
    events, _ = run(eng, sky, seconds)
    return eng, events


def test_north_only_against_a_northward_drift_says_to_switch_the_mode():
    eng, events = _guide("north")
    alerts = [e for e in events if isinstance(e, Alert)]
    wrong = [a for a in alerts if a.code == "dec-mode"]
    assert len(wrong) == 1 and wrong[0].level == "warning"
    msg = wrong[0].message
    assert msg.startswith('Dec is drifting the way dec_mode = "north" cannot correct')
    assert 'needs south pulses' in msg and 'Switch the Dec mode to "south" or "auto"' in msg
    text = " ".join(a.message for a in alerts)
    assert "full strength" not in text and "no longer fits" not in text
    assert sum(isinstance(e, CalibrationStarted) for e in events) == 1  # no recalibration
    steps = [e for e in events if isinstance(e, GuideStep)]
    assert all(s.dec_dir != "S" for s in steps)  # the mode is still honoured


@pytest.mark.parametrize("mode", ["south", "auto"])
def test_a_mode_that_can_correct_the_drift_raises_nothing(mode):
    eng, events = _guide(mode, seconds=300)
    assert [e for e in events if isinstance(e, Alert) and e.code in ("dec-mode", "drift")] == []
    steps = [e for e in events if isinstance(e, GuideStep)][-30:]
    assert max(abs(s.dec_px) for s in steps) < 1.0


def test_dec_guiding_off_says_so_instead_of_recalibrating():
    eng, events = _guide("off", drift_north=0.1, seconds=300)
    alerts = [e for e in events if isinstance(e, Alert)]
    wrong = [a for a in alerts if a.code == "dec-mode"]
    assert wrong and wrong[0].message.startswith('Dec guiding is off (dec_mode = "off")')
    assert 'set dec_mode = "auto"' in wrong[0].message
    assert not any("no longer fits" in a.message for a in alerts)
    assert sum(isinstance(e, CalibrationStarted) for e in events) == 1


def test_the_wrong_way_warning_comes_again_only_when_it_is_materially_worse():
    """15 minutes of a north-only mode against the drift: the warning once, then again
    only when the star is twice as far off as at the last warning and 5 minutes have
    passed (every 5 minutes alone, it said the same thing six times in 30 minutes)."""
    import re
    eng, events = _guide("north", seconds=900)
    wrong = [e for e in events if isinstance(e, Alert) and e.code == "dec-mode"]
    px = [float(re.search(r"the star is ([0-9.]+) px", a.message).group(1)) for a in wrong]
    assert 2 <= len(wrong) <= 3, px
    assert all(b >= 2.0 * a - 0.05 for a, b in zip(px, px[1:])), px
    ts = [a.t for a in wrong]
    assert all(b - a >= 299.0 for a, b in zip(ts, ts[1:]))
    assert "is still drifting" in wrong[1].message and "still" not in wrong[0].message
