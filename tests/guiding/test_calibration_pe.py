"""A calibration bent by the mount's own RA motion (steep periodic error) says so, instead
of blaming wind, cable or backlash."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.calibration import Calibration, sanity_warnings  # noqa: E402
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


def test_steep_ra_motion_during_calibration_is_named():
    # 1″/s along RA (the steepest part of ±45″ over 240 s) with 3 s guide cycles.
    sky = SynthSky(angle_deg=30, jitter_arcsec=0.3, dec_deg=25, seed=5, drift_arcsec_s=(1.0, 0.0))
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=25, guide_rate=0.5)
    eng.start_calibration()
    run(eng, sky, 420, cycle=3.0)
    ortho = [w for w in eng.calibration.warnings if "from perpendicular" in w]
    assert len(ortho) == 1
    assert "the mount's own RA motion moved the star" in ortho[0] and "wind" not in ortho[0]
