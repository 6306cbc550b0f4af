"""Engine pieces with known answers: centroid, selection, algorithms, calibration maths."""

import math

import numpy as np
import pytest

from fieldtui.guiding.algorithms import Hysteresis, ResistSwitch
from fieldtui.guiding.calibration import Calibration, load_calibration, sanity_warnings, save_calibration
from fieldtui.guiding.centroid import measure_star
from fieldtui.guiding.select import NoGuideStar, select_guide_star


def gaussian_frame(stars, shape=(200, 260), sigma=1.4, bg=300.0, noise=3.0, seed=0, peak_clip=None):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = rng.normal(bg, noise, shape)
    for x, y, flux in stars:
        img += flux / (2 * math.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    if peak_clip is not None:
        img = np.minimum(img, peak_clip)
    return img.astype(np.float32)


@pytest.mark.parametrize("x,y", [(100.0, 80.0), (100.37, 80.81), (57.5, 120.25)])
def test_centroid_is_subpixel_accurate(x, y):
    img = gaussian_frame([(x, y, 40000)])
    m = measure_star(img, x + 3, y - 2, half=12)
    assert m is not None
    assert abs(m.x - x) < 0.03 and abs(m.y - y) < 0.03
    assert m.snr > 50
    # HFD of a Gaussian: 2 x mean radius = 2 x sigma x sqrt(pi/2) = 3.51 px for sigma 1.4
    assert 2.8 < m.hfd < 4.0


def test_centroid_finds_nothing_on_blank_sky():
    img = gaussian_frame([])
    m = measure_star(img, 100, 100, half=12)
    assert m is None or m.snr < 3.0


def test_selection_refuses_with_too_few_stars():
    img = gaussian_frame([(80, 80, 30000), (180, 120, 20000), (120, 60, 25000)])
    with pytest.raises(NoGuideStar, match="only 3 stars visible"):
        select_guide_star(img, min_stars=4)


def test_selection_skips_saturated_edge_and_crowded_stars():
    stars = [(130, 100, 500000),   # saturated (clipped below)
             (10, 100, 80000),     # at the edge
             (60, 60, 60000), (66, 63, 30000),  # a close pair
             (190, 140, 20000),    # the isolated, unsaturated one
             (100, 150, 8000)]
    img = gaussian_frame(stars, peak_clip=4095)
    sel = select_guide_star(img, saturation=4095, min_stars=4, box_half=10)
    assert abs(sel.primary.x - 190) < 0.5 and abs(sel.primary.y - 140) < 0.5


def test_hysteresis_known_values():
    h = Hysteresis(hysteresis=0.1, aggression=0.7, min_move=0.2)
    assert h.result(1.0) == pytest.approx(0.63)  # (0.9*1 + 0.1*0) * 0.7
    assert h.result(1.0) == pytest.approx((0.9 + 0.1 * 0.63) * 0.7)
    assert h.result(0.1) == 0.0  # below the minimum move


def test_resist_switch_needs_evidence_to_move_and_to_reverse():
    r = ResistSwitch(min_move=0.2, aggression=1.0, fast_switch=False)
    assert r.result(0.5) == 0.0 and r.result(0.6) == 0.0  # not compelling yet
    assert r.result(0.7) == pytest.approx(0.7)  # three votes, growing: go
    assert r.result(-0.5) == 0.0  # overshoot: no reversal on one frame
    assert r.result(0.4) == pytest.approx(0.4)


def test_resist_switch_fast_switch_on_big_confirmed_deflection():
    r = ResistSwitch(min_move=0.2)
    for v in (0.5, 0.6, 0.7):
        r.result(v)
    assert r.side == 1
    assert r.result(-3.0) == 0.0
    assert r.result(-3.0) == pytest.approx(-3.0)


def test_calibration_transform_roundtrip_and_storage(tmp_path):
    a = math.radians(40)
    cal = Calibration(2 * math.cos(a), 2 * math.sin(a), 3 * math.sin(a), -3 * math.cos(a),
                      camera="cam", pier_side="west", dec_deg=20.0)
    assert cal.ra_angle_deg == pytest.approx(40)
    assert not cal.flipped
    ra, dec = cal.mount_from_camera(*cal.camera_from_mount(1.5, -2.0))
    assert (ra, dec) == pytest.approx((1.5, -2.0))
    save_calibration(tmp_path / "cal.json", cal)
    back = load_calibration(tmp_path / "cal.json")
    assert back is not None and back.ra_rate == pytest.approx(2.0) and back.dec_rate == pytest.approx(3.0)
    assert back.matches("cam", "west") and not back.matches("cam", "east")
    assert not back.matches("other camera", "west")


def test_sanity_checks_warn_on_skewed_axes_and_wrong_ratio():
    ok = Calibration(1.0, 0.0, 0.0, -1.0 / math.cos(math.radians(30)), dec_deg=30.0)
    assert sanity_warnings(ok) == []
    skew = Calibration(1.0, 0.0, math.sin(math.radians(20)), -math.cos(math.radians(20)) * 1.1547, dec_deg=30.0)
    assert any("perpendicular" in w for w in sanity_warnings(skew))
    ratio = Calibration(1.0, 0.0, 0.0, -1.0, dec_deg=60.0)  # RA should be half the Dec rate
    assert any("ratio" in w for w in sanity_warnings(ratio))


def test_pulses_shorter_than_the_minimum_are_not_sent():
    from fieldtui.guiding.engine import GuideEngine
    # 0.02 px at 1.5 px/s is 13 ms: sent with a 10 ms minimum, not with 20 ms.
    assert GuideEngine._to_pulse(0.02, 1.5, "E", "W", 2500, 10) == (13, "E", False)
    assert GuideEngine._to_pulse(-0.02, 1.5, "E", "W", 2500, 20) == (0, "", False)
    assert GuideEngine._to_pulse(-6.0, 1.5, "E", "W", 2500, 10) == (2500, "W", True)
