"""Guiding: the RA/Dec deviation plot, correction pulses, a bullseye of recent errors, the guide
star's box, the statistics and the guider's state, with a key for every action.

The guide loop runs in the rig service (``service/guiding.py``) and goes on
whatever screen is shown; this screen draws its events and sends commands.
Plots redraw at most twice a second and only when new points came in.
"""

from __future__ import annotations

import base64
import time
from collections import deque
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from ..widgets.frameview import FrameView
from ..widgets.guideplot import MINUTES, SCALES, Bullseye, DeviationPlot, PulsePlot, auto_scale, window
from ..widgets.plot import with_note
from .base import StageScreen, age_text, bar, in_worker, mmss, time_left

HISTORY = 3600
TEXT_HZ = 2.0

SCALE = Binding.Group("Scale", compact=True)
SPAN = Binding.Group("Min", compact=True)

STATE_HINT = {
    "stopped": "l: loop",
    "looping": "a star · r cal · u guide",
    "calibrating": "calibrating…",
    "guiding": "d dither · x stop",
    "settling": "settling after a dither",
    "star lost": "star lost: waiting for it",
    "assistant": "x stops the assistant",
}
#: states in which the guide camera loops (guiding or not)
ACTIVE = ("looping", "calibrating", "guiding", "settling", "star lost", "assistant")
#: states in which guide corrections go to the mount: stopping or recalibrating loses them
GUIDING = ("guiding", "settling", "star lost")
#: which actions apply in which guider states (None: any state)
APPLIES: dict[str, tuple[str, ...] | None] = {
    "loop": ("stopped",),
    "select": ("stopped", "looping"),
    "calibrate": ("stopped", "looping", *GUIDING),
    "guide": ("stopped", "looping"),
    "dither": ("guiding",),
    "stop": ACTIVE,
    "uncalibrate": ("stopped", "looping"),
    "resume": ("stopped", "looping"),
    # the assistant guides unguided itself and the darks need the camera: neither while guiding
    "assistant": ("stopped", "looping"),
    "darks": ("stopped",),
}
#: seconds the D key waits for the dark library (the default 4 exposures x 10 darks take
#: 75 s of exposure; a slow camera's downloads add to it)
DARKS_TIMEOUT_S = 900.0


def _f(v: Any, fmt: str = ".2f", none: str = "–") -> str:
    return none if v is None else format(v, fmt)


def enlarge(img: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1) if k > 1 else img


class GuidingScreen(StageScreen):
    TITLE_TEXT = "GUIDING"
    DEFAULT_CSS = """
    GuidingScreen #g-top { height: 2fr; min-height: 8; }
    GuidingScreen #g-bottom { height: 1fr; min-height: 8; max-height: 16; }
    GuidingScreen #g-dev { width: 1fr; border: round $border-blurred; }
    GuidingScreen #g-bull { width: 33%; min-width: 26; border: round $border-blurred; }
    GuidingScreen #g-pulses { width: 1fr; border: round $border-blurred; }
    GuidingScreen #g-star { width: 16; height: 1fr; border: round $border-blurred; }
    GuidingScreen #g-stats { width: 24; height: 1fr; padding: 0 0 0 1; color: $text; }
    """
    BINDINGS = [
        Binding("l", "loop", "Loop", tooltip="loop the guide camera (frames, no corrections)"),
        Binding("a", "select", "Star", tooltip="pick the guide star (the brightest unsaturated one)"),
        Binding("r", "calibrate", "Cal", tooltip="calibrate (about 2 min); while guiding it asks first "
                "and guiding resumes after"),
        Binding("u", "guide", "Guide", tooltip="guide; calibrates first when there is no calibration "
                "for this camera and pier side"),
        Binding("d", "dither", "Dith", tooltip="dither, then settle (while guiding)"),
        Binding("x", "stop", "Stop", tooltip="stop guiding back to looping (asks first while guiding); "
                "again: stop the loop"),
        Binding("A", "assistant", "Assist", tooltip="guiding assistant: 10 min unguided, then Dec "
                "backlash; seeing, drift, polar and periodic error, backlash and recommended settings"),
        Binding("D", "darks", "Darks", tooltip="build the guide camera's dark library and hot-pixel "
                "map (cap the guide scope first; about 2 min)"),
        Binding("z", "uncalibrate", "Uncal", tooltip="forget the calibration: the next guide calibrates"),
        Binding("U", "resume", "Resume", tooltip="take up the guiding a crashed service was doing "
                "(shown only after the service reported it interrupted)"),
        Binding("minus", "scale(-1)", "Zoom out", group=SCALE, key_display="-",
                tooltip="wider error scale (the widest step: automatic)"),
        Binding("plus,equals_sign", "scale(1)", "Zoom in", group=SCALE, key_display="+",
                tooltip="narrower error scale"),
        Binding("less_than_sign", "span(-1)", "Shorter", group=SPAN, key_display="<",
                tooltip="show fewer minutes"),
        Binding("greater_than_sign", "span(1)", "Longer", group=SPAN, key_display=">",
                tooltip="show more minutes"),
    ]

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.points: deque[list[Any]] = deque(maxlen=HISTORY)
        self.star: dict[str, Any] | None = None
        self.minutes = 10.0
        self.scale = 0.0
        self._dirty_text = False
        self._dirty_star = False
        self._dirty_plots = False
        self._plots_at = 0.0
        self._last_n = 0
        self._state_seen = ""
        self._state_since = 0.0
        self._progress_shown: tuple[str, str] | None = None
        self._ages_at = 0.0
        self._progress_at = 0.0

    # ----- layout ---------------------------------------------------------
    def body(self) -> ComposeResult:
        night = self.night
        with Horizontal(id="g-top"):
            yield DeviationPlot(night=night, id="g-dev", classes="live")
            yield Bullseye(night=night, id="g-bull", classes="live")
        with Horizontal(id="g-bottom"):
            yield PulsePlot(night=night, id="g-pulses", classes="live")
            yield FrameView(night=night, id="g-star", classes="live")
            yield Static("", id="g-stats", markup=False, classes="live")

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self.query_one("#g-star").border_title = "star"
        self.set_interval(1.0 / TEXT_HZ, self._text_tick)
        self._resync()
        self.show_all()

    def _theme_changed(self, _theme: str) -> None:
        night = self.night
        for w in (*self.query(DeviationPlot), *self.query(PulsePlot), *self.query(Bullseye)):
            w.set_night(night)
        self.query_one("#g-star", FrameView).set_night(night)

    # ----- state from the service ----------------------------------------
    @property
    def guiding(self) -> dict[str, Any]:
        return self.app.rig.extra.get("guiding") or {}  # type: ignore[attr-defined]

    @property
    def state(self) -> str:
        return self.guiding.get("state", "stopped")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in APPLIES:
            return True
        if not self.app.rig.connected:  # type: ignore[attr-defined]
            return False
        states = APPLIES[action]
        if action == "uncalibrate" and not self.guiding.get("calibration"):
            return False
        if action == "resume":
            prev = self.app.rig.extra.get("interrupted") or {}  # type: ignore[attr-defined]
            return bool((prev.get("activities") or {}).get("guiding")) and "guiding" not in prev.get("resumed", [])
        return states is None or self.state in states

    def _resync(self) -> None:
        self.run_worker(self._fetch_state(), group="guide-sync", exclusive=True, exit_on_error=False)

    async def _fetch_state(self) -> None:
        st = await self.app.send("guide.state", minutes=max(MINUTES))  # type: ignore[attr-defined]
        if not isinstance(st, dict):
            return
        hist = st.pop("history", [])
        self.app.rig.extra["guiding"] = st  # type: ignore[attr-defined]
        self.points.clear()
        self.points.extend(list(p) for p in hist)
        self.show_all()

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        rig = self.app.rig  # type: ignore[attr-defined]
        if part == "connection":
            if rig.connected:
                self._resync()
            self._dirty_text = True
        elif part == "GuidePoint":
            ev = rig.extra["events"]["GuidePoint"]
            n = int(ev.get("n", 0))
            if self._last_n and n > self._last_n + 1 and n - self._last_n > 5:
                self._resync()  # we missed points: fetch the history
            self._last_n = n
            if ev.get("dropped"):
                self.points.append([ev["t"], None, None, 0, 0])
            else:
                self.points.append([ev["t"], ev["ra"], ev["dec"], ev["ra_ms"], ev["dec_ms"]])
            self._dirty_plots = True
            self._dirty_text = True
        elif part == "GuideStatus":
            self._dirty_text = True
        elif part == "GuideStar":
            self.star = rig.extra["events"]["GuideStar"]
            self._dirty_star = True

    def _plot_interval(self) -> float:
        """Seconds between plot redraws: about one plot column of time, 1 to 5 s.

        A plot redraw resends the whole plot; over a 10-minute window a new
        second of data moves nothing on screen, so it waits (bandwidth over SSH)."""
        width = max(20, self.query_one(DeviationPlot).size.width - 8)
        return min(5.0, max(1.0, self.minutes * 60.0 / width))

    def _text_tick(self) -> None:
        """Text and the star box: at most TEXT_HZ redraws a second, only when changed."""
        now = time.monotonic()
        if self._dirty_plots and now - self._plots_at >= self._plot_interval():
            self._dirty_plots = False
            self._plots_at = now
            self.show_plots()
        if self._dirty_star:
            self._dirty_star = False
            self.show_star()
        if self._dirty_text:
            self._dirty_text = False
            self.show_text()
        elif now - self._ages_at >= 1.0:
            self.show_ages()

    # ----- drawing --------------------------------------------------------
    def show_all(self) -> None:
        self.show_plots()
        self.show_star()
        self.show_text()

    def _now(self) -> float:
        rig = self.app.rig  # type: ignore[attr-defined]
        last = self.points[-1][0] if self.points else 0.0
        return last if rig.virtual else max(last, rig.now())

    def show_plots(self) -> None:
        unit = "″" if self.guiding.get("pixel_scale") else "px"
        now = self._now()
        dev = self.query_one(DeviationPlot)
        pul = self.query_one(PulsePlot)
        bull = self.query_one(Bullseye)
        for w in (dev, pul):
            w.minutes = self.minutes
            w.unit = unit
        dev.scale = bull.scale = self.scale
        bull.unit = unit
        dev.set_data(self.points, now)
        pul.set_data(self.points, now)
        bull.set_data(self.points, self.guiding.get("rms_total_arcsec" if unit == "″" else "rms_total_px"))

    def show_title(self) -> None:
        self.show_text()

    def show_ages(self) -> None:
        """Panels whose data is older than the guide loop's cadence say how old it is (the
        plots' last point, the star box's cut-out); all say "stale" while the service is gone.
        At most once a second; a title changes only when its text does."""
        rig = self.app.rig  # type: ignore[attr-defined]
        self._ages_at = time.monotonic()
        if not rig.connected:
            points_note = star_note = "stale"
        else:
            now = rig.now()
            exp = float(self.guiding.get("exposure_s") or 1.0)
            late = max(10.0, 3 * exp + 5)  # a frame is this late: the data is old
            last = self.points[-1][0] if self.points else None
            points_note = age_text(now - last) if last is not None and now - last > late else ""
            t_star = float((self.star or {}).get("t") or 0.0)
            star_note = age_text(now - t_star) if t_star and now - t_star > late else ""
        for w in (self.query_one(DeviationPlot), self.query_one(PulsePlot), self.query_one(Bullseye)):
            w.stale = points_note
        view = self.query_one("#g-star", FrameView)
        title = with_note(star_note, "star", view.size.width) if star_note else "star"
        if view.border_title != title:
            view.border_title = title

    def show_star(self) -> None:
        view = self.query_one("#g-star", FrameView)
        s = self.star
        if not s or not s.get("pixels"):
            view.marks = []
            view.show(None)
            return
        side = int(s.get("side", 24))
        img = np.frombuffer(base64.b64decode(s["pixels"]), dtype=np.uint8).reshape(side, side)
        cols, rows = view.size.width or 14, view.size.height or 6
        k = max(1, min(cols // side, (2 * rows) // side))
        big = enlarge(img, k)
        marks = []
        if s.get("lock"):
            lx, ly = (s["lock"][0] - s["x0"]) * k, (s["lock"][1] - s["y0"]) * k
            if 0 <= lx < big.shape[1] and 0 <= ly < big.shape[0]:
                marks.append((lx, ly, "+"))
        view.marks = marks
        view.show(big)

    def show_text(self) -> None:
        g = self.guiding
        st = self.state
        detail = g.get("detail") or ""
        now = time.monotonic()
        if st != self._state_seen:
            self._state_seen, self._state_since = st, now
        parts = [f"GUIDING · {st}"]
        if st in ("calibrating", "settling", "star lost", "assistant"):
            # long states say how long they have run and, when known, about how long is left
            # (the title's progress changes at most once a second)
            parts[0] += f" {self._progress_text(st, now)}"
            self._dirty_text = True
        if detail and detail != st:
            parts.append(detail)
        if not detail or st in ("stopped", "looping", "assistant"):
            parts.append(STATE_HINT.get(st, ""))
        self.set_title(" · ".join(p for p in parts if p)[:200])
        self.show_ages()
        unit = "″" if g.get("pixel_scale") else ""
        recent = [p for p in self.points if p[1] is not None and p[0] >= self._now() - g.get("window_s", 120)]
        pk_ra = max((abs(p[1]) for p in recent), default=None)
        pk_dec = max((abs(p[2]) for p in recent), default=None)
        cal = g.get("calibration")
        lines = [
            f"RMS {g.get('window_s', 120) / 60:g} min",
            f"RA  {_f(g.get('rms_ra_arcsec'))}{unit} {_f(g.get('rms_ra_px'))}px",
            f"Dec {_f(g.get('rms_dec_arcsec'))}{unit} {_f(g.get('rms_dec_px'))}px",
            f"Tot {_f(g.get('rms_total_arcsec'))}{unit} {_f(g.get('rms_total_px'))}px",
            f"Peak {_f(pk_ra, '.1f')}/{_f(pk_dec, '.1f')}{unit}",
            f"SNR {_f(g.get('snr'), '.0f')}  HFD {_f(g.get('hfd'), '.1f')}",
            ("cal none" if not cal else
             f"cal {cal.get('angle_deg', 0):.0f}° {'⚠' if cal.get('warnings') else 'ok'}"
             f" {cal.get('pier_side', '')}"),
        ]
        self.set_text("#g-stats", "\n".join(line[:23] for line in lines))

    def _progress_text(self, st: str, now: float) -> str:
        """'0:42 · about 1:10 left ▮▮▮▯▯▯▯▯▯▯' from the guider's progress (service clock),
        recomputed at most once a second."""
        if self._progress_shown and now - self._progress_at < 1.0 and self._progress_shown[0] == st:
            return self._progress_shown[1]
        rig = self.app.rig  # type: ignore[attr-defined]
        p = self.guiding.get("progress") or {}
        if p.get("what") != st:
            p = {}
        at = p.get("at")
        clock = rig.now() if not rig.virtual else max(rig.now(), float(at or 0.0))
        since = p.get("since")
        elapsed = clock - float(since) if since is not None else now - self._state_since
        text = mmss(elapsed)
        left = time_left(p.get("left_s"), at, clock)
        if left is not None:
            text += f" · about {mmss(left)} left"
            if st in ("calibrating", "assistant") and p.get("fraction") is not None:
                text += f" {bar(float(p['fraction']))}"
            elif st == "settling" and p.get("distance_px") is not None:
                text += f" ({p['distance_px']:.1f} px, need {p.get('settle_px', 0):g})"
        self._progress_shown, self._progress_at = (st, text), now
        return text

    # ----- actions --------------------------------------------------------
    async def _send(self, name: str, **args: Any) -> Any:
        return await self.app.send(name, **args)  # type: ignore[attr-defined]

    @in_worker
    async def action_loop(self) -> None:
        await self._send("guide.loop")

    @in_worker
    async def action_select(self) -> None:
        await self._send("guide.select")

    def action_calibrate(self) -> None:
        if self.state in GUIDING:
            self.ask("Recalibrate now? Guiding stops for the calibration (about 2 min) and "
                     "resumes after it.", self._recalibrate)
        else:
            self.run_command(self._send("guide.calibrate"))

    async def _recalibrate(self) -> None:
        """Calibrate while guiding; the service guides again after it (client or not)."""
        if await self._send("guide.calibrate", then_guide=True) is not None:
            self.app.notify("recalibrating: guiding resumes after the calibration")

    def action_assistant(self) -> None:
        self.ask("Run the guiding assistant? The star is watched unguided for 10 minutes, then "
                 "Dec is pulsed north and south to measure backlash.",
                 lambda: self._send("guide.assistant", minutes=10.0))

    def action_darks(self) -> None:
        self.ask("Build the guide dark library? Cap the guide scope first (the simulated rig caps "
                 "itself); the guide loop must be stopped.", self._darks, lane="darks")

    async def _darks(self) -> None:
        """Build the library (in a lane of its own: the other keys' commands go on meanwhile)
        and say what was stored."""
        res = await self._send("guide.darks", timeout=DARKS_TIMEOUT_S)
        if isinstance(res, dict) and res.get("darks"):
            each = ", ".join(f"{d['exposure_s']:g} s {d['hot_pixels']}" for d in res["darks"])
            self.app.notify(f"guide darks stored at gain {res.get('gain')} (hot pixels: {each}); "
                            "guiding subtracts them")

    @in_worker
    async def action_guide(self) -> None:
        await self._send("guide.start")

    @in_worker
    async def action_dither(self) -> None:
        res = await self._send("guide.dither", wait=False)
        if res is not None and not res.get("ok"):
            self.app.notify(f"no dither: {res.get('reason')}", severity="warning")

    def action_stop(self) -> None:
        # Guiding (or calibrating) stops back to looping; looping stops altogether.
        keep = self.state not in ("looping", "stopped")
        if self.state in GUIDING:
            self.ask("Stop guiding? Frames go on, corrections stop (back to looping).",
                     lambda: self._send("guide.stop", keep_looping=keep))
        elif self.state == "assistant":
            self.ask("Stop the guiding assistant? Its measurements so far are dropped (back to "
                     "looping).", lambda: self._send("guide.stop", keep_looping=True))
        else:
            self.run_command(self._send("guide.stop", keep_looping=keep))

    @in_worker
    async def action_resume(self) -> None:
        if await self._send("guide.resume") is not None:
            prev = self.app.rig.extra.get("interrupted") or {}  # type: ignore[attr-defined]
            prev.setdefault("resumed", []).append("guiding")
            self.app.notify("taking up the interrupted guiding")
            self.refresh_keys()

    @in_worker
    async def action_uncalibrate(self) -> None:
        if await self._send("guide.clear_calibration") is not None:
            self.app.notify("calibration cleared: the next guide start calibrates")

    def action_scale(self, step: int) -> None:
        # "+" zooms in (a smaller range), "-" out; automatic sits beyond the widest.
        if not self.scale:
            if step < 0:
                return  # automatic is already the widest
            pts = window(self.points, self._now(), self.minutes)
            shown = auto_scale([v for p in pts for v in (p[1], p[2])])
            narrower = [x for x in SCALES[1:] if x < shown]
            self.scale = narrower[-1] if narrower else SCALES[1]  # one step in from what is shown
        else:
            order = list(SCALES[1:]) + [0.0]
            j = order.index(self.scale) if self.scale in order else len(order) - 1
            self.scale = order[max(0, min(len(order) - 1, j - step))]
        self.show_plots()
        self.app.notify(f"error scale {'automatic' if not self.scale else f'±{self.scale:g}'}")

    def action_span(self, step: int) -> None:
        i = MINUTES.index(self.minutes) if self.minutes in MINUTES else MINUTES.index(10)
        self.minutes = float(MINUTES[max(0, min(len(MINUTES) - 1, i + step))])
        self.show_plots()
