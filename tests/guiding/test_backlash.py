"""Dec backlash: measured from a north and a south leg, warned about, compensated."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synth import SynthSky, run  # noqa: E402

from fieldtui.guiding.backlash import BacklashCompensator, measure_backlash  # noqa: E402
from fieldtui.guiding.engine import GuideEngine  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def _leg(start, direction_deg, moves):
    """Positions: ``start`` then after each move (px along ``direction_deg``)."""
    u = np.array([math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))])
    return np.array(start) + np.outer(np.concatenate([[0.0], np.cumsum(moves)]), u)


def test_hand_computed_partial_south_return():
    # North: 10 pulses of 1000 ms at 2 px/s along -60 deg: 20 px.  South: 10 pulses
    # of 1000 ms; the first 3 s go into the play, the last 7 s bring it back 14 px.
    north = _leg((100.0, 100.0), -60.0, [2.0] * 10)
    south = _leg(north[-1], 120.0, [0, 0, 0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    m = measure_backlash(north, 1000, south, 1000, pixel_scale=4.0, noise_px=0.0)
    assert m.north_rate_px_s == pytest.approx(2.0)
    assert m.north_px == pytest.approx(20.0) and m.south_px == pytest.approx(14.0)
    assert m.backlash_ms == pytest.approx(3000.0) and m.backlash_px == pytest.approx(6.0)
    assert m.backlash_arcsec == pytest.approx(24.0) and not m.lower_bound
    assert m.south_fraction == pytest.approx(0.7)
    assert m.large  # 24" > 20"
    w = m.warning()
    assert w.startswith("Dec backlash is large: about 24″ (3.0 s of guide pulse, 6.0 px)")
    for advice in ("east-heavy", 'dec_mode = "north" or "south"', "gear mesh"):
        assert advice in w
    # Per-step pulse lengths: 500 ms north steps, one 4000 ms south pulse of which 1.5 s moves.
    north = _leg((0.0, 0.0), 90.0, [1.0] * 8)
    south = _leg(north[-1], -90.0, [3.0])
    m = measure_backlash(north, [500] * 8, south, [4000], noise_px=0.0)
    assert m.backlash_ms == pytest.approx(2500.0) and m.backlash_arcsec is None
    assert not m.large  # 2.5 s < 3 s without a pixel scale


def test_no_south_motion_is_a_lower_bound_and_no_backlash_is_zero():
    north = _leg((50.0, 50.0), 0.0, [2.0] * 12)
    still = _leg(north[-1], 180.0, [0.01] * 12)
    m = measure_backlash(north, 800, still, 800, pixel_scale=4.3, noise_px=0.1)
    assert m.lower_bound and m.backlash_ms == pytest.approx(12 * 800)
    assert "at least" in m.describe()
    back = _leg(north[-1], 180.0, [2.0] * 12)
    m = measure_backlash(north, 800, back, 800, pixel_scale=4.3, noise_px=0.1)
    assert m.backlash_ms == pytest.approx(0.0, abs=1e-6) and m.warning() is None
    assert measure_backlash(_leg((0, 0), 0, [0.0] * 5), 800, back, 800) is None


@pytest.mark.parametrize("backlash", [0.0, 30.0, 60.0])
def test_calibration_measures_the_backlash(backlash):
    sky = SynthSky(angle_deg=30, backlash_arcsec=backlash, jitter_arcsec=0.5, dec_deg=25, seed=5)
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale, dec_deg=25, guide_rate=0.5)
    eng.start_calibration()
    run(eng, sky, 600)
    cal = eng.calibration
    measured = cal.backlash_ms / 1000.0 * 0.5 * 15.041
    assert measured == pytest.approx(backlash, abs=0.1 * backlash + 2.0)
    large = [w for w in cal.warnings if w.startswith("Dec backlash is large")]
    assert len(large) == (1 if backlash > 20 else 0)


def test_compensator_tracks_the_gear_in_its_play():
    c = BacklashCompensator(4000.0, gear_at=0.0)   # against the south side
    assert c.extra_ms(-1) == 0.0 and c.extra_ms(+1) == 4000.0
    c.sent(+1, 1500.0)                             # 1.5 s north: crosses 1.5 s of the play
    assert c.play_ms(+1) == pytest.approx(2500.0) and c.play_ms(-1) == pytest.approx(1500.0)
    c.sent(-1, 500.0)
    assert c.play_ms(-1) == pytest.approx(1000.0)
    c.sent(+1, 6000.0, extra_ms=3000.0)            # a compensated reversal: all the way north
    assert c.play_ms(+1) == 0.0 and c.play_ms(-1) == pytest.approx(4000.0)


def test_compensator_adapts_from_under_and_overshoot():
    c = BacklashCompensator(2000.0, gear_at=0.0)
    rate, min_move = 2.0, 0.2                      # px/s
    for _ in range(12):                            # the star still short by 1 px every time
        c.sent(+1, 2500.0, extra_ms=c.extra_ms(+1))
        c.outcome(+1.0, rate, min_move)
        c.sent(-1, 2500.0, extra_ms=c.extra_ms(-1))
        c.outcome(-1.0, rate, min_move)
    assert 2000.0 < c.gap_ms <= 4000.0             # grew, never above twice the start
    big = c.gap_ms
    for _ in range(12):                            # now overshooting by 1 px
        c.sent(+1, 2500.0, extra_ms=c.extra_ms(+1))
        c.outcome(-1.0, rate, min_move)
        c.sent(-1, 2500.0, extra_ms=c.extra_ms(-1))
        c.outcome(+1.0, rate, min_move)
    assert c.gap_ms < big
    # Residuals under the minimum move leave it alone.
    c2 = BacklashCompensator(2000.0, gear_at=0.0)
    for _ in range(10):
        c2.sent(+1, 2500.0, extra_ms=c2.extra_ms(+1))
        c2.outcome(0.1, rate, min_move)
    assert c2.gap_ms == 2000.0


def test_an_unknown_gear_gets_nothing_added_until_its_first_pulse_places_it():
    # a calibration reused after a slew or a flip: where the gear sits is unknown
    c = BacklashCompensator(2000.0)
    assert c.extra_ms(1) == 0.0 and c.extra_ms(-1) == 0.0
    c.sent(-1, 50.0)                 # a south pulse: the gear now rests on the south side
    assert c.extra_ms(-1) == 0.0     # more south: no play
    assert c.extra_ms(1) == 2000.0   # a reversal meets the whole play


def test_the_mounts_own_dec_drift_is_not_taken_for_backlash():
    # 10 north pulses of 1 s at 2 px/s, a frame every 2 s, while the mount drifts
    # 0.05 px/s along the north motion; then 10 south pulses.  The north leg alone
    # reads 2.1 px/s, and the south leg comes back only 19 px: 952 ms of "backlash"
    # from the drift alone.  With the times and the drift seen while Dec was not
    # pulsed, the rate is 2 px/s and the play 0.
    k = np.arange(11.0)
    north = np.column_stack([np.zeros(11), 2.1 * k])
    south = np.column_stack([np.zeros(11), 21.0 - 1.9 * k])
    tn, ts = 2.0 * k, 20.0 + 2.0 * k
    plain = measure_backlash(north, 1000, south, 1000, noise_px=0.0)
    assert plain.north_rate_px_s == pytest.approx(2.1)
    assert plain.backlash_ms == pytest.approx(1000.0 * (10 - 19 / 2.1))
    m = measure_backlash(north, 1000, south, 1000, north_t=tn, south_t=ts, drift=(0.0, 0.05, 0.01))
    assert m.north_rate_px_s == pytest.approx(2.0, abs=1e-3)
    assert m.backlash_ms == pytest.approx(0.0, abs=5.0) and not m.lower_bound
    # The same with 3 s of play: the first 3 south pulses only let the drift show.
    south = np.column_stack([np.zeros(11), 21.0 + 0.1 * k - 2.0 * np.maximum(k - 3, 0)])
    m = measure_backlash(north, 1000, south, 1000, north_t=tn, south_t=ts, drift=(0.0, 0.05, 0.01))
    assert m.backlash_ms == pytest.approx(3000.0, abs=5.0) and m.north_rate_px_s == pytest.approx(2.0, abs=1e-3)
    # A south leg that never moved (all play): the drift alone, a lower bound.
    south = np.column_stack([np.zeros(11), 21.0 + 0.1 * k])
    m = measure_backlash(north, 1000, south, 1000, north_t=tn, south_t=ts, drift=(0.0, 0.05, 0.01))
    assert m.lower_bound and m.backlash_ms == pytest.approx(10000.0)


async def _sim_calibration(overrides):
    from fieldtui.config import load_config
    from simcal import calibrate_on_sim_rig

    cfg = load_config(user=False, overrides=overrides)
    w, _ = await calibrate_on_sim_rig(cfg)
    return w.engine, cfg


@pytest.mark.parametrize("seed", [0, 2, 7])
async def test_a_simulated_mount_without_backlash_measures_none(seed):
    """The simulated rig's polar drift (4′), periodic error and seeing used to read as
    90-360 ms of backlash on a mount with none; now under 100 ms (no compensation is set
    up), and 60″ still measures 54-66″."""
    small = {"guide_camera": {"width": 640, "height": 480}}
    eng, cfg = await _sim_calibration({**small, "sim": {"backlash_arcsec": 0.0, "seed": seed}})
    cal = eng.calibration
    assert cal is not None and not cal.backlash_lower_bound
    assert cal.backlash_ms < 100.0 and eng.backlash_comp is None
    eng, cfg = await _sim_calibration({**small, "sim": {"backlash_arcsec": 60.0, "seed": seed}})
    cal = eng.calibration
    arcsec = cal.backlash_ms / 1000.0 * cal.dec_rate * cfg.guide_scale
    assert 54.0 <= arcsec <= 66.0 and eng.backlash_comp is not None


def test_a_small_steady_overshoot_is_adapted_for_the_predictive_dec_guider():
    """Compensation 65 ms too long on 8 s of play overshoots 0.11 px at 1.75 px/s: under
    the 0.2 px minimum move, but the predictive Dec guider corrects averaged errors from
    0.1 px, so it reversed every ~17 s through the play.  Its engine adapts from half the
    minimum move: the gap comes down to the play; resist switch's keeps the minimum move."""
    assert GuideEngine(GuideSettings(dec_algorithm="predictive"))._comp_threshold_px() == 0.1
    assert GuideEngine(GuideSettings(dec_algorithm="resist_switch"))._comp_threshold_px() == 0.2
    # Not below what seeing puts into the mean of 10 misses: 0.3 px a frame (0.2-s
    # exposures) -> 2.5 x 0.3 / sqrt(10) = 0.24, capped at the minimum move.
    noisy = GuideEngine(GuideSettings(dec_algorithm="predictive"))
    noisy._dec_ms2 = 0.3 ** 2
    assert noisy._comp_threshold_px() == 0.2
    noisy._dec_ms2 = 0.16 ** 2
    assert noisy._comp_threshold_px() == pytest.approx(2.5 * 0.16 / math.sqrt(10))
    rate, play = 1.75, 7910.0
    for threshold, adapts in ((0.1, True), (0.2, False)):
        c = BacklashCompensator(7975.0, gear_at=0.0)
        for k in range(12):
            d = 1 if k % 2 == 0 else -1
            extra = c.extra_ms(d)
            c.sent(d, 300.0 + extra, extra)
            over = (extra - play) / 1000.0 * rate          # px the star went too far
            c.outcome(-d * over, rate, threshold)           # + wants a north pulse
        assert (abs(c.gap_ms - play) < 20.0) == adapts, c.gap_ms


def test_a_pulse_cut_to_its_limit_is_not_taken_for_a_short_compensation():
    """A dither's 5 px against the drift needs more than max_dec_pulse_ms: the star ends
    short of the lock, which says nothing about the compensation added to that pulse.
    Counted as an undershoot, such pulses grew the gap ~3 % and every reversal after
    overshot; left out, the gap stays at the play."""
    rate, play = 1.75, 8000.0
    for limited, grows in ((True, False), (False, True)):
        c = BacklashCompensator(play, gear_at=0.0)
        for k in range(8):
            d = 1 if k % 2 == 0 else -1
            extra = c.extra_ms(d)
            c.sent(d, 2500.0 + extra, extra, limited=limited)
            c.outcome(d * 0.5, rate, 0.1)        # 0.5 px still to go the same way
        assert (c.gap_ms > play + 50.0) == grows, c.gap_ms
