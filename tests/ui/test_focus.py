"""The Focus screen against the rig service on the simulated rig (virtual clock)."""

import asyncio

from textual import events

from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.focus import SMALL_STEP, FocusScreen
from fieldtui.ui.widgets.histogram import HistogramPlot
from fieldtui.ui.widgets.trend import TrendPlot

from .conftest import wait_until
from .nightcheck import bad_svg_colours






async def press(pilot, *keys):
    """Key presses through the driver, as ``pilot.press`` sends them, without its idle waits.

    ``pilot.press`` waits up to a second for the process to go idle after each key, and
    with the simulated rig running flat out on the virtual clock it never does.
    """
    app = pilot.app
    for key in keys:
        ev = events.Key(key, _CHARS.get(key, key if len(key) == 1 else None))
        ev.set_sender(app)
        app._driver.send_message(ev)
        await asyncio.sleep(0.02)
    await pilot.pause(0.05)


_CHARS = {"plus": "+", "minus": "-", "left_square_bracket": "[", "right_square_bracket": "]",
          "left_curly_bracket": "{", "right_curly_bracket": "}"}


async def _focus_screen(app, pilot) -> FocusScreen:
    assert await wait_until(pilot, lambda: app.rig.devices.get("focuser", {}).get("state") == "connected"
                            and app.rig.devices.get("main_camera", {}).get("state") == "connected")
    await press(pilot, "f")
    await pilot.pause(0.1)
    screen = app.screen
    assert isinstance(screen, FocusScreen)
    return screen


async def test_focuser_sweep_through_best_focus_gives_the_v_curve_minimum(cfg, fast_service):
    best = cfg.sim.best_focus
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _focus_screen(app, pilot)
        await press(pilot, "l")
        assert await wait_until(pilot, lambda: screen.last is not None)
        for _ in range(3):  # 2 s -> 5 s: brighter stars, steadier sizes
            await press(pilot, "plus")
        await press(pilot, "left_curly_bracket", "left_curly_bracket")  # 5000 -> 4800, well outside focus
        assert await wait_until(pilot, lambda: screen.settings.get("focuser") == 4800)
        await press(pilot, "r")  # a fresh trend for the sweep
        assert await wait_until(pilot, lambda: all(p[2] == 4800 for p in screen.points))
        pos = 4800
        while pos < best + 220:
            assert await wait_until(pilot, lambda: sum(1 for p in screen.points if p[2] == pos) >= 2), pos
            await press(pilot, "right_square_bracket")
            pos += SMALL_STEP
            assert await wait_until(pilot, lambda: screen.settings.get("focuser") == pos)
        assert await wait_until(pilot, lambda: sum(1 for p in screen.points if p[2] == pos) >= 2)
        assert await wait_until(pilot, lambda: screen.fit is not None and screen.fit["positions"] >= 20)
        await press(pilot, "l")  # stop the loop: the fit holds still
        assert await wait_until(pilot, lambda: app.rig.activities["focus"]["state"] == "stopped")
        await pilot.pause(0.6)  # the plot redraws at most twice a second
        fit = screen.fit["best"]
        # the screen shows it: in the star panel and on the trend's title
        assert f"fit  {fit}" in str(screen.query_one("#star-info").render())
        assert f"fit {fit}" in str(screen.query_one(TrendPlot).border_title)
        assert abs(fit - best) <= SMALL_STEP, (fit, best, screen.fit)


async def test_focus_screen_is_night_safe_with_trend_and_histogram(cfg, fast_service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _focus_screen(app, pilot)
        await press(pilot, "l")
        assert await wait_until(pilot, lambda: len(screen.points) >= 2)
        await press(pilot, "right_curly_bracket")
        assert await wait_until(pilot, lambda: screen.settings.get("focuser") == 5100)
        assert await wait_until(pilot, lambda: len(screen.points) >= 4)
        await press(pilot, "x")
        assert await wait_until(pilot, lambda: screen.test is not None and screen.test.get("advice"), timeout=30)
        assert screen.query_one("#assist").has_class("-shown")
        await press(pilot, "z")  # zoomed star view and back
        await pilot.pause(0.6)
        hist = screen.query_one(HistogramPlot)
        assert hist.test is not None and hist.draws >= 1
        assert set(hist.test["hist"]) == {"R", "G1", "G2", "B"}
        advice = str(screen.query_one("#advice").render())
        assert advice.startswith("• ")
        svg = app.export_screenshot()
        assert not bad_svg_colours(svg), bad_svg_colours(svg)
        # the plots really drew their series (red RGB) into the screenshot
        assert "#ff0000" in svg and "#d70000" in svg
        await press(pilot, "t", "y")  # day theme (confirmed): plots and frames follow
        await pilot.pause(0.6)
        assert not screen.query_one(TrendPlot).night and not screen.query_one("#frame").levels[1].startswith("#5f")
        assert bad_svg_colours(app.export_screenshot())
        await press(pilot, "t")
