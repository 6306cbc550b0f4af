"""Focus: live frames, a zoom box on one star with its profile, the HFR/FWHM trend with the
V-curve fit, focuser keys, and the exposure assistant's test exposure (histogram and advice).

The focus worker runs in the rig service (``service/focus.py``); this screen
only draws its events and sends commands. Every action has a key in the
footer; related keys share one footer entry (``-+ Exp``, ``[]{} Foc``).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ..widgets.frameview import FrameView, decode_preview
from ..widgets.histogram import HistogramPlot
from ..widgets.profile import decode_cutout, enlarge, sparkline
from ..widgets.trend import TrendPlot
from .base import StageScreen

SMALL_STEP = 25
LARGE_STEP = 100

EXP = Binding.Group("Exp", compact=True)
GAIN = Binding.Group("Gain", compact=True)
FOC = Binding.Group("Foc", compact=True)
STAR = Binding.Group("Star", compact=True)
PLOT = Binding.Group("Plot", compact=True)


def _cam_label(camera: str) -> str:
    return "DSLR" if camera == "main_camera" else "guide"


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
    FocusScreen #trend { height: 1fr; min-height: 6; border: round $border-blurred; }
    FocusScreen #assist { height: 11; display: none; }
    FocusScreen #assist.-shown { display: block; }
    FocusScreen #hist { height: 7; border: round $border-blurred; }
    FocusScreen #advice { height: 4; padding: 0 1; color: $text; }
    FocusScreen Footer.-compact FooterLabel { margin: 0 1 0 0; }
    """
    BINDINGS = [
        Binding("l", "toggle_loop", "Loop"),
        Binding("v", "switch_camera", "Cam"),
        Binding("minus", "exposure(-1)", "Exp-", group=EXP, key_display="-"),
        Binding("plus,equals_sign", "exposure(1)", "Exp+", group=EXP, key_display="+"),
        Binding("less_than_sign", "gain(-1)", "Gain-", group=GAIN, key_display="<"),
        Binding("greater_than_sign", "gain(1)", "Gain+", group=GAIN, key_display=">"),
        Binding("left_square_bracket", f"focuser({-SMALL_STEP})", "In", group=FOC, key_display="["),
        Binding("right_square_bracket", f"focuser({SMALL_STEP})", "Out", group=FOC, key_display="]"),
        Binding("left_curly_bracket", f"focuser({-LARGE_STEP})", "In×4", group=FOC, key_display="{"),
        Binding("right_curly_bracket", f"focuser({LARGE_STEP})", "Out×4", group=FOC, key_display="}"),
        Binding("n", "star('next')", "Next", group=STAR),
        Binding("p", "star('prev')", "Prev", group=STAR),
        Binding("a", "star('auto')", "Auto", group=STAR),
        Binding("z", "zoom", "Zoom"),
        Binding("m", "metric", "HFR/FWHM", group=PLOT),
        Binding("o", "axis", "Time/Pos", group=PLOT),
        Binding("r", "clear", "Clr"),
        Binding("x", "test", "Test"),
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
        self._last_n = 0
        self._test_state: str | None = None

    # ----- layout ---------------------------------------------------------
    def body(self) -> ComposeResult:
        night = self.night
        with Horizontal(id="focus-main"):
            with Vertical(id="focus-left"):
                yield FrameView(night=night, id="frame")
                with Horizontal(id="star-row"):
                    yield FrameView(night=night, id="zoom")
                    yield Static("", id="star-info", markup=False)
            with Vertical(id="focus-right"):
                yield TrendPlot(night=night, id="trend")
                with Vertical(id="assist"):
                    yield HistogramPlot(night=night, id="hist")
                    yield Static("", id="advice", markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self.query_one("#frame").border_title = "live"
        self.query_one("#zoom").border_title = "star"
        self._resync()
        self.show_preview()
        self.show_title()

    def _theme_changed(self, _theme: str) -> None:
        night = self.night
        for view in self.query(FrameView):
            view.set_night(night)
        self.query_one(TrendPlot).set_night(night)
        self.query_one(HistogramPlot).set_night(night)

    # ----- state from the service ----------------------------------------
    def _resync(self) -> None:
        self.run_worker(self._fetch_state(), group="focus-sync", exclusive=True, exit_on_error=False)

    async def _fetch_state(self) -> None:
        st = await self.app.send("focus.state")  # type: ignore[attr-defined]
        if not isinstance(st, dict):
            return
        self.settings = {k: st.get(k) for k in ("camera", "exposure", "gain", "running", "focuser",
                                                 "has_focuser", "selection")}
        self.camera = st.get("camera") or self.camera
        self.points = [list(p) for p in st.get("trend") or []]
        self._last_n = self.points[-1][0] if self.points else 0
        self.best, self.fit, self.fit_hfr = st.get("best"), st.get("fit"), st.get("fit_hfr")
        self.last = st.get("last")
        if self.last:
            self._last_n = max(self._last_n, int(self.last.get("n", 0)))
        self.test = st.get("test")
        self.show_trend()
        self.show_star()
        self.show_test()
        self.show_preview()
        self.show_title()

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
            self.settings = dict(events["FocusSettings"])
            self.camera = self.settings.get("camera") or self.camera
            self.show_title()
        elif part == "FocusTest":
            self.test = events["FocusTest"]
            self.show_test()
        elif part == "activities":
            self.show_title()
            test_state = rig.activities.get("focus.test", {}).get("state")
            if test_state != self._test_state:
                self._test_state = test_state
                self.show_test()

    def on_focus_frame(self, ev: dict[str, Any]) -> None:
        n = int(ev.get("n", 0))
        if self._last_n and n > self._last_n + 1:
            self._resync()  # we missed frames (another screen was showing): fetch the whole trend
        self._last_n = n
        self.last = ev
        self.camera = ev.get("camera") or self.camera
        self.settings.update(exposure=ev.get("exposure"), gain=ev.get("gain"), focuser=ev.get("focuser"))
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
        running = rig.activities.get("focus", {}).get("state") == "running"
        exp, gain = st.get("exposure"), st.get("gain")
        cam = self.camera
        g = (f"ISO{gain}" if cam == "main_camera" else f"gain {gain}") if gain is not None else ""
        parts = [f"FOCUS {_cam_label(cam)}", "loop on" if running else "loop off (l)"]
        if exp is not None:
            parts.append(f"{exp:g}s {g}")
        if st.get("focuser") is not None:
            parts.append(f"focuser {st['focuser']}")
        elif st.get("has_focuser") is False:
            parts.append("no focuser")
        self.set_text(".title", " · ".join(parts))

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
        view.marks = self._star_marks(p, img)
        view.show(img)

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
        if running:
            text = f"exposing… {act.get('detail', '')}"
        else:
            advice = (self.test or {}).get("advice") or ["exposure looks fine"]
            text = "\n".join(f"• {a}" for a in advice)
        self.set_text("#advice", text)

    # ----- actions --------------------------------------------------------
    async def _send(self, name: str, **args: Any) -> Any:
        return await self.app.send(name, **args)  # type: ignore[attr-defined]

    async def action_toggle_loop(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        running = rig.activities.get("focus", {}).get("state") == "running"
        if running:
            await self._send("focus.stop")
        else:
            await self._send("focus.start", camera=self.camera)

    async def action_switch_camera(self) -> None:
        self.camera = "guide_camera" if self.camera == "main_camera" else "main_camera"
        rig = self.app.rig  # type: ignore[attr-defined]
        if rig.activities.get("focus", {}).get("state") == "running":
            await self._send("focus.start", camera=self.camera)
        self.points, self.best, self.fit, self.last = [], None, None, None
        self.show_preview()
        self.show_star()
        self.show_title()

    async def action_exposure(self, step: int) -> None:
        v = await self._send("focus.exposure", step=step, camera=self.camera)
        if v is not None:
            self.settings["exposure"] = v
            self.show_title()

    async def action_gain(self, step: int) -> None:
        v = await self._send("focus.gain", step=step, camera=self.camera)
        if v is not None:
            self.settings["gain"] = v
            self.show_title()

    async def action_focuser(self, steps: int) -> None:
        v = await self._send("focuser.move", steps=steps)
        if v is not None:
            self.settings["focuser"] = v
            self.show_title()

    async def action_star(self, which: str) -> None:
        v = await self._send("focus.select", star=which)
        if v is not None:
            self.settings["selection"] = v
            self.show_star()

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self.query_one("#frame").border_title = "star ×" if self.zoomed else "live"
        if self.zoomed:
            self.show_star()
        else:
            self.show_preview()

    def action_metric(self) -> None:
        trend = self.query_one(TrendPlot)
        trend.metric = "hfr" if trend.metric == "fwhm" else "fwhm"
        self.show_trend()

    def action_axis(self) -> None:
        trend = self.query_one(TrendPlot)
        trend.axis = "time" if trend.axis == "focuser" else "focuser"
        self.show_trend()

    async def action_clear(self) -> None:
        if await self._send("focus.clear") is not None:
            self.points, self.best, self.fit, self.fit_hfr = [], None, None, None
            self.show_trend()
            self.show_star()

    async def action_test(self) -> None:
        res = await self._send("focus.test_exposure", wait=False)
        if res is not None:
            self.app.notify(f"test exposure {res['exposure']:g} s ISO {res['iso']} started")
            self.show_test()
