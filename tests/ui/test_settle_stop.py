"""`x`, `y` on the Guiding screen while the guider settles after a dither stops guiding for good:
back to looping, and no guide step (no correction) after it. The settle is made long (600 s)
so the keys surely land in it; the same was tried on the real clock with the default settle."""

import pytest

from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.dialogs import ConfirmScreen

from .conftest import wait_until


@pytest.fixture
def cfg(data_root):
    from fieldtui.config import load_config
    return load_config(overrides={"storage": {"data_root": str(data_root)},
                                  "guiding": {"settle_time_s": 600.0, "settle_timeout_s": 1200.0}})


def _guiding(app):
    return app.rig.extra.get("guiding") or {}


async def test_stop_while_settling_sticks(fast_service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("guide_port", {}).get("state") == "connected")
        await pilot.press("g")
        await app.send("guide.start")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "guiding", timeout=60)
        await pilot.press("d")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "settling", timeout=10)
        await pilot.press("x")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Stop guiding?" in app.screen.question
        await pilot.press("y")
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "looping", timeout=10)
        n = app.rig.extra["events"]["GuidePoint"]["n"]
        frames = (await app.send("guide.state", minutes=1))["frames"]
        # more frames come (the loop goes on), but no guide step: nothing is corrected any more
        for _ in range(100):
            await pilot.pause(0.2)
            st = await app.send("guide.state", minutes=1)
            if st["frames"] > frames + 10:
                break
        assert st["frames"] > frames + 10, st["frames"]
        assert st["state"] == "looping" and st["detail"] == "guiding stopped"
        assert app.rig.extra["events"]["GuidePoint"]["n"] == n
        await app.send("guide.stop")
