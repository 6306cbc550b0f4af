"""The Guiding screen's D (guide dark library) and A (guiding assistant) keys against the rig
service on the virtual clock: each asks first, its work reaches the service (darks stored per
exposure and gain; the assistant's findings, against the simulator's settings) and the screen,
and neither is offered while guiding (nothing to throw away). One app for both keys, with a
320x240 guide camera, keeps it to a few seconds.

Simulated time runs only while the test waits for the darks and the assistant
(``clock_gate``): an idle service on the virtual clock otherwise races through hours while
the UI waits in real time, and the unguided mount's drift (4′ of polar error) carries the
field off the small guide camera, so the assistant found no star some runs."""

import re

import numpy as np
import pytest

from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.dialogs import ConfirmScreen
from fieldtui.ui.widgets.status import status_text

from .conftest import open_guiding, wait_until


@pytest.fixture
def cfg(data_root):
    from fieldtui.config import load_config
    return load_config(overrides={"storage": {"data_root": str(data_root)},
                                  "guide_camera": {"width": 320, "height": 240},
                                  "guiding": {"min_stars": 1}})


def _guiding(app):
    return app.rig.extra.get("guiding") or {}


def _texts(app):
    return [a.get("text", "") for a in app.rig.alerts]


def _bar_guide(app):
    """The status bar's guiding part (state, then the guiding RMS when there is one)."""
    return next(p for p in status_text(app.rig, 200).split("│") if p.strip().startswith("guide")).strip()


def _finding(app, pattern):
    for t in _texts(app):
        m = re.search(pattern, t)
        if m:
            return float(m.group(1)), (float(m.group(2)) if m.lastindex and m.lastindex > 1 else None)
    raise AssertionError(f"no finding {pattern!r} in {_texts(app)}")


async def test_darks_and_assistant_keys(fast_service, clock_gate, cfg, tmp_path):
    folder = tmp_path / "state" / "guide_darks"  # the runtime fixture's state folder
    gate = clock_gate
    await gate.hold()  # simulated time stands still but while the darks and the assistant run
    app = FieldApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_guiding(pilot, app)

        # D asks first (cap the scope); y builds the library.
        await pilot.press("D")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "guide dark library" in app.screen.question and "Cap the guide scope" in app.screen.question
        assert not folder.exists()  # nothing taken before the answer
        await pilot.press("y")
        assert await gate.wait_until(lambda: "guide darks stored" in (app.message or ("",))[0],
                                     timeout=60)
        # One file per exposure at the guiding gain (50), each a 240x320 master dark with its
        # hot-pixel map; the message line says what the files hold.
        names = sorted(p.name for p in folder.iterdir())
        assert names == [f"guide_dark_{ms}ms_g50.npz" for ms in (1000, 2000, 4000, 500)]
        shown = dict(re.findall(r"([\d.]+) s (\d+)", app.message[0]))
        for ms in (500, 1000, 2000, 4000):
            with np.load(folder / f"guide_dark_{ms}ms_g50.npz") as z:
                exposure, gain, frames, _ = z["meta"]
                assert (exposure, gain, frames) == (ms / 1000.0, 50, 10)
                assert z["dark"].shape == (240, 320) and z["bad"].shape == (240, 320)
                assert int(shown[f"{ms / 1000.0:g}"]) == int(z["bad"].sum())
        # the simulator's 60 hot pixels: the longest dark maps nearly all, never more
        assert 48 <= int(shown["4"]) <= cfg.sim.hot_pixels
        assert any("Guide dark library built at gain 50" in t for t in _texts(app))
        assert await wait_until(pilot, lambda: "guide darks ready" in str(app.screen.query_one(".title").render()),
                                timeout=3)

        # A asks first; y starts it: it calibrates, then watches the star unguided.
        await pilot.press("A")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "guiding assistant" in app.screen.question and "unguided" in app.screen.question
        await pilot.press("y")
        assert await gate.wait_until(lambda: _guiding(app).get("state") in ("calibrating", "assistant"),
                                     timeout=20)
        # A second one is refused while it runs, with why (the key is not offered while
        # guiding: test_guiding_screen checks the key bar); the first goes on.
        assert await app.send("guide.assistant", minutes=10.0) is None
        assert "the guiding assistant is already running" in app.message[0]
        # While it watches, the title says the assistant measures and how long is left, never
        # "guiding"; the status bar shows no RMS (nothing is guided).
        assert await gate.wait_until(lambda: _guiding(app).get("state") == "assistant", timeout=60)
        # (the screen recomputes the progress at most once a wall second: the calibration's
        # "assistant 2:02", with nothing left to say, may stand for up to a second)
        await gate.run_for(3.0)
        watching = r"GUIDING · assistant (\d+ s|\d+:\d\d) · about (\d+ s|\d+:\d\d) left"
        await wait_until(pilot, lambda: re.search(watching, str(app.screen.query_one(".title").render())),
                         timeout=5)
        title = str(app.screen.query_one(".title").render())
        assert re.search(watching, title), title
        assert "guiding assistant: measuring" in title and not re.search(r"· guiding( ·|$)", title)
        assert _bar_guide(app) == "guide assistant"
        assert await gate.wait_until(lambda: "guiding assistant done" in _guiding(app).get("detail", ""),
                                     timeout=120)
        # The findings, against the simulator's settings (within 20 %).
        sim = cfg.sim
        assert _finding(app, r"^Guiding assistant: 10\.0 min unguided, (\d+) frames of 1 s")[0] >= 590
        polar, _ = _finding(app, r"^Polar alignment error about ([\d.]+)′")
        assert abs(polar - sim.polar_error_arcmin) <= 0.2 * sim.polar_error_arcmin
        pe, period = _finding(app, r"^Periodic error ±([\d.]+)″ .* over ([\d.]+) s")
        assert abs(pe - sim.pe_amplitude_arcsec) <= 0.2 * sim.pe_amplitude_arcsec
        assert abs(period - sim.pe_period_s) <= 0.2 * sim.pe_period_s
        backlash, _ = _finding(app, r"^Dec backlash about ([\d.]+)″")
        assert abs(backlash - sim.backlash_arcsec) <= 0.2 * sim.backlash_arcsec
        assert any(t.startswith("Recommended: ") for t in _texts(app))
        # On screen: the title says it is done and where the findings are; ! lists them.
        title = lambda: str(app.screen.query_one(".title").render())  # noqa: E731
        assert await wait_until(pilot, lambda: "guiding assistant done" in title(), timeout=5)
        # Afterwards the unguided watch's RMS is not shown as guiding RMS.
        assert _guiding(app).get("rms_total_arcsec") is None
        assert _bar_guide(app) == "guide stopped"
        await pilot.press("exclamation_mark")
        assert await wait_until(pilot, lambda: app.screen.query("#alerts-text"))
        listed = str(app.screen.query_one("#alerts-text").render())
        assert "Polar alignment error about" in listed and "Recommended:" in listed
