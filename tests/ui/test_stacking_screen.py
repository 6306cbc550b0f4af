"""The Stacking screen against the rig service: a set added by key, its progress,
per-frame FWHM, frames left out and the preview in the terminal."""

import numpy as np

from fieldtui.stacking import synth
from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.stacking import FwhmPlot, duration, metric_points, progress_text, zoom_crop
from fieldtui.ui.widgets.frameview import FrameView
from tests.stacking.conftest import random_mats, write_set

from .conftest import wait_until
from .nightcheck import bad_svg_colours


def test_texts_and_zoom_crop():
    assert duration(None) == "…" and duration(42.4) == "42 s" and duration(200) == "3 min 20 s"
    assert duration(3900) == "1 h 05 min"
    t = progress_text({"name": "m31", "stage": "register", "done": 5, "total": 10, "left_s": 12.0})
    assert t.startswith("m31 · register 5/10 ▮▮▮▮▮▯▯▯▯▯") and "12 s left" in t
    img = np.arange(64).reshape(8, 8)
    assert zoom_crop(img, 1) is img
    assert zoom_crop(img, 2).tolist() == img[2:6, 2:6].tolist()
    frames = [{"fwhm": 3.1, "stars": 40, "used": True}, {"fwhm": 5.0, "stars": 12, "used": False},
              {"fwhm": None, "stars": 0, "used": False}, {"fwhm": float("nan"), "stars": 38, "used": True}]
    assert metric_points(frames, "fwhm") == ([(1, 3.1)], [(2, 5.0)])
    assert metric_points(frames, "stars") == ([(1, 40.0), (4, 38.0)], [(2, 12.0), (3, 0.0)])
    assert metric_points(frames, "noise") == ([], [])


async def test_add_a_night_by_key_then_progress_result_rejected_and_preview(service, tmp_path):
    night = tmp_path / "night"
    cam = synth.Camera(width=320, height=240, seed=41)
    write_set(night, cam, synth.Field.random(cam, n=60, seed=42), random_mats(cam, 5, seed=43), n_cal=3)
    (night / "light" / "light_999.fits").write_bytes(b"not a fits file")
    app = FieldApp()
    async with app.run_test(size=(100, 32)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.connected)
        await pilot.press("s")
        assert app.current_mode == "stacking"
        assert "no set stacked yet" in str(app.screen.query_one("#st-rejected").render())
        await pilot.press("a")
        await pilot.pause(0.2)
        for ch in str(night):
            await pilot.press(ch)
        await pilot.press("enter")
        saw_running = []

        def done():
            s = app.rig.extra.get("stacking") or {}
            if s.get("current"):
                saw_running.append(str(app.screen.query_one(".title").render()))
            return bool(s.get("results"))
        assert await wait_until(pilot, done, timeout=120)
        await pilot.pause(1.0)
        r = app.rig.extra["stacking"]["results"][-1]
        assert r["frames_used"] == 5, r
        assert any("STACKING · running" in t for t in saw_running), saw_running
        rej = str(app.screen.query_one("#st-rejected").render())
        assert "light_999.fits:" in rej
        plot = app.screen.query_one(FwhmPlot)
        assert plot.draws > 0 and "5 stacked" in plot.border_title and "1 left out" not in plot.border_title
        assert plot.border_title.startswith("FWHM per frame (px)")
        # m steps through the per-frame metrics: roundness, stars, background, noise, FWHM
        frames = r["frames"]
        for what in ("roundness per frame", "stars per frame", "background per frame (ADU)",
                     "noise per frame (ADU)", "FWHM per frame (px)"):
            await pilot.press("m")
            assert await wait_until(pilot, lambda: plot.border_title.startswith(what), timeout=5), plot.border_title
        assert all(isinstance(f.get(k), (int, float)) for f in frames if f["used"]
                   for k in ("roundness", "stars", "background", "noise"))
        med_bg = float(np.median([f["background"] for f in frames if f.get("background") is not None]))
        assert med_bg > 0
        view = app.screen.query_one("#st-preview", FrameView)
        assert view._img is not None and max(view._img.shape) <= 240
        full = view._img.shape
        await pilot.press("z")
        assert view._img.shape == (full[0] // 2, full[1] // 2) and "×2" in view.border_title
        assert not bad_svg_colours(app.export_screenshot())
        queue = str(app.screen.query_one("#st-queue").render())
        assert "5 frames in" in queue
        # while the capture takes a set, the preview is its live stack (as the worker's snapshot says)
        snap = app.rig.extra["stacking"]
        snap["live"] = {"name": "M31_30s live", "frames": 3, "running": True, "masters": ["bias"],
                        "last": {"file": "/n/L_3.fits", "accepted": True}, "thumb": r["thumb"]}
        app.screen.show_all()
        assert "3 frames" in view.border_title and "M31_30s live" in view.border_title
        assert "live M31_30s live: 3 frames" in str(app.screen.query_one("#st-queue").render())
        snap["live"]["running"] = False   # the set is over: back to the newest stack
        app.screen.show_all()
        assert "3 frames" not in view.border_title and r["name"] in view.border_title
        # the result is stamped with its time; shown 12 minutes later the preview says its age
        assert abs(r["at"] - app.rig.now()) < 60
        r["at"] = app.rig.now() - 720
        app.screen._thumb_key = None
        app.screen.show_all()
        assert view.border_title.endswith("· 12 min old"), view.border_title
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        help_text = str(app.screen.query_one("#help-text").render())
        assert "queue a set" in help_text and "zoom the preview" in help_text


def test_live_text():
    from fieldtui.ui.screens.stacking import live_text
    assert live_text(None) == "live: no set being captured"
    t = live_text({"name": "M31_30s live", "frames": 3, "running": True, "masters": ["bias", "dark"],
                   "last": {"file": "/d/L_0004.fits", "accepted": False, "reason": "FWHM 6.1 px above 5"}})
    assert t == "live M31_30s live: 3 frames · last L_0004.fits left out: FWHM 6.1 px above 5 · masters: bias, dark"
    assert live_text({"name": "x", "frames": 2, "running": False}).endswith("no masters yet (set finished)")
