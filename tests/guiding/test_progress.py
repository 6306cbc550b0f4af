"""Calibration and settle progress: steps left and time left, against hand-computed answers."""

import math

import pytest

from fieldtui.guiding.progress import CalibrationProgress, SettleProgress


def walk(p, t, leg, steps, px_per_step, dt=2.0, first=0):
    """Feed a leg as the engine reports it: step 0 where it begins, then one record per pulse."""
    for k in range(first, steps + 1):
        p.on_step(t, leg, k, k * px_per_step)
        t += dt if k < steps else 0.0
    return t


def test_calibration_estimate_from_the_first_step():
    p = CalibrationProgress(target_px=25.0, steps=12, backlash_steps=2)
    p.start(0.0)
    p.on_step(0.0, "West", 0, 0.0)
    assert p.left_s() is None  # no step timed yet
    p.on_step(2.0, "West", 1, 2.0)
    # West needs ceil(25 / 2) = 13 steps, East 13, backlash 2, North and South 12 each: 52, one done
    assert p.expected() == {"West": 13, "East": 13, "Backlash": 2, "North": 12, "South": 12}
    assert p.steps_left() == 51
    assert p.left_s() == pytest.approx(51 * 2.0)


def test_calibration_whole_sequence_counts_down_to_zero():
    p = CalibrationProgress(target_px=25.0, steps=12, backlash_steps=2)
    p.start(0.0)
    t = walk(p, 0.0, "West", 13, 2.0)      # 26 px after 13 steps
    t = walk(p, t, "East", 13, 2.0)
    t = walk(p, t, "Backlash", 3, 1.2)     # moved 3.6 px at the third step
    p.on_step(t, "North", 0, 0.0)
    p.on_step(t + 2.0, "North", 1, 2.5)
    # North: ceil(25 / 2.5) = 10, South the same; 13 + 13 + 3 + 10 + 10 = 49, 30 done
    assert p.expected() == {"West": 13, "East": 13, "Backlash": 3, "North": 10, "South": 10}
    assert p.steps_left() == 19
    assert p.left_s() == pytest.approx(19 * 2.0)
    t = walk(p, t + 4.0, "North", 10, 2.5, first=2)
    walk(p, t, "South", 10, 2.5)
    assert p.done == 49 and p.steps_left() == 0 and p.left_s() == 0.0 and p.fraction() == 1.0


def test_settle_time_left_follows_the_distance_trend():
    s = SettleProgress(settle_px=1.5, settle_time_s=10.0, timeout_s=40.0)
    s.start(0.0)
    assert s.left_s() == 40.0  # no frame yet: at most the timeout
    s.on_frame(1.0, 8.0)
    assert s.left_s() == 39.0
    s.on_frame(2.0, 4.0)  # halving each second: 4 px → 1.5 px in log2(4 / 1.5) s, then 10 s within
    assert s.left_s() == pytest.approx(math.log2(4.0 / 1.5) + 10.0)
    s.on_frame(3.0, 1.0)  # within from t = 3: 10 s to go
    assert s.left_s() == 10.0
    s.on_frame(8.0, 1.2)
    assert s.left_s() == 5.0
    s.on_frame(9.0, 3.0)  # out again and not shrinking: the timeout is the bound
    s.on_frame(10.0, 3.5)
    assert s.left_s() == 30.0
    s.on_frame(39.0, 3.0)
    assert s.left_s() == pytest.approx(1.0)
