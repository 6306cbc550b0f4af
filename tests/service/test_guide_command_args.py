"""The guiding commands refuse a bad argument from a client with one line naming the command,
the argument, what it must be and what came, and change nothing (a NaN dither used to move
the lock position to NaN while guiding)."""

import math
from dataclasses import replace

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.events import Command
from fieldtui.service.args import flag, number
from fieldtui.service.session import Session

T0 = 1_800_000_000.0
NAN, INF = float("nan"), float("inf")


def test_number_and_flag_by_hand():
    assert number("c", "a", 3, 0, 5, "0 to 5") == 3.0
    assert number("c", "a", 0, 0, 5, "0 to 5") == 0.0
    assert number("c", "n", 4.0, 3, 9, "3 to 9", integer=True) == 4 and isinstance(
        number("c", "n", 4.0, 3, 9, "3 to 9", integer=True), int)
    for bad, shown in ((NAN, "nan"), (INF, "inf"), (-INF, "-inf"), (-1, "-1"), (5.5, "5.5"),
                       ("2", "'2'"), (True, "True"), (None, "None"), ([1], "[1]")):
        with pytest.raises(ValueError) as e:
            number("guide.x", "a", bad, 0, 5, "pixels from 0 to 5")
        assert str(e.value) == f"guide.x: a must be pixels from 0 to 5, not {shown}"
    with pytest.raises(ValueError, match=r"^c: a must be s above 0, not 0$"):
        number("c", "a", 0, 0, 5, "s above 0", lo_open=True)
    with pytest.raises(ValueError, match=r"^c: n must be whole, not 3.5$"):
        number("c", "n", 3.5, 3, 9, "whole", integer=True)
    assert flag("c", "w", False) is False and flag("c", "w", None, optional=True) is None
    with pytest.raises(ValueError, match=r"^c: w must be true or false, not 'no'$"):
        flag("c", "w", "no")
    with pytest.raises(ValueError, match=r"^c: w must be true or false \(or left out\), not 1$"):
        flag("c", "w", 1, optional=True)


# (command, arguments, the message): each is refused before anything is done
REFUSED = [
    ("guide.dither", {"amount_px": NAN}, "guide.dither: amount_px must be pixels from 0 to 500, not nan"),
    ("guide.dither", {"amount_px": INF}, "guide.dither: amount_px must be pixels from 0 to 500, not inf"),
    ("guide.dither", {"amount_px": -2.0}, "guide.dither: amount_px must be pixels from 0 to 500, not -2"),
    ("guide.dither", {"amount_px": "3"}, "guide.dither: amount_px must be pixels from 0 to 500, not '3'"),
    ("guide.dither", {"ra_only": "yes"}, "guide.dither: ra_only must be true or false (or left out), "
                                         "not 'yes'"),
    ("guide.dither", {"wait": 0}, "guide.dither: wait must be true or false, not 0"),
    ("guide.lock", {"dx": NAN}, "guide.lock: dx must be pixels between -480 and 480, not nan"),
    ("guide.lock", {"x": -1.0, "y": 5.0}, "guide.lock: x must be a column from 0 to 480 px, not -1"),
    ("guide.select", {"x": 10.0, "y": INF}, "guide.select: y must be a row from 0 to 360 px, not inf"),
    ("guide.select", {"x": 10.0}, "guide.select: give both x and y (px), or neither for the best star"),
    ("guide.assistant", {"minutes": NAN}, "guide.assistant: minutes must be minutes above 0, at most 240, "
                                          "not nan"),
    ("guide.assistant", {"minutes": INF}, "guide.assistant: minutes must be minutes above 0, at most 240, "
                                          "not inf"),
    ("guide.assistant", {"minutes": 0}, "guide.assistant: minutes must be minutes above 0, at most 240, "
                                        "not 0"),
    ("guide.darks", {"frames": 2}, "guide.darks: frames must be a whole number of darks per exposure "
                                   "from 3 to 1000, not 2"),
    ("guide.darks", {"frames": NAN}, "guide.darks: frames must be a whole number of darks per exposure "
                                     "from 3 to 1000, not nan"),
    ("guide.darks", {"exposures": [1.0, NAN]}, "guide.darks: exposures must be seconds above 0, at most "
                                               "600, not nan"),
    ("guide.darks", {"exposures": [-1.0]}, "guide.darks: exposures must be seconds above 0, at most 600, "
                                           "not -1"),
    ("guide.darks", {"exposures": 2.0}, "guide.darks: exposures must be a list of seconds, not 2.0"),
    ("guide.calibrate", {"then_guide": "true"}, "guide.calibrate: then_guide must be true or false, "
                                                "not 'true'"),
    ("guide.stop", {"keep_looping": NAN}, "guide.stop: keep_looping must be true or false, not nan"),
    ("guide.state", {"minutes": -INF}, "guide.state: minutes must be minutes from 0 to 1440, not -inf"),
    ("guide.dither", {"amount": 3.0}, "guide.dither: got an unexpected keyword argument 'amount'"),
]


@pytest.fixture
def small_cfg(cfg):
    return replace(cfg, guide_camera=replace(cfg.guide_camera, width=480, height=360))


async def _until(session, pred, clock_s):
    end = session.clock.now() + clock_s
    while not pred():
        assert session.clock.now() < end, session.guider.detail
        await session.clock.sleep(1.0)


async def test_guiding_commands_refuse_bad_arguments_and_nan_dither_moves_nothing(small_cfg):
    session = Session(small_cfg, VirtualClock(T0))
    session.guider.settings = replace(session.guider.settings, min_stars=1)
    await session.start()
    g = session.guider
    try:
        for name, args, message in REFUSED:
            with pytest.raises(ValueError) as e:
                await session.command(Command(name, args))
            assert str(e.value) == message, (name, args)
            assert "\n" not in str(e.value)
        assert g.worker is None and g.state == "stopped"  # nothing was started
        assert not (session.night_dir / "guide_darks").exists()

        # While guiding: a NaN, infinite or negative dither leaves the lock where it was.
        await session.command(Command("guide.start", {}))
        await _until(session, lambda: g.state == "guiding", 900)
        lock = g.worker.engine.lock
        for bad in (NAN, INF, -3.0):
            with pytest.raises(ValueError, match="amount_px must be pixels from 0 to 500"):
                await session.command(Command("guide.dither", {"amount_px": bad, "wait": False}))
            assert g.worker.engine.lock == lock and g.state == "guiding"
        # A good one still dithers by what it says (camera px: the calibration's axes are
        # within a few degrees of square, so the move is 3 px to a few per cent).
        res = await session.command(Command("guide.dither", {"amount_px": 3.0, "wait": False}))
        assert res["ok"] is True
        moved = math.dist(g.worker.engine.lock, lock)
        assert abs(moved - 3.0) < 0.15, moved
        st = await session.command(Command("guide.state", {"minutes": 0}))
        assert st["state"] in ("settling", "guiding")
    finally:
        await session.stop()
