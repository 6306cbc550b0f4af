"""Guide exposures that change: shorter ones while settling after a dither
(``[guiding] settle_exposure_s``), on the simulator's sky with the real engine
(tests/guiding/skyloop.py, 320x240 frames)."""

from dataclasses import replace

import numpy as np
import pytest
from skyloop import SkyLoop, small_config

from fieldtui.guiding.events import GuideState, GuideStep, SettleDone, StarLost
from fieldtui.guiding.settings import GuideSettings


def _dithers(settle_exposure_s: float, n: int = 4):
    cfg = small_config(guiding={"exposure_s": 4.0, "settle_exposure_s": settle_exposure_s})
    loop = SkyLoop(cfg, replace(GuideSettings.from_config(cfg), min_stars=1))
    loop.start()
    loop.run(60.0)
    exposures = []  # (state before the frame, exposure asked for)
    for _ in range(n):
        assert loop.engine.dither()
        while loop.engine.state == GuideState.SETTLING:
            exposures.append(loop.engine.next_exposure_s)
            loop.step()
        assert loop.engine.state == GuideState.GUIDING
        exposures.append(loop.engine.next_exposure_s)
        loop.run(20.0)
    done = [e for e in loop.events if isinstance(e, SettleDone)]
    return loop, done, exposures


@pytest.fixture(scope="module")
def runs():
    return {se: _dithers(se) for se in (0.0, 1.0)}


def test_shorter_exposures_while_settling_settle_sooner(runs):
    """4-s guide exposures, dithers of 5 px: settling on 1-s frames corrects the
    step four times as often and counts the settle time on more frames (measured
    29.8 -> 18.9 s over 8 dithers)."""
    (_, long_done, _), (loop, short_done, exposures) = runs[0.0], runs[1.0]
    assert len(long_done) == len(short_done) == 4
    assert all(e.ok for e in long_done + short_done)
    t_long = np.mean([e.settle_time_s for e in long_done])
    t_short = np.mean([e.settle_time_s for e in short_done])
    assert t_short < 0.8 * t_long, (t_short, t_long)
    # 1 s while settling, back to 4 s once settled; the star is never taken for lost
    # though it gives a quarter of the flux.
    assert set(exposures[:-1]) >= {1.0} and exposures[-1] == 4.0
    assert not any(isinstance(e, StarLost) for e in loop.events)


def test_guiding_frames_keep_the_guide_exposure(runs):
    """Outside settling the frames are the guide exposure's: the frames' spacing
    while guiding is ~4 s, while settling ~1 s plus pulses."""
    loop, done, _ = runs[1.0]
    steps = [e for e in loop.events if isinstance(e, GuideStep)]
    after = np.diff([e.t for e in steps if e.t >= done[-1].t])
    during = np.diff([e.t for e in steps if done[-1].t - done[-1].settle_time_s < e.t <= done[-1].t])
    assert len(after) >= 3 and min(after) > 4.0
    assert len(during) >= 5 and np.median(during) < 2.0
    assert loop.engine.next_exposure_s == 4.0


def test_without_the_setting_settling_uses_the_guide_exposure(runs):
    assert set(runs[0.0][2]) == {4.0}
