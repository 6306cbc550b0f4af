"""The mount's own RA motion (steep periodic error) during calibration: taken out of the
rates, and when a calibration is still bent, named instead of wind, cable or backlash."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402
from skyloop import SkyLoop, small_config  # noqa: E402
from dataclasses import replace  # noqa: E402

import pytest  # noqa: E402

from fieldtui.guiding.calibration import Calibration, expected_rate_px_s, sanity_warnings  # noqa: E402
from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def _cal(ortho_deg):
    a = math.radians(90.0 - ortho_deg)
    return Calibration(2.0, 0.0, 2.0 * math.cos(a), -2.0 * math.sin(a))


def test_the_cause_follows_the_ra_legs_drift():
    assert abs(_cal(20.0).orthogonality_error_deg - 20.0) < 1e-9
    still = sanity_warnings(_cal(20.0), ra_drift_px=0.3)
    assert len(still) == 1 and "(wind, cable drag, Dec backlash)" in still[0]
    moved = sanity_warnings(_cal(20.0), ra_drift_px=6.0)
    assert len(moved) == 1 and "moved the star 6.0 px while the RA legs ran" in moved[0]
    assert "periodic error" in moved[0] and "wind" not in moved[0] and "backlash" not in moved[0]
    assert sanity_warnings(_cal(5.0), ra_drift_px=6.0) == []


def test_steady_ra_motion_during_calibration_is_taken_out():
    """1″/s along RA (the steepest part of ±45″ over 240 s) with 3-s guide cycles moved
    the star 14 px over the RA legs and bent the plain fit by ~20°: fitted with the
    mount's own motion (legs out and back, pulse-free frames on the north leg), the
    axes come out perpendicular and both rates as the guide rate says."""
    sky = SynthSky(angle_deg=30, jitter_arcsec=0.3, dec_deg=25, seed=5, drift_arcsec_s=(1.0, 0.0))
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=25, guide_rate=0.5)
    eng.start_calibration()
    run(eng, sky, 420, cycle=3.0)
    cal = eng.calibration
    assert cal.orthogonality_error_deg < 3.0
    assert cal.ra_rate == pytest.approx(expected_rate_px_s(0.5, sky.scale, 25), rel=0.05)
    assert cal.dec_rate == pytest.approx(expected_rate_px_s(0.5, sky.scale), rel=0.05)
    assert not any("from perpendicular" in w or "rate ratio" in w for w in cal.warnings)
    assert any("taken out of the rates" in w for w in cal.warnings)


def test_steep_periodic_error_with_long_exposures_calibrates_cleanly():
    """±45″ over 240 s with 4-s exposures on the simulator (18 px of the mount's own
    motion over the RA legs): 37° from perpendicular, a south leg 'not retracing' and a
    false Dec backlash before; now within a few degrees, no false warning about the axes,
    the south leg or backlash, the Dec rate within 10 %."""
    cfg = small_config(sim={"pe_amplitude_arcsec": 45.0, "pe_period_s": 240.0},
                       guiding={"exposure_s": 4.0})
    loop = SkyLoop(cfg, replace(GuideSettings.from_config(cfg), min_stars=1))
    loop.start()
    cal = loop.engine.calibration
    assert cal.orthogonality_error_deg < 5.0, cal.warnings
    assert cal.dec_rate == pytest.approx(expected_rate_px_s(cfg.mount.guide_rate, cfg.guide_scale),
                                         rel=0.10)
    for bad in ("from perpendicular", "did not retrace", "backlash is", "wind"):
        assert not any(bad in w for w in cal.warnings), cal.warnings


def test_a_still_mount_calibrates_as_before():
    """Under OWN_MOTION_PX of own motion over the RA legs the legs have no pulse-free frames."""
    sky = SynthSky(angle_deg=30, jitter_arcsec=0.3, dec_deg=25, seed=5)
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=25, guide_rate=0.5)
    eng.start_calibration()
    run(eng, sky, 420, cycle=3.0)
    assert eng.calibration.orthogonality_error_deg < 3.0
    assert not any("taken out" in w for w in eng.calibration.warnings)
