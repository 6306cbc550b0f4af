"""Focus: live frames, a zoom box on one star with its profile, the HFR/FWHM trend with the
V-curve fit, focuser keys, and the exposure assistant's test exposure (histogram and advice).

The focus worker runs in the rig service (``service/focus.py``); this screen
only draws its events and sends commands. Every action has a key in the
footer; related keys share one footer entry (``-+ Exp``, ``[]{} Foc``).
"""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ..widgets.frameview import FrameView, decode_preview
from ..widgets.histogram import HistogramPlot
from ..widgets.profile import decode_cutout, enlarge, sparkline
from ..widgets.trend import TrendPlot
from .base import StageScreen, age_text, bar, in_worker

SMALL_STEP = 25
LARGE_STEP = 100

EXP = Binding.Group("Exp", compact=True)
GAIN = Binding.Group("Gain", compact=True)
FOC = Binding.Group("Foc", compact=True)
STAR = Binding.Group("Star", compact=True)
PLOT = Binding.Group("Plot", compact=True)


def _cam_label(camera: str) -> str:
    return "DSLR" if camera == "main_camera" else "guide"


def exposure_progress(total_s: float, elapsed_s: float) -> str:
    """'37 s of 120 s, 83 s left ▮▮▮▯▯▯▯▯▯▯' (read-out time once the exposure is over)."""
    if elapsed_s >= total_s:
        return f"{total_s:g} s exposed, reading out and measuring…"
    left = total_s - elapsed_s
    return f"{elapsed_s:.0f} s of {total_s:g} s, {left:.0f} s left {bar(elapsed_s / total_s)}"


#: a test exposure older than this says its age
TEST_OLD_S = 60.0

#: the live view's region zoom steps (1: the whole frame)
REGION_ZOOMS = (1, 2, 4)


class FocusScreen(StageScreen):
    TITLE_TEXT = "FOCUS"
    DEFAULT_CSS = """
    FocusScreen #focus-main { height: 1fr; }
    FocusScreen #focus-left { width: 2fr; min-width: 30; }
    FocusScreen #focus-right { width: 3fr; }
    FocusScreen #frame { height: 1fr; min-height: 5; border: round $border-blurred; }
    FocusScreen #star-row { height: 10; }
    FocusScreen #zoom { width: 17; height: 10; border: round $border-blurred; }
    FocusScreen #star-info { width: 1fr; height: 10; padding: 0 0 0 1; color: $text; }
    FocusScreen #trend { height: 1fr; min-height: 8; border: round $border-blurred; }
    FocusScreen #assist { height: 2fr; min-height: 10; display: none; }
    FocusScreen #assist.-shown { display: block; }
    FocusScreen #hist { height: 1fr; min-height: 7; border: round $border-blurred; }
    FocusScreen #advice { height: auto; max-height: 6; padding: 0 1; color: $text; }
    """
    BINDINGS = [
        Binding("l", "toggle_loop", "Loop", tooltip="start or stop live frames"),
        Binding("v", "switch_camera", "Cam", tooltip="switch between the DSLR's live view and the guide "
                "camera (each keeps its own trend and V curve)"),
        Binding("minus", "exposure(-1)", "Exp-", group=EXP, key_display="-", tooltip="shorter exposure"),
        Binding("plus,equals_sign", "exposure(1)", "Exp+", group=EXP, key_display="+", tooltip="longer exposure"),
        Binding("less_than_sign", "gain(-1)", "Gain-", group=GAIN, key_display="<", tooltip="lower gain or ISO"),
        Binding("greater_than_sign", "gain(1)", "Gain+", group=GAIN, key_display=">", tooltip="higher gain or ISO"),
        Binding("left_square_bracket", f"focuser({-SMALL_STEP})", "In", group=FOC, key_display="[",
                tooltip=f"focuser in {SMALL_STEP} steps"),
        Binding("right_square_bracket", f"focuser({SMALL_STEP})", "Out", group=FOC, key_display="]",
                tooltip=f"focuser out {SMALL_STEP} steps"),
        Binding("left_curly_bracket", f"focuser({-LARGE_STEP})", "In×4", group=FOC, key_display="{",
                tooltip=f"focuser in {LARGE_STEP} steps"),
        Binding("right_curly_bracket", f"focuser({LARGE_STEP})", "Out×4", group=FOC, key_display="}",
                tooltip=f"focuser out {LARGE_STEP} steps"),
        Binding("n", "star('next')", "Next", group=STAR, tooltip="follow the next star"),
        Binding("p", "star('prev')", "Prev", group=STAR, tooltip="follow the previous star"),
        Binding("a", "star('auto')", "Auto", group=STAR, tooltip="follow the brightest unsaturated star"),
        Binding("z", "zoom", "Zoom", tooltip="the followed star enlarged in the big view, and back"),
        Binding("w", "region", "Region", tooltip="zoom the live view ×2, ×4 around the followed star, and back"),
        Binding("m", "metric", "HFR/FWHM", group=PLOT, tooltip="plot HFR or FWHM"),
        Binding("o", "axis", "Time/Pos", group=PLOT, tooltip="plot against time or focuser position"),
        Binding("r", "clear", "Clr", tooltip="clear this camera's trend"),
        Binding("x", "test", "Test", tooltip="a test exposure on the main camera: histogram per colour "
                "channel and plain advice"),
        Binding("h", "hist_scale", "Log/Lin", tooltip="histogram counts on a log or linear scale"),
    ]

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.camera = "main_camera"
        self.settings: dict[str, Any] = {}
        self.points: list[list[Any]] = []
        self.best: dict[str, Any] | None = None
        self.fit: dict[str, Any] | None = None
        self.fit_hfr: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.test: dict[str, Any] | None = None
        self.zoomed = False
        self.region_zoom = 1
        self._last_n = 0
        self._test_state: str | None = None
        self._test_total: float | None = None

    # ----- layout ---------------------------------------------------------
    def body(self) -> ComposeResult:
        night = self.night
        with Horizontal(id="focus-main"):
            with Vertical(id="focus-left"):
                yield FrameView(night=night, id="frame", classes="live", stretch=True)
                with Horizontal(id="star-row"):
                    yield FrameView(night=night, id="zoom", classes="live")
                    yield Static("", id="star-info", markup=False, classes="live")
            with Vertical(id="focus-right"):
                yield TrendPlot(night=night, id="trend", classes="live")
                with Vertical(id="assist"):
                    yield HistogramPlot(night=night, id="hist", classes="live")
                    yield Static("", id="advice", markup=False, classes="live")

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self.query_one("#frame").border_title = "live"
        self.query_one("#zoom").border_title = "star"
        self._resync()
        self.show_preview()
        self.show_title()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """Once a second: the test exposure's progress and the live view's age (text only when changed)."""
        if self._test_state == "running":
            self.show_test()
        self.show_frame_title()
        self.show_test_age()

    def show_test_age(self) -> None:
        """The test exposure's histogram says how old it is once it is a minute old (its
        advice is about the sky as it was then); "stale" while the service is gone."""
        rig = self.app.rig  # type: ignore[attr-defined]
        t = float((self.test or {}).get("t") or 0.0)
        note = ""
        if t and not rig.connected:
            note = "stale"
        elif t and rig.now() - t > TEST_OLD_S:
            note = age_text(rig.now() - t)
        self.query_one(HistogramPlot).stale = note

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        rig = self.app.rig  # type: ignore[attr-defined]
        # (view keys work without the service, on what the screen holds; each only when it
        # has something to act on: a key that does nothing now is not shown)
        if action in ("metric", "axis"):
            return True
        if action == "zoom":
            return self.zoomed or bool((self.last or {}).get("star"))
        if action == "region":
            return self.region_zoom > 1 or self.camera in rig.previews
        if action == "hist_scale":
            return bool((self.test or {}).get("hist"))
        if not rig.connected:
            return False
        if action == "focuser":
            return self.settings.get("has_focuser") is not False
        if action == "star":
            return self._loop_on()
        if action == "test":
            return rig.activities.get("focus.test", {}).get("state") != "running"
        if action == "clear":
            return bool(self.points)
        return True

    def _loop_on(self) -> bool:
        return self.app.rig.activities.get("focus", {}).get("state") in ("running", "waiting")  # type: ignore[attr-defined]

    def _theme_changed(self, _theme: str) -> None:
        night = self.night
        for view in self.query(FrameView):
            view.set_night(night)
        self.query_one(TrendPlot).set_night(night)
        self.query_one(HistogramPlot).set_night(night)

    # ----- state from the service ----------------------------------------
    def _resync(self) -> None:
        self.run_worker(self._fetch_state(), group="focus-sync", exclusive=True, exit_on_error=False)

    async def _fetch_state(self, camera: str | None = None) -> None:
        args = {"camera": camera} if camera else {}
        st = await self.app.send("focus.state", **args)  # type: ignore[attr-defined]
        if not isinstance(st, dict):
            return
        self.settings = {k: st.get(k) for k in ("camera", "exposure", "gain", "running", "focuser",
                                                 "has_focuser", "selection")}
        self.camera = camera or st.get("camera") or self.camera
        self.points = [list(p) for p in st.get("trend") or []]
        self._last_n = self.points[-1][0] if self.points else 0
        self.best, self.fit, self.fit_hfr = st.get("best"), st.get("fit"), st.get("fit_hfr")
        last = st.get("last")
        self.last = last if last and last.get("camera") == self.camera else None
        if self.last:
            self._last_n = max(self._last_n, int(self.last.get("n", 0)))
        self.test = st.get("test")
        self.show_trend()
        self.show_star()
        self.show_test()
        self.show_preview()
        self.show_title()
        self.refresh_keys()

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        rig = self.app.rig  # type: ignore[attr-defined]
        events = rig.extra.get("events", {})
        if part == "connection":
            if rig.connected:
                self._resync()
            self.show_title()
        elif part == "preview":
            self.show_preview()
        elif part == "FocusFrame":
            self.on_focus_frame(events["FocusFrame"])
        elif part == "FocusSettings":
            ev = events["FocusSettings"]
            if ev.get("camera") == self.camera or self._loop_on():
                self.settings = dict(ev)
                self.camera = self.settings.get("camera") or self.camera
            self.show_title()
        elif part == "FocusTest":
            self.test = events["FocusTest"]
            self.show_test()
        elif part == "activities":
            self.show_title()
            test_state = rig.activities.get("focus.test", {}).get("state")
            if test_state != self._test_state:
                if self._test_state == "running":
                    self._test_total = None
                self._test_state = test_state
                self.show_test()

    def on_focus_frame(self, ev: dict[str, Any]) -> None:
        if ev.get("camera") and ev["camera"] != self.camera:
            return  # a frame of the other camera, still in flight after a switch
        n = int(ev.get("n", 0))
        if self._last_n and n > self._last_n + 1:
            self._resync()  # we missed frames (another screen was showing): fetch the whole trend
        self._last_n = n
        self.last = ev
        # Exposure, gain and focuser come from FocusSettings (sent on every change): a frame
        # exposed before a key press carries the old values and would flip the title back.
        changed = False
        if ev.get("point"):
            self.points.append(list(ev["point"]))
            del self.points[:-400]
            changed = True
        if ev.get("best") != self.best or ev.get("fit") != self.fit or ev.get("fit_hfr") != self.fit_hfr:
            self.best, self.fit, self.fit_hfr = ev.get("best"), ev.get("fit"), ev.get("fit_hfr")
            changed = True
        if changed:
            self.show_trend()
        self.show_star()
        self.show_title()

    # ----- drawing --------------------------------------------------------
    def show_title(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        st = self.settings
        act = rig.activities.get("focus", {})
        exp, gain = st.get("exposure"), st.get("gain")
        cam = self.camera
        g = (f"ISO{gain}" if cam == "main_camera" else f"gain {gain}") if gain is not None else ""
        if act.get("state") == "running":
            loop = "loop on"
        elif act.get("state") == "waiting":
            loop = f"loop PAUSED: {act.get('detail') or 'waiting'}"
        else:
            loop = "loop off (l)"
        parts = [f"FOCUS {_cam_label(cam)}", loop]
        if exp is not None:
            parts.append(f"{exp:g}s {g}")
        if st.get("focuser") is not None:
            parts.append(f"focuser {st['focuser']}")
        elif st.get("has_focuser") is False:
            parts.append("no focuser")
        self.set_title(" · ".join(parts))
        self.show_frame_title()

    def show_frame_title(self) -> None:
        """The live view's title: what it shows, and its age when the frame is old."""
        rig = self.app.rig  # type: ignore[attr-defined]
        frame = self.query_one("#frame")
        if self.zoomed:
            title = "star ×"
        else:
            title = "live" if self.region_zoom == 1 else f"live ×{self.region_zoom}"
            p = rig.previews.get(self.camera)
            if p is not None:
                age = rig.now() - float(p.get("t") or 0.0)
                exp = float(self.settings.get("exposure") or 1.0)
                if not rig.connected or age > max(10.0, 3 * exp + 5):
                    title += f" · {age_text(max(0.0, age))}"
        if frame.border_title != title:
            frame.border_title = title

    def show_preview(self) -> None:
        p = self.app.rig.previews.get(self.camera)  # type: ignore[attr-defined]
        if self.zoomed:
            return
        view = self.query_one("#frame", FrameView)
        if p is None:
            view.marks = []
            view.show(None)
            return
        img = decode_preview(p)
        marks = self._star_marks(p, img)
        if self.region_zoom > 1:
            img, marks = self._crop(p, img, marks)
        view.marks = marks
        view.show(img)
        self.show_frame_title()

    def _crop(self, p: dict[str, Any], img, marks):  # noqa: ANN001, ANN202 - (image, marks)
        """The region of ``img`` 1/region of its size around the followed star (else the centre)."""
        h, w = img.shape
        star = (self.last or {}).get("star")
        scale = max(1, int(p.get("scale", 1)))
        cx, cy = (star["x"] / scale, star["y"] / scale) if star else (w / 2, h / 2)
        cw, ch = max(8, w // self.region_zoom), max(8, h // self.region_zoom)
        x0 = int(min(max(0, cx - cw / 2), max(0, w - cw)))
        y0 = int(min(max(0, cy - ch / 2), max(0, h - ch)))
        moved = [(x - x0, y - y0, c) for x, y, c in marks if x0 <= x < x0 + cw and y0 <= y < y0 + ch]
        return img[y0:y0 + ch, x0:x0 + cw], moved

    def _star_marks(self, p: dict[str, Any], img) -> list[tuple[float, float, str]]:
        star = (self.last or {}).get("star")
        if not star:
            return []
        scale = max(1, int(p.get("scale", 1)))
        x, y = star["x"] / scale, star["y"] / scale
        h, w = img.shape
        # brackets either side of the star, leaving the star itself visible
        dx = max(2.0, 3.0 * max(1.0, w / max(self.query_one("#frame").size.width, 1)))
        return [(max(0.0, x - dx), y, "["), (min(w - 1.0, x + dx), y, "]")]

    def show_star(self) -> None:
        ev = self.last or {}
        star = ev.get("star")
        zoom = self.query_one("#zoom", FrameView)
        cut = decode_cutout(star) if star else None
        if cut is not None:
            zoom.show(enlarge(cut, zoom.size.width or 15, zoom.size.height or 8))
            if self.zoomed:
                frame = self.query_one("#frame", FrameView)
                frame.marks = []
                frame.show(enlarge(cut, frame.size.width, frame.size.height))
        else:
            zoom.show(None)
        lines = []
        sel = self.settings.get("selection", "auto")
        if star:
            lines.append(f"star {star['rank']}/{star['of']} {sel}")
            lines.append(f"HFR  {star['hfr']:.2f}")
            lines.append(f"FWHM {star['fwhm']:.2f}")
            lines.append("SATURATED" if star.get("saturated") else f"peak {star['peak']:.0f}")
            lines.append(f"snr  {star['snr']:.0f}")
        else:
            lines.append("no star" if ev else "no frames yet")
            lines.append(ev.get("note", "")[:40] or "l: loop")
        if self.best:
            lines.append(f"best {self.best['fwhm']:.2f}")
            if self.best.get("focuser") is not None:
                lines.append(f"  at {self.best['focuser']}")
        if self.fit:
            lines.append(f"fit  {self.fit['best']}" + ("?" if self.fit.get("extrapolated") else ""))
        elif self.settings.get("has_focuser"):
            npos = len({p[2] for p in self.points if p[2] is not None})
            lines.append(f"fit  {npos}/5 pos")
        if star:
            lines.append("prof " + sparkline(star.get("profile", [])))
        self.set_text("#star-info", "\n".join(lines[:10]))

    def show_trend(self) -> None:
        trend = self.query_one(TrendPlot)
        fit = self.fit_hfr if trend.metric == "hfr" else self.fit
        trend.set_data(self.points, self.best, fit)

    def show_test(self) -> None:
        box = self.query_one("#assist")
        rig = self.app.rig  # type: ignore[attr-defined]
        act = rig.activities.get("focus.test", {})
        running = act.get("state") == "running"
        if not self.test and not running:
            box.set_class(False, "-shown")
            return
        box.set_class(True, "-shown")
        hist = self.query_one(HistogramPlot)
        if hist.test is not self.test:
            hist.set_test(self.test)
            self.show_test_age()
        if running:
            total = self._test_total or _seconds_in(act.get("detail", ""))
            elapsed = rig.now() - float(act.get("t") or rig.now())
            text = (f"test exposure: {exposure_progress(total, elapsed)}" if total
                    else f"exposing… {act.get('detail', '')}")
        else:
            advice = (self.test or {}).get("advice") or ["exposure looks fine"]
            text = "\n".join(f"• {a}" for a in advice)
        self.set_text("#advice", text)

    # ----- actions --------------------------------------------------------
    # (commands run in workers: a key never waits for the service)
    async def _send(self, name: str, **args: Any) -> Any:
        return await self.app.send(name, **args)  # type: ignore[attr-defined]

    @in_worker
    async def action_toggle_loop(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        running = rig.activities.get("focus", {}).get("state") == "running"
        if running:
            await self._send("focus.stop")
        else:
            await self._send("focus.start", camera=self.camera)

    @in_worker
    async def action_switch_camera(self) -> None:
        self.camera = "guide_camera" if self.camera == "main_camera" else "main_camera"
        self.points, self.best, self.fit, self.fit_hfr, self.last = [], None, None, None, None
        self._last_n = 0
        self.show_preview()
        self.show_star()
        self.show_trend()
        self.show_title()
        if self._loop_on():
            await self._send("focus.start", camera=self.camera)
        # this camera's own trend and V curve, kept by the service
        await self._fetch_state(self.camera)

    @in_worker
    async def action_exposure(self, step: int) -> None:
        v = await self._send("focus.exposure", step=step, camera=self.camera)
        if v is not None:
            self.settings["exposure"] = v
            self.show_title()

    @in_worker
    async def action_gain(self, step: int) -> None:
        v = await self._send("focus.gain", step=step, camera=self.camera)
        if v is not None:
            self.settings["gain"] = v
            self.show_title()

    @in_worker
    async def action_focuser(self, steps: int) -> None:
        v = await self._send("focuser.move", steps=steps)
        if v is not None:
            self.settings["focuser"] = v
            self.show_title()

    @in_worker
    async def action_star(self, which: str) -> None:
        v = await self._send("focus.select", star=which)
        if v is not None:
            self.settings["selection"] = v
            self.show_star()

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self.show_frame_title()
        if self.zoomed:
            self.show_star()
        else:
            self.show_preview()
        self.refresh_keys()

    def action_region(self) -> None:
        self.region_zoom = REGION_ZOOMS[(REGION_ZOOMS.index(self.region_zoom) + 1) % len(REGION_ZOOMS)]
        self.zoomed = False
        self.show_preview()
        self.show_frame_title()
        self.refresh_keys()

    def action_hist_scale(self) -> None:
        hist = self.query_one(HistogramPlot)
        hist.log_scale = not hist.log_scale
        hist.changed()
        self.message(f"histogram counts on a {'log' if hist.log_scale else 'linear'} scale")

    def action_metric(self) -> None:
        trend = self.query_one(TrendPlot)
        trend.metric = "hfr" if trend.metric == "fwhm" else "fwhm"
        self.show_trend()

    def action_axis(self) -> None:
        trend = self.query_one(TrendPlot)
        trend.axis = "time" if trend.axis == "focuser" else "focuser"
        self.show_trend()

    @in_worker
    async def action_clear(self) -> None:
        if await self._send("focus.clear") is not None:
            self.points, self.best, self.fit, self.fit_hfr = [], None, None, None
            self.show_trend()
            self.show_star()

    @in_worker
    async def action_test(self) -> None:
        res = await self._send("focus.test_exposure", wait=False)
        if res is not None:
            self._test_total = float(res["exposure"])
            self.message(f"test exposure {res['exposure']:g} s ISO {res['iso']} started")
            self.show_test()


def _seconds_in(detail: str) -> float | None:
    """The exposure time in an activity's detail ("test exposure 120 s ISO 800")."""
    m = re.search(r"(\d+(?:\.\d+)?) s\b", detail)
    return float(m.group(1)) if m else None
