"""What the user sees at a glance: a confirmation over the screen it is about, the time left of
long work, the age of old data, a stop while settling that sticks."""

import html
import re

from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.dialogs import ConfirmScreen

from .conftest import wait_until
from .nightcheck import bad_svg_colours


def svg_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, in order."""
    return html.unescape(" ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg))).replace("\xa0", " ")


async def test_a_confirmation_shows_over_the_screen_it_is_about():
    app = FieldApp()  # (no service: the Equipment screen says so behind the question)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        behind = svg_text(app.export_screenshot())
        assert "EQUIPMENT" in behind and "what it answered" in behind
        await pilot.press("t")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.3)
        svg = app.export_screenshot()
        text = svg_text(svg)
        assert "Switch to the day theme?" in text and "y: yes" in text
        # the screen behind stays in view (it went blank before): its title, table and keys
        for part in ("EQUIPMENT", "what it answered", "Before the first light", "Quit"):
            assert part in text, part
        assert not bad_svg_colours(svg)  # still only reds on black at night
        await pilot.press("n")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.theme == "fieldtui-night"


def _guiding(app):
    return app.rig.extra.get("guiding") or {}


async def test_calibration_and_settling_report_time_left(fast_service):
    """Every guider state the client receives while calibrating or settling carries progress;
    the first calibration estimate predicts its end within a third of its length."""
    app = FieldApp()
    seen = []
    async with app.run_test(size=(80, 24)) as pilot:
        apply = app.rig.apply

        def spy(ev):
            part = apply(ev)
            g = _guiding(app)
            if g.get("state") in ("calibrating", "settling"):
                seen.append(dict(g.get("progress") or {}, state=g["state"]))
            return part
        app.rig.apply = spy
        assert await wait_until(pilot, lambda: app.rig.devices.get("guide_port", {}).get("state") == "connected")
        await pilot.press("g")
        await app.send("guide.start")  # no calibration yet: it calibrates first
        assert await wait_until(pilot, lambda: _guiding(app).get("state") == "guiding", timeout=60)
        await app.send("guide.dither")  # waits until settled
        await app.send("guide.stop")
    cal = [p for p in seen if p["state"] == "calibrating" and p.get("done")]
    assert len(cal) > 20 and all(p["what"] == "calibrating" for p in cal)
    assert [p["done"] for p in cal] == sorted(p["done"] for p in cal)
    start, end = cal[0]["since"], cal[-1]["at"]
    first = next(p for p in cal if p["done"] >= 3)
    assert abs(first["at"] + first["left_s"] - end) < (end - start) / 3, (first, end, start)
    assert cal[-1]["left_s"] < first["left_s"] and cal[-1]["fraction"] > 0.9
    settle = [p for p in seen if p["state"] == "settling" and p.get("what") == "settling"]
    assert settle, seen[-5:]
    assert all(0 <= p["left_s"] <= 40.0 for p in settle)  # never beyond the settle timeout
    assert settle[-1]["left_s"] <= 10.0 + 1.0  # within the threshold: the rest of the 10 s


async def test_guiding_title_says_time_left_from_the_guider_progress():
    import time as _time
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        screen = app.screen
        now = _time.time()
        app.rig.connected = True  # (no service: the state is set by hand, then drawn at once)
        app.rig.extra["guiding"] = {"state": "calibrating", "detail": "calibrating North step 3, 4.2 px",
                                    "progress": {"what": "calibrating", "since": now - 42.0, "at": now,
                                                 "left_s": 70.0, "fraction": 0.4}}
        screen.show_text()
        title = str(screen.query_one(".title").render())
        assert "calibrating 42 s · about 1:10 left ▮▮▮▮▯▯▯▯▯▯" in title, title
        screen._progress_shown = None
        app.rig.extra["guiding"] = {"state": "settling", "detail": "dither 5.0 px, settling",
                                    "progress": {"what": "settling", "since": now - 5.0, "at": now,
                                                 "left_s": 12.0, "distance_px": 2.34, "settle_px": 1.5}}
        screen.show_text()
        title = str(screen.query_one(".title").render())
        assert "settling 5 s · about 12 s left (2.3 px, need 1.5)" in title, title


async def test_panels_whose_data_is_old_say_its_age():
    """Hand-set state, drawn at once (no service: set connected, draw, read, in one go)."""
    import time as _time
    from fieldtui.ui.screens.base import hhmm
    from fieldtui.ui.widgets.guideplot import Bullseye, DeviationPlot, PulsePlot
    from fieldtui.ui.widgets.histogram import HistogramPlot
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        rig = app.rig
        await pilot.press("g")
        g = app.screen
        now = _time.time()
        rig.connected = True
        rig.extra["guiding"] = {"state": "looping", "exposure_s": 1.0}
        g.points.extend([[now - 41.0, 0.1, -0.2, 30, 0]])
        g.star = {"t": now - 125.0}
        g.show_ages()
        for w in (DeviationPlot, PulsePlot, Bullseye):
            panel = g.query_one(w)
            title = panel.border_title
            # the age first, and the title shortened to fit the panel at 80 columns
            assert title.startswith("41 s old") and len(title) <= panel.size.width - 4, (w, title)
        assert g.query_one("#g-star").border_title == "2 min old"  # a 16-column panel: the age only
        g.points.append([now - 1.0, 0.1, -0.2, 30, 0])  # a fresh point (1 s exposures): no age
        g.star = {"t": now - 1.0}
        g.show_ages()
        assert not g.query_one(DeviationPlot).stale and g.query_one("#g-star").border_title == "star"
        rig.connected = False
        g.show_ages()
        assert g.query_one(DeviationPlot).border_title.startswith("stale · ")
        # the test exposure's histogram, once a minute old
        await pilot.press("f")
        f = app.screen
        rig.connected = True
        f.test = {"t": rig.now() - 600.0, "exposure": 120.0, "iso": 800, "hist": {}, "advice": []}
        f.show_test_age()
        assert f.query_one(HistogramPlot).stale == "10 min old"
        f.test["t"] = rig.now() - 20.0
        f.show_test_age()
        assert f.query_one(HistogramPlot).stale == ""
        # the Equipment table's answers: when they were checked, and how long ago
        await pilot.press("e")
        e = app.screen
        t = rig.now() - 754.0
        rig.connected = True
        rig.check = {"ok": True, "checks": [], "attached": [], "t": t}
        e.show_ages()
        assert e.query_one("#devices").border_title == f"answers from the check at {hhmm(t)} UT · 13 min old"
        # a service that says nothing, not even its heartbeat, for more than 30 s: stale
        rig.snapshot = {"devices": {}}
        rig.last_news = _time.monotonic() - 45.0
        e._watch_news()
        title = str(e.query_one(".title").render())
        assert "no news from the rig service for 45 s" in title and e.has_class("-stale")
        rig.last_news = _time.monotonic()
        e._watch_news()
        assert "no news" not in str(e.query_one(".title").render()) and not e.has_class("-stale")
        rig.connected = False


async def test_focus_view_keys_show_only_with_something_to_act_on():
    app = FieldApp()  # (no service: only the view keys can apply)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f")
        f = app.screen

        def shown():
            f.refresh_keys()
            return [k for k, _, _ in f.query_one("KeyBar").keys()[1]]
        assert shown() == ["mo"]  # no star to enlarge, no live view to zoom, no histogram
        f.last = {"star": {"x": 10.0, "y": 12.0}}
        app.rig.previews["main_camera"] = {"t": 0.0}
        f.test = {"hist": {"R": [1, 2, 3]}}
        assert shown() == ["z", "w", "mo", "h"]
        f.last, f.test = None, None
        del app.rig.previews["main_camera"]
        f.region_zoom, f.zoomed = 2, True  # zoomed in: the keys to zoom back stay
        assert shown() == ["z", "w", "mo"]


def test_a_note_keeps_its_room_in_a_narrow_title():
    from fieldtui.ui.widgets.plot import with_note
    title = "RA bright, Dec dim · ±2″ · 10 min"
    assert with_note("", title, 20) == title
    assert with_note("41 s old", title, 80) == "41 s old · RA bright, Dec dim · ±2″ · 10 min"
    assert with_note("41 s old", title, 40) == "41 s old · RA bright, Dec dim · ±2″"
    assert with_note("41 s old", title, 33) == "41 s old · RA bright, Dec dim"
    assert with_note("41 s old", title, 20) == "41 s old"
    assert with_note("stale", title, 0) == "stale · " + title  # not laid out yet
