"""The client tells the truth: keys never wait, stale panels when the service is gone and a
key to start it again, a confirmation before recalibrating while guiding (guiding resumes),
a trend per camera on the Focus screen, and the help screen."""

import asyncio
import subprocess
import sys
import time

import pytest

from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.dialogs import AlertsScreen, ConfirmScreen, HelpScreen
from fieldtui.ui.screens.focus import FocusScreen, exposure_progress

from .conftest import wait_until
from .test_focus import press


def _guiding(app):
    return app.rig.extra.get("guiding") or {}


def _pending(app):
    return [w for w in app.screen.workers if w.group == "commands" and not w.is_finished]


async def test_keys_are_handled_while_a_command_waits_for_the_service(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("focuser", {}).get("state") == "connected")
        await app.send("fault", device="focuser", fault="hang")
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, FocusScreen)
        t0 = time.monotonic()
        await pilot.press("right_square_bracket")  # focuser.move: the focuser never answers (10 s timeout)
        await pilot.pause(0.2)
        assert _pending(app), "the focuser command should still be waiting"
        await pilot.press("g")  # the next key acts at once
        assert app.current_mode == "guiding"
        assert time.monotonic() - t0 < 5.0
        assert any(not w.is_finished for w in screen.workers if w.group == "commands")
        # the failure arrives later, as one line in the message line (the key bar stays in view)
        assert await wait_until(pilot, lambda: app.message and "focuser" in app.message[0], timeout=20)
        assert app.message[1] == "error"
        line = str(app.screen.query_one("MessageLine").render())
        assert "focuser" in line and "answer" in line  # its timeout, said in one line
        assert "Quit" in str(app.screen.query_one("KeyBar").render())
        await app.send("fault", device="focuser", fault="clear")


async def test_quit_while_a_command_waits(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("focuser", {}).get("state") == "connected")
        await app.send("fault", device="focuser", fault="hang")
        await pilot.press("f", "right_square_bracket")
        await pilot.pause(0.2)
        assert _pending(app)
        t0 = time.monotonic()
        await pilot.press("q")
        assert await wait_until(pilot, lambda: not app.is_running, timeout=3)
    assert time.monotonic() - t0 < 3.0


@pytest.fixture
def stop_spawned_service(runtime):
    """Stop a service the client started (a detached process in this test's runtime folder)."""
    yield
    subprocess.run([sys.executable, "-m", "fieldtui", "service", "stop"], capture_output=True, timeout=60)


async def test_service_killed_under_the_client_then_restarted_with_R(cfg, config_file, runtime,
                                                                      stop_spawned_service):
    from fieldtui.service.daemon import serve
    ready = asyncio.Event()
    first = asyncio.ensure_future(serve(cfg, ready=ready))
    await ready.wait()
    app = FieldApp(config_path=str(config_file))
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.connected and len(app.rig.devices) == 5)
        await pilot.press("g")
        await app.send("guide.loop")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "looping")
        screen = app.screen
        assert "R" not in [k for k, _, _ in screen.query_one("KeyBar").keys()[0]]
        first.cancel()  # the service dies
        try:
            await first
        except BaseException:
            pass
        assert await wait_until(pilot, lambda: not app.rig.connected)
        await pilot.pause(0.6)
        title = str(screen.query_one(".title").render())
        assert "service not running since" in title and "looping" not in title
        assert screen.has_class("-stale")
        for w in screen.query(".live"):  # every live panel is dimmed
            assert w.styles.opacity < 1.0
        assert await wait_until(pilot, lambda: "stale" in (screen.query_one("#g-dev").border_title or ""), timeout=5)
        assert "service not running since" in str(screen.query_one("StatusBar").render())
        # No command keys while nothing answers; R (start the service) instead.
        app_keys, screen_keys = screen.query_one("KeyBar").keys()
        assert "R" in [k for k, _, _ in app_keys]
        assert not [k for k, _, _ in screen_keys if k in ("l", "a", "r", "u", "d", "x", "z")]
        # Other screens say so too.
        await pilot.press("f")
        assert "service not running since" in str(app.screen.query_one(".title").render())
        await pilot.press("g")
        await pilot.press("R")  # starts the service as its own process
        assert await wait_until(pilot, lambda: app.rig.connected and len(app.rig.devices) == 5, timeout=60)
        assert await wait_until(pilot, lambda: not app.screen.has_class("-stale"))
        await pilot.pause(0.6)
        title = str(app.screen.query_one(".title").render())
        assert "not running" not in title and "GUIDING" in title
        assert "stale" not in (app.screen.query_one("#g-dev").border_title or "")


async def test_recalibrate_while_guiding_asks_and_guiding_resumes(fast_service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("guide_port", {}).get("state") == "connected")
        await press(pilot, "g")
        await app.send("guide.start")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "guiding", timeout=60)
        cal0 = _guiding(app).get("calibration")
        assert cal0
        # r while guiding asks; any key but y keeps guiding
        await press(pilot, "r")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Guiding stops" in app.screen.question and "resumes" in app.screen.question
        await press(pilot, "n")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.5)
        assert _guiding(app)["state"] in ("guiding", "settling")
        # r, y: it calibrates, then guides again by itself
        await press(pilot, "r")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "y")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "calibrating", timeout=30)
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "guiding", timeout=120)
        assert _guiding(app).get("calibration") and _guiding(app)["calibration"] != cal0
        await app.send("guide.stop")


async def test_focus_trend_is_kept_per_camera(fast_service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("main_camera", {}).get("state") == "connected"
                                and app.rig.devices.get("guide_camera", {}).get("state") == "connected")
        await press(pilot, "f")
        screen = app.screen
        assert isinstance(screen, FocusScreen) and screen.camera == "main_camera"
        await press(pilot, "l")
        assert await wait_until(pilot, lambda: len(screen.points) >= 4, timeout=60)
        dslr_best = dict(screen.best)
        await press(pilot, "v")  # the guide camera: a trend of its own, starting empty
        assert await wait_until(pilot, lambda: screen.camera == "guide_camera")
        assert await wait_until(pilot, lambda: app.rig.extra["events"]["FocusFrame"]["camera"] == "guide_camera"), (
            app.message, [(w.name, w.state, w.error) for w in screen.workers], app.rig.extra["events"].get("FocusSettings"))
        assert await wait_until(pilot, lambda: len(screen.points) >= 4, timeout=60)
        guide_n = {p[0] for p in screen.points}
        guide_best = dict(screen.best)
        assert guide_best["fwhm"] != dslr_best["fwhm"]
        await press(pilot, "v")  # back: the DSLR's own points, none of the guide camera's
        assert await wait_until(pilot, lambda: screen.camera == "main_camera")
        assert await wait_until(pilot, lambda: len(screen.points) >= 4 and screen.best is not None)
        assert not guide_n & {p[0] for p in screen.points}
        assert screen.best["n"] == dslr_best["n"] or screen.best["fwhm"] <= dslr_best["fwhm"]
        # the service holds both: each camera's own curve
        st_dslr = await app.send("focus.state", camera="main_camera")
        st_guide = await app.send("focus.state", camera="guide_camera")
        assert not {p[0] for p in st_dslr["trend"]} & {p[0] for p in st_guide["trend"]}
        assert guide_n <= {p[0] for p in st_guide["trend"]}
        await app.send("focus.stop")


async def test_help_lists_every_key_of_the_screen(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.connected)
        await pilot.press("g")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        from fieldtui.ui.screens.guiding import GuidingScreen
        for b in GuidingScreen.BINDINGS:
            assert b.tooltip and b.tooltip in text, b.key
        assert "dither, then settle (while guiding)  (not now)" in text  # not guiding: says so
        assert "quit the client" in text
        await pilot.press("escape")
        assert app.current_mode == "guiding" and not isinstance(app.screen, HelpScreen)
        await pilot.press("f", "question_mark")
        text = str(app.screen.query_one("#help-text").render())
        assert "histogram counts on a log or linear scale" in text and "focuser in 25 steps" in text
        await pilot.press("question_mark")
        assert isinstance(app.screen, FocusScreen)
        # ! lists the alerts in full, newest first
        app.rig.alerts = [{"t": 1_800_000_000.0, "level": "info", "source": "guiding", "text": "older"},
                          {"t": 1_800_000_060.0, "level": "warning", "source": "capture", "text": "x" * 150}]
        await pilot.press("exclamation_mark")
        assert isinstance(app.screen, AlertsScreen)
        lines = str(app.screen.query_one("#alerts-text").render()).splitlines()
        assert lines[0].startswith("08:01:00 UT  warning  capture: xxx") and lines[1].endswith("guiding: older")
        assert "x" * 150 in "".join(lines)  # wrapped, not cut
        await pilot.press("exclamation_mark")  # the key that opened it closes it
        assert isinstance(app.screen, FocusScreen)
        await pilot.press("exclamation_mark", "escape")
        assert isinstance(app.screen, FocusScreen)


def test_exposure_progress_text():
    assert exposure_progress(120, 30) == "30 s of 120 s, 90 s left ▮▮▮▯▯▯▯▯▯▯"
    assert exposure_progress(120, 130).startswith("120 s exposed")


async def test_after_a_crash_R_restarts_and_the_interruption_is_reported(service_process, config_file):
    """kill -9 of the service process while its guide loop runs: panels go stale, R starts a
    new service, and what it reports as interrupted reaches the message line."""
    import os
    import signal
    from fieldtui.service import protocol
    app = FieldApp(config_path=str(config_file))
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.connected and len(app.rig.devices) == 5)
        await pilot.press("g")
        await app.send("guide.loop")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "looping")
        await pilot.pause(1.5)  # the flight recorder writes on the status change
        pid = int((protocol.socket_path().parent / "rig.lock").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        assert await wait_until(pilot, lambda: not app.rig.connected)
        assert await wait_until(pilot, lambda: app.screen.has_class("-stale"))
        await pilot.press("R")
        assert await wait_until(pilot, lambda: app.rig.connected, timeout=60)
        assert await wait_until(pilot, lambda: app.message and app.message[1] == "critical", timeout=20), app.message
        line = str(app.screen.query_one("MessageLine").render())
        assert "stopped unexpectedly" in line and "was running guiding" in line, line
        # U (shown only now) takes the interrupted guiding up again
        screen_keys = [k for k, _, _ in app.screen.query_one("KeyBar").keys()[1]]
        assert "U" in screen_keys, screen_keys
        await pilot.press("U")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") in ("looping", "guiding", "calibrating"))
        assert await wait_until(pilot, lambda: "U" not in [k for k, _, _ in app.screen.query_one("KeyBar").keys()[1]])
