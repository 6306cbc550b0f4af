"""The Capture and Calibration screens against the rig service on the virtual clock: a plan
loaded and run from the keys, paused, resumed, edited and aborted; the checklist from the
frame library and the key that adds what is missing to the plan."""

import time
import tomllib

import pytest

from fieldtui.config import load_config
from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.calibration import rule_line, set_heading
from fieldtui.ui.screens.capture import night_line, sequence_line, sparkline
from tests.capture.libframes import write_frames

from .conftest import wait_until
from .nightcheck import bad_svg_colours

PLAN = """\
[plan]
name = "screen test"

[[target]]
name = "M31"
ra_deg = 10.6847
dec_deg = 41.2690

[[target.sequence]]
type = "light"
count = 40
exposure = 30
iso = 1600

[[target.sequence]]
type = "bias"
count = 2
"""


@pytest.fixture
def cfg(data_root):
    """The simulated rig with a small main camera (fast frames) and no disk reserve."""
    return load_config(overrides={"storage": {"data_root": str(data_root), "min_free_gb": 0.0},
                                  "main_camera": {"width": 320, "height": 240}})


def test_texts():
    q = {"target": "M31", "type": "light", "done": 3, "count": 6, "exposure": 30.0, "iso": 1600, "filter": "L"}
    assert sequence_line(q) == "M31     light    3/6   ▮▮▮▮▯▯▯ 30s ISO1600 L"
    assert sequence_line(q, 40) == "M31     light    3/6   ▮▮▯ 30s ISO1600 L"
    assert "1/4000s" in sequence_line({**q, "type": "bias", "exposure": 0.00025})
    snap = {"done": 3, "planned": 6, "left_s": 3600.0, "at": 0.0}
    assert night_line(snap) == "night 3/6 ▮▮▮▮▮▯▯▯▯▯\n1 h 00 min left · ETA 01:00 UT"
    assert sparkline([1.0, 2.0, None, 3.0], [False, False, False, True]) == "▁█ ×"
    assert set_heading({"object": "M31", "count": 10, "iso": 800, "exposure": 60.0, "temperature": 13.0,
                        "filter": "", "night": "2027-01-15", "focus": 5000}) == \
        "M31 · 10 lights ISO 800 60 s 13 °C · night 2027-01-15 · focus 5000"
    line = rule_line({"rule": "darks", "state": "missing", "have": 0, "need": 10, "reason": "no darks",
                      "queued": 20})
    assert line == "  ✗ darks    missing      0/10   no darks · 20 queued in the plan"
    assert rule_line({"rule": "flats", "state": "missing", "have": 0, "need": 10,
                      "reason": "flats from 2027-01-10, lights from 2027-01-15: flats must be from the same night"},
                     60).split("\n") == ["  ✗ flats    missing      0/10   flats from 2027-01-10,",
                                         "                                 lights from 2027-01-15:",
                                         "                                 flats must be from the same",
                                         "                                 night"]


def _cap(app):
    return app.rig.extra.get("capture") or {}


def _shown(app, selector):
    return str(app.screen.query_one(selector).render())


def _state(app):
    return (app.rig.activities.get("capture") or {}).get("state")


async def _type(pilot, text):
    for ch in text:
        await pilot.press(ch)


@pytest.fixture
def slow_disk(monkeypatch):
    """Each frame takes 0.1 s (wall) to save: the simulated rig on the virtual clock would
    otherwise take the whole plan between two key presses."""
    from fieldtui.service import capture
    write = capture.write_frame

    def slow(*a, **kw):
        time.sleep(0.1)
        return write(*a, **kw)
    monkeypatch.setattr(capture, "write_frame", slow)


async def test_capture_screen_loads_runs_pauses_resumes_edits_and_aborts(fast_service, slow_disk, tmp_path,
                                                                         data_root):
    plan = tmp_path / "screen.toml"
    plan.write_text(PLAN)
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("main_camera", {}).get("state") == "connected")
        await pilot.press("c")
        assert app.current_mode == "capture"
        # shown the first time, the screen loads the default plan ([plan] section → DATA/plans/M33.toml)
        assert await wait_until(pilot, lambda: _cap(app).get("plan") == "M33")
        assert (data_root / "plans" / "M33.toml").exists()
        # o: another plan
        await pilot.press("o")
        await pilot.pause(0.2)
        inp = app.screen.query_one("#answer")
        assert inp.value.endswith("M33.toml")  # the plan shown is proposed, the plans folder listed
        assert f" 1 {data_root / 'plans' / 'M33.toml'}" in str(app.screen.query_one("AskScreen Static").render())
        inp.value = str(plan)
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: _cap(app).get("plan") == "screen test")
        assert await wait_until(pilot, lambda: "M31" in _shown(app, "#cap-plan"))
        text = _shown(app, "#cap-plan")
        assert "M31     light    0/40" in text and "night 0/42" in text and "ETA" in text, text
        # r: the plan runs and frames land
        await pilot.press("r")
        assert await wait_until(pilot, lambda: _cap(app).get("done", 0) >= 1, timeout=60)
        # p: paused after the frame being taken, nothing more lands
        await pilot.press("p")
        assert await wait_until(pilot, lambda: _state(app) == "paused", timeout=60)
        done = _cap(app)["done"]
        assert 1 <= done < 40
        ev = app.rig.extra["events"]["CaptureFrame"]
        assert ev["type"] == "light" and ev["index"] == done and (data_root / ev["path"]).exists()
        await pilot.pause(1.0)
        assert _cap(app)["done"] == done and _state(app) == "paused"
        assert "paused" in str(app.screen.query_one(".title").render())
        keys = str(app.screen.query_one("KeyBar").render())
        assert "u Resume" in keys and "p Pause" not in keys and "r Run" not in keys, keys
        # waiting for the user (a filter change without a wheel): the title says what to do
        _cap(app)["waiting"] = {"reason": "filter", "message": "put the Ha filter in", "resume": "capture.resume"}
        app.screen.show_title()
        assert "put the Ha filter in · u goes on" in str(app.screen.query_one(".title").render())
        _cap(app)["waiting"] = None
        # N on the lights: 30 frames instead of 40 (the running plan follows)
        await pilot.press("N")
        await pilot.pause(0.2)
        app.screen.query_one("#answer").value = ""
        await _type(pilot, "30")
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: _cap(app).get("planned") == 32)
        assert tomllib.loads(plan.read_text())["target"][0]["sequence"][0]["count"] == 30
        # u: goes on (frames land), p: paused again; the last frame's figures and the trend
        await pilot.press("u")
        assert await wait_until(pilot, lambda: _state(app) == "running" and not _cap(app)["paused"])
        assert await wait_until(pilot, lambda: _cap(app)["done"] > done, timeout=60)  # frames land again
        await pilot.press("p")
        assert await wait_until(pilot, lambda: _state(app) == "paused", timeout=60)
        assert done < _cap(app)["done"] < 30
        assert len(_cap(app)["recent"]) == _cap(app)["done"]
        n = _cap(app)["done"]
        assert await wait_until(pilot, lambda: f"/{n}" in _shown(app, "#cap-last"))
        last = _shown(app, "#cap-last")
        assert "HFR" in last and "stars" in last and "HFR   " in last and f"/{n}" in last, last
        # X asks; y aborts at once
        await pilot.press("X")
        await pilot.pause(0.2)
        assert "y: yes" in str(app.screen.query_one("Static").render())
        await pilot.press("y")
        assert await wait_until(pilot, lambda: _state(app) == "stopped", timeout=30)
        assert "aborted" in (app.rig.activities["capture"].get("detail") or "")
        # r resumes where the journal stopped; x stops after the frame being taken
        taken = _cap(app)["done"]
        await pilot.press("r")
        assert await wait_until(pilot, lambda: _state(app) == "running")
        await pilot.press("x")
        assert await wait_until(pilot, lambda: _state(app) == "stopped", timeout=60), (app.message, app.rig.activities["capture"], _cap(app))
        assert "aborted by the user" in app.rig.activities["capture"].get("reason", "")
        assert taken < _cap(app)["done"] < 30
        lights = sorted(p.name for p in data_root.rglob("*_light_*.fits"))
        assert len(lights) == _cap(app)["done"] and lights[0].endswith("_0001.fits")
        assert await wait_until(pilot, lambda: "° now" in _shown(app, "#cap-sky"), timeout=60)
        sky = _shown(app, "#cap-sky")
        # M31 (Dec 41.27°) from latitude 31.78° culminates at 90 - (41.27 - 31.78) = 80.5°
        assert "M31" in sky and "° now" in sky and " 80°" in sky, sky
        assert not bad_svg_colours(app.export_screenshot())
        # a: the plan panel shows the night's altitude plot (rendered by the service at the
        # panel's size); a again: the plan
        await pilot.press("a")
        assert await wait_until(pilot, lambda: "altitude °" in _shown(app, "#cap-plan"), timeout=60)
        plot = _shown(app, "#cap-plan")
        assert "M31 (meridian" in plot and "dusk" in plot and "dawn" in plot, plot
        assert "altitude tonight" in app.screen.query_one("#cap-plan").border_title
        assert "↑" not in str(app.screen.query_one("KeyBar").render())
        assert not bad_svg_colours(app.export_screenshot())
        await pilot.press("a")
        assert await wait_until(pilot, lambda: "M31     light" in _shown(app, "#cap-plan"))
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        help_text = str(app.screen.query_one("#help-text").render())
        assert "stop at once" in help_text and "frame count" in help_text and "pause after" in help_text


async def test_calibration_screen_flags_mismatched_darks_and_appends_to_the_plan(fast_service, clock_gate,
                                                                                 tmp_path, data_root):
    # Simulated time held: an idle service on the virtual clock races through hours while
    # the UI waits, and once it passes local noon the night rolls over, the lights become
    # last night's and their flats can no longer be made up (nothing to append).
    await clock_gate.hold()
    plan = tmp_path / "screen.toml"
    plan.write_text(PLAN)
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: bool(app.rig.extra.get("night")))
        night = app.rig.extra["night"]
        write_frames(data_root, night, "M42", "light", 10, exposure=60, iso=800)
        write_frames(data_root, night, "M42", "dark", 10, exposure=60, iso=800, temp=25.0)  # 12 °C warmer
        write_frames(data_root, night, "M42", "bias", 12, exposure=0.00025, iso=800)
        await app.send("capture.load", plan=str(plan))
        await pilot.press("k")
        assert app.current_mode == "calibration"
        assert await wait_until(pilot, lambda: bool((app.rig.extra.get("calibration") or {}).get("sets")))
        await pilot.pause(0.3)
        text = str(app.screen.query_one("#cal-list").render())
        assert "M42 · 10 lights ISO 800 60 s 13 °C" in text, text
        assert "✗ darks    mismatched   0/10   darks at 25 °C, lights at 13 °C" in text, text
        assert "✗ flats    missing" in text and "✓ biases   done        12/10" in text, text
        title = str(app.screen.query_one(".title").render())
        assert "1 light sets · 2 rules short" in title, title
        await pilot.press("a")
        assert await wait_until(pilot, lambda: len(tomllib.loads(plan.read_text())["target"]) == 2)
        doc = tomllib.loads(plan.read_text())
        assert doc["target"][1]["name"] == "M42"
        assert doc["target"][1]["sequence"] == [{"type": "dark", "count": 20, "exposure": 60.0, "iso": 800},
                                                {"type": "flat", "count": 20, "iso": 800}]
        assert await wait_until(pilot, lambda: "queued in the plan" in str(app.screen.query_one("#cal-list").render()))
        assert "added to screen test" in app.message[0]
        assert not bad_svg_colours(app.export_screenshot())
        # the Capture screen shows the added sequences
        await pilot.press("c")
        assert await wait_until(pilot, lambda: len(_cap(app).get("sequences") or []) == 4)
        assert await wait_until(pilot, lambda: "M42     dark     0/20" in _shown(app, "#cap-plan"))

