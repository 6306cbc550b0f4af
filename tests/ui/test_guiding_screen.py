"""The Guiding screen against the rig service on the virtual clock (simulated time runs fast).

Simulated time is held (``clock_gate``) until the guide loop runs: an idle service on the
virtual clock otherwise races through hours while the app starts (1 to 3 hours of unguided
drift were logged before the first key, more under load), and the field drifts on the
guide camera meanwhile. Once the loop runs, time moves exposure by exposure."""

import os
import re

from fieldtui.ui.app import FieldApp
from fieldtui.ui.widgets.guideplot import Bullseye, DeviationPlot, PulsePlot

from .conftest import open_guiding, wait_until
from .nightcheck import bad_svg_colours






def _guiding(app):
    return app.rig.extra.get("guiding") or {}


async def test_guiding_keys_loop_calibrate_guide_and_it_keeps_running_elsewhere(fast_service, clock_gate):
    await clock_gate.hold()
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_guiding(pilot, app)
        await pilot.press("l")
        await clock_gate.release()  # the loop runs: time moves exposure by exposure
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "looping")
        await pilot.press("a")
        assert await wait_until(pilot, lambda: _guiding(app).get("star") is not None
                                or (app.rig.extra.get("events", {}).get("GuideStar") or {}).get("star"))
        await pilot.press("r")
        # (on the virtual clock a calibration takes about a second: wait for its result)
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "looping"
                                and _guiding(app).get("calibration") is not None, timeout=60)
        await pilot.press("u")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "guiding")
        # Some simulated minutes of guiding, then the statistics on the screen.
        assert await wait_until(pilot, lambda: len(app.screen.points) > 150, timeout=60)
        g = _guiding(app)
        assert g["rms_total_arcsec"] is not None and g["rms_total_arcsec"] < 2.0
        await pilot.pause(1.0)
        stats = str(app.screen.query_one("#g-stats").render())
        tot = re.search(r"Tot (\d+\.\d\d)", stats)
        assert tot and 0.0 < float(tot.group(1)) < 2.0, stats
        assert "SNR" in stats and "cal " in stats and "ok" in stats
        title = str(app.screen.query_one(".title").render())
        assert "guiding" in title
        dev = app.screen.query_one(DeviationPlot)
        assert dev.draws > 0 and "min" in (dev.border_title or "")
        draws = dev.draws
        # Other screens and back: the guider went on without the screen.
        await pilot.press("e")
        assert app.current_mode == "equipment"
        n_before = app.rig.extra["events"]["GuidePoint"]["n"]
        assert await wait_until(pilot, lambda: app.rig.extra["events"]["GuidePoint"]["n"] > n_before + 30)
        assert _guiding(app)["state"] in ("guiding", "settling")
        await pilot.press("g")
        assert app.current_mode == "guiding"
        assert await wait_until(pilot, lambda: len(app.screen.points) > 200)
        assert await wait_until(pilot, lambda: app.screen.query_one(DeviationPlot).draws > draws)
        # A dither, then stop back to looping, then stop the loop.
        await pilot.press("d")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "settling"
                                or "settl" in _guiding(app).get("detail", ""))
        # (stop once settled: a stop while settling can race the engine's settle in its thread)
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "guiding", timeout=60)
        await pilot.press("x", "y")  # stop guiding: it asks first
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "looping")
        await pilot.press("x")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "stopped")
        bar = str(app.screen.query_one("StatusBar").render())
        assert "guide stopped" in bar


async def test_guiding_screen_is_night_safe_with_plots(fast_service, clock_gate):
    await clock_gate.hold()
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("guide_port", {}).get("state") == "connected")
        await pilot.press("g")
        await app.send("guide.start")
        await clock_gate.release()  # guiding runs: time moves exposure by exposure
        assert await wait_until(pilot, lambda: len(app.screen.points) > 60, timeout=60)
        await pilot.press("minus")  # a fixed scale, then a shorter span
        await pilot.press("less_than_sign")
        await pilot.pause(1.2)
        for w in (DeviationPlot, PulsePlot, Bullseye):
            assert app.screen.query_one(w).draws > 0
        svg = app.export_screenshot()
        if os.environ.get("FIELDTUI_SHOTS"):
            with open(os.path.join(os.environ["FIELDTUI_SHOTS"], "guiding-night.svg"), "w") as f:
                f.write(svg)
        assert not bad_svg_colours(svg)
        # day and back: the plots follow the theme, and night is red again
        await pilot.press("t", "y")
        await pilot.pause(0.6)
        assert not app.screen.query_one(DeviationPlot).night
        await pilot.press("t")
        await pilot.pause(1.2)
        assert app.screen.query_one(DeviationPlot).night
        assert not bad_svg_colours(app.export_screenshot())
        # the footer names the actions that apply while guiding, and only those
        bar = "\n".join(str(app.screen.query_one("KeyBar").render()).splitlines()[1:])  # the screen's keys
        for label in ("Cal", "Dith", "Stop", "Scale", "Min"):
            assert label in bar, bar
        for label in ("Loop", "Star", "Guide", "Uncal", "Assist", "Darks"):
            assert label not in bar, bar
        await app.send("guide.stop")
