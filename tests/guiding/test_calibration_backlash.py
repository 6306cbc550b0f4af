"""Dec backlash seen by the calibration's south leg (PHD2's 25 % check)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bugcases import bugcase  # noqa: E402
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.calibration import south_leg_warnings  # noqa: E402
from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.events import Alert, CalibrationDone, CalibrationStep, GuideState  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def _south_percent(warning: str) -> float:
    m = re.search(r"(\d+) % of the ([\d.]+) px of the north leg", warning)
    assert m, warning
    return float(m.group(1))


def test_south_leg_hand_values():
    # North leg 25 px up; south leg back 0.25 px: 1 %, "little or no" movement.
    w = south_leg_warnings((0.0, -25.0), (0.0, 0.25), pixel_scale=4.0)
    assert len(w) == 1 and w[0].startswith("Dec backlash is very large: little or no south movement")
    assert _south_percent(w[0]) == 1
    assert "at least 24.8 px (99″)" in w[0] and 'dec_mode = "north" or "south"' in w[0]
    # With the backlash measured on the same legs, that one figure is the play, said once.
    from fieldtui.guiding.backlash import BacklashMeasurement
    m = BacklashMeasurement(backlash_ms=6000.0, backlash_px=24.0, backlash_arcsec=96.0, north_rate_px_s=4.0,
                            north_px=25.0, south_px=0.25, lower_bound=False, sigma_ms=50.0)
    w = south_leg_warnings((0.0, -25.0), (0.0, 0.25), pixel_scale=4.0, measured=m)
    assert "so about 96″ (6.0 s of guide pulse, 24.0 px) of play" in w[0]
    assert re.findall(r"\d+″", w[0]) == ["96″"] and "noise" not in w[0]
    w = south_leg_warnings((0.0, -25.0), (0.0, 0.25), pixel_scale=4.0,
                           measured=BacklashMeasurement(6250.0, 25.0, 100.0, 4.0, 25.0, 0.25, True, 50.0))
    assert "moved the star 0.2 px, within the noise and drift," in w[0]
    assert "so at least 100″ (6.2 s of guide pulse, 25.0 px) of play" in w[0]
    # 20 %: below PHD2's 25 % but above its 10 %.
    w = south_leg_warnings((0.0, -25.0), (0.0, 5.0))
    assert len(w) == 1 and "very large: little south movement" in w[0] and _south_percent(w[0]) == 20
    assert "″" not in w[0]  # no pixel scale, no arc-seconds
    # 80 % back along the north vector: fine (8″ of backlash in a 25 px leg does this).
    assert south_leg_warnings((0.0, -25.0), (0.5, 20.0)) == []
    # Far enough but sideways (90° off the reversed north vector): PHD2's 30° check.
    w = south_leg_warnings((0.0, -25.0), (20.0, 0.0))
    assert len(w) == 1 and "did not retrace" in w[0] and "90°" in w[0]


def test_engine_reports_large_backlash_after_the_south_leg():
    # 240″ at 4.3″/px is 56 px of play, twice the 25 px calibration leg: the
    # south pulses all go into the backlash and the star stays put.
    sky = SynthSky(angle_deg=30, backlash_arcsec=240, jitter_arcsec=0.3, dec_deg=25, seed=5)
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=25)
    eng.start_calibration()
    events, _ = run(eng, sky, 400)
    done = [e for e in events if isinstance(e, CalibrationDone)]
    assert len(done) == 1 and eng.state == GuideState.LOOPING
    # CalibrationDone comes after the last South step, with the warning in it.
    steps = [e for e in events if type(e).__name__ == "CalibrationStep"]
    assert steps[-1].direction == "South" and events.index(done[0]) > events.index(steps[-1])
    backlash = [w for w in done[0].warnings if w.startswith("Dec backlash is very large")]
    assert len(backlash) == 1 and _south_percent(backlash[0]) <= 3
    assert backlash == [w for w in eng.calibration.warnings if w.startswith("Dec backlash")]
    alerts = [e for e in events if isinstance(e, Alert) and e.message == backlash[0]]
    assert len(alerts) == 1 and alerts[0].level == "warning"


async def test_bugcase_dec_backlash_on_sim_rig():
    """The bugcase config on the simulated rig: the south leg moves ~1 % of the north leg."""
    from fieldtui.config import load_config
    from simcal import calibrate_on_sim_rig

    cfg = load_config(str(bugcase("dec_backlash/backlash.toml")), user=False)
    assert cfg.sim.backlash_arcsec == 240.0
    w, events = await calibrate_on_sim_rig(cfg)
    done = [e for e in events if isinstance(e, CalibrationDone)]
    assert len(done) == 1
    backlash = [x for x in done[0].warnings if x.startswith("Dec backlash is very large")]
    assert len(backlash) == 1
    assert _south_percent(backlash[0]) <= 3  # about 1 %
    # What to do, and the measurement: all 240″ cannot be seen in a 25 px leg, so a lower bound.
    for advice in ("east-heavy", 'dec_mode = "north" or "south"', "gear mesh"):
        assert advice in backlash[0]
    # One figure for the play, stated once: the measured lower bound (all the south leg's
    # pulse time, its 0.6 px return being within the noise and drift), not also the plain
    # north-minus-south difference (they read 113″ and 116″).
    cal = w.engine.calibration
    assert cal.backlash_lower_bound
    figures = re.findall(r"(\d+)″", backlash[0])
    assert len(figures) == 1, backlash[0]
    # the bound is all the south leg's pulse time, and that leg's worth of north travel
    south = [e for e in events if isinstance(e, CalibrationStep) and e.direction == "South"]
    north = [e for e in events if isinstance(e, CalibrationStep) and e.direction == "North"]
    south_s = sum(e.pulse_ms for e in south if e.step > 0) / 1000.0  # step 0: where the leg began
    assert cal.backlash_ms / 1000.0 == south_s
    north_px = north[-1].dist
    m = re.search(r"so at least (\d+)″ \(([\d.]+) s of guide pulse, ([\d.]+) px\) of play", backlash[0])
    assert m, backlash[0]
    assert m.group(2) == f"{south_s:.1f}"
    assert f"of the {north_px:.1f} px of the north leg" in backlash[0]
    # north-leg travel at the north rate for the same pulse time (equal pulses both legs)
    assert abs(float(m.group(3)) - north_px) <= 0.15, (m.group(3), north_px)
    assert abs(int(m.group(1)) - float(m.group(3)) * cfg.guide_scale) <= 1.0
    assert "within the noise and drift" in backlash[0]
    assert "(measured:" not in backlash[0]
    assert 100 <= int(m.group(1)) <= 240  # a lower bound of the configured 240″
    assert w.engine.backlash_comp is None  # too large to add blindly


async def test_default_sim_backlash_gives_no_warning():
    from fieldtui.config import load_config
    from simcal import calibrate_on_sim_rig

    cfg = load_config(user=False)
    assert cfg.sim.backlash_arcsec == 8.0
    w, events = await calibrate_on_sim_rig(cfg)
    done = [e for e in events if isinstance(e, CalibrationDone)]
    assert len(done) == 1 and done[0].warnings == []
