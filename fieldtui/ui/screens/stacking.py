"""Stacking: the queue of frame sets, the running set's progress and time left, the
per-frame metrics plot (FWHM, roundness, star count, background or noise: ``m``), the
frames left out with their reasons, and the stack's preview.

While the capture takes a set of lights, the preview is the worker's live stack
(each saved light joins it), until that set's final stack is done; ``n``/``p``
show the stacked sets.

The stacking worker runs in the rig service (``service/stacking.py``); this
screen draws its snapshot (``rig.extra["stacking"]``, current at each of its
status events, at most one a second while a set runs) and sends ``stack.*``
commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..widgets.frameview import FrameView, decode_preview
from ..widgets.plot import ThrottledPlot
from ..widgets.trend import DAY, NIGHT
from .base import StageScreen, age_text
from .focus import bar

RESULT = Binding.Group("Set", compact=True)
#: the preview's zoom steps (1: the whole stack), about its centre
ZOOMS = (1, 2, 4)


def duration(s: float | None) -> str:
    """'42 s', '3 min 20 s', '1 h 05 min'; '…' when unknown."""
    if s is None:
        return "…"
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def progress_text(cur: dict[str, Any] | None) -> str:
    """The running set in one line: 'm31 · register 5/16 ▮▮▮▯▯▯▯▯▯▯ · 12 s left in this stage'."""
    if not cur:
        return "nothing running"
    stage = cur.get("stage") or "starting"
    done, total = cur.get("done") or 0, cur.get("total") or 0
    text = f"{cur.get('name')} · {stage}"
    if total:
        text += f" {done}/{total} {bar(done / total)}"
    if cur.get("left_s") is not None:
        text += f" · {duration(cur['left_s'])} left in this stage"
    if cur.get("elapsed_s"):
        text += f" · {duration(cur['elapsed_s'])} so far"
    return text


def live_text(live: dict[str, Any] | None) -> str:
    """The live stack in one line: 'live M31_30s: 7 frames · last L_0007.fits left out: …'."""
    if not live:
        return "live: no set being captured"
    text = f"live {live.get('name')}: {live.get('frames', 0)} frames"
    last = live.get("last") or {}
    if last.get("file"):
        text += f" · last {Path(last['file']).name}"
        if not last.get("accepted"):
            text += f" left out: {last.get('reason')}"
    if live.get("masters"):
        text += f" · masters: {', '.join(live['masters'])}"
    elif live.get("frames"):
        text += " · no masters yet"
    if not live.get("running"):
        text += " (set finished)"
    return text


def zoom_crop(img: np.ndarray, zoom: int) -> np.ndarray:
    """The centre 1/zoom of ``img`` (``(H, W)``) in each direction."""
    if zoom <= 1:
        return img
    h, w = img.shape[:2]
    ch, cw = max(1, h // zoom), max(1, w // zoom)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return img[y0:y0 + ch, x0:x0 + cw]


#: the per-frame metrics the plot shows, in the order ``m`` steps through them:
#: (key in the worker's frames, name, unit); the field guide's Plot panel
METRICS = (("fwhm", "FWHM", "px"), ("roundness", "roundness", ""), ("stars", "stars", ""),
           ("background", "background", "ADU"), ("noise", "noise", "ADU"))


def metric_points(frames: list[dict[str, Any]], key: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The plot's points for one metric: (frame number from 1, value) of the stacked frames
    and of the frames left out, in file order; frames without the value are skipped."""
    used: list[tuple[int, float]] = []
    out: list[tuple[int, float]] = []
    for i, f in enumerate(frames):
        v = f.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            (used if f.get("used") else out).append((i + 1, float(v)))
    return used, out


class FwhmPlot(ThrottledPlot):
    """A per-frame metric (FWHM in px by default; :data:`METRICS`) of each light of one set,
    in file order: stacked frames as dots, frames left out as crosses."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.frames: list[dict[str, Any]] = []
        self.name_ = ""
        self.metric = 0  # index into METRICS

    def set_frames(self, frames: list[dict[str, Any]], name: str) -> None:
        if frames != self.frames or name != self.name_:
            self.frames, self.name_ = list(frames), name
            self.changed()

    def next_metric(self) -> str:
        """Show the next metric; returns its name."""
        self.metric = (self.metric + 1) % len(METRICS)
        self.changed()
        return METRICS[self.metric][1]

    def build_plot(self) -> None:
        plt = self.plt
        line, pts, best_c, fit_c = NIGHT if self.night else DAY
        key, what, unit = METRICS[self.metric]
        used, out = metric_points(self.frames, key)
        if not used and not out:
            self.border_title = f"{what} per frame{' · ' + self.name_ if self.name_ else ''}: no frames yet"
            return
        if used:
            plt.scatter([d[0] for d in used], [d[1] for d in used], color=pts, marker="●")
        if out:
            plt.scatter([d[0] for d in out], [d[1] for d in out], color=best_c, marker="x")
        plt.xlabel("frame")
        med = float(np.median([d[1] for d in used + out]))
        fmt = ".0f" if key in ("stars", "background") else ".2f"
        self.border_title = (f"{what} per frame{f' ({unit})' if unit else ''} · {self.name_} · "
                             f"median {med:{fmt}} · {len(used)} stacked ●, {len(out)} left out x")


class PathScreen(ModalScreen[str | None]):
    """Ask for a night's folder or a folder of lights (Enter adds, Esc cancels)."""

    DEFAULT_CSS = """
    PathScreen { align: center middle; background: $background; }
    PathScreen Vertical { width: 80%; height: auto; border: round $border; background: $background; }
    PathScreen Static { color: $text; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Stack which frames? A night's folder (its Light, Dark, Flat, Bias folders) "
                         "or a folder of lights. Enter adds the set, Esc cancels.", markup=False)
            yield Input(placeholder="/path/to/night", id="path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class StackingScreen(StageScreen):
    TITLE_TEXT = "STACKING"
    DEFAULT_CSS = """
    StackingScreen #st-main { height: 1fr; }
    StackingScreen #st-left { width: 2fr; min-width: 30; }
    StackingScreen #st-right { width: 3fr; }
    StackingScreen #st-queue { height: auto; max-height: 12; padding: 0 1; color: $text;
                               border: round $border-blurred; }
    StackingScreen #st-rejected { height: 1fr; padding: 0 1; color: $text; border: round $border-blurred; }
    StackingScreen #st-fwhm { height: 1fr; min-height: 8; border: round $border-blurred; }
    StackingScreen #st-preview { height: 2fr; min-height: 5; border: round $border-blurred; }
    """
    BINDINGS = [
        Binding("a", "add", "Add", tooltip="queue a set: a night's folder (Light, Dark, Flat, Bias "
                "folders) or a folder of lights"),
        Binding("x", "cancel", "Cancel", tooltip="stop the set being stacked (asks first)"),
        Binding("n", "pick(1)", "Newer", group=RESULT, tooltip="show the next newer stacked set"),
        Binding("p", "pick(-1)", "Older", group=RESULT, tooltip="show the next older stacked set"),
        Binding("z", "zoom", "Zoom", tooltip="zoom the preview ×2, ×4 on its centre, and back"),
        Binding("m", "metric", "Metric", group=RESULT,
                tooltip="plot FWHM, roundness, star count, background or noise per frame"),
    ]

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.pick = -1          # index into results; -1 the newest
        self.zoom = 1
        self._thumb_key: Any = None

    def body(self) -> ComposeResult:
        night = self.night
        with Horizontal(id="st-main"):
            with Vertical(id="st-left"):
                yield Static("", id="st-queue", markup=False, classes="live")
                yield Static("", id="st-rejected", markup=False, classes="live")
            with Vertical(id="st-right"):
                yield FwhmPlot(night=night, id="st-fwhm", classes="live")
                yield FrameView(night=night, id="st-preview", classes="live")

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self.set_interval(5.0, self._show_age)
        self.show_all()

    def _show_age(self) -> None:
        """The preview's title says how old what it shows is (once over a minute)."""
        view = self.query_one(FrameView)
        base = getattr(self, "_view_title", "")
        at = getattr(self, "_view_at", None)
        title = base
        if base and at is not None:
            age = self.app.rig.now() - float(at)  # type: ignore[attr-defined]
            if age >= 60:
                title = f"{base} · {age_text(age)}"
        if view.border_title != title:
            view.border_title = title

    def _view(self, title: str, at: float | None) -> None:
        self._view_title, self._view_at = title, at
        self._show_age()

    def _theme_changed(self, _theme: str) -> None:
        night = self.night
        self.query_one(FrameView).set_night(night)
        self.query_one(FwhmPlot).set_night(night)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.show_all()

    # ----- state ----------------------------------------------------------
    @property
    def snap(self) -> dict[str, Any]:
        return self.app.rig.extra.get("stacking") or {}  # type: ignore[attr-defined]

    def result(self) -> dict[str, Any] | None:
        res = self.snap.get("results") or []
        if not res:
            return None
        i = self.pick if -len(res) <= self.pick < 0 else -1
        return res[i]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "zoom":
            return True
        if action == "pick":
            return len(self.snap.get("results") or []) > 1
        if action == "metric":
            return bool(self.snap.get("results"))
        if not self.app.rig.connected:  # type: ignore[attr-defined]
            return False
        if action == "cancel":
            return self.snap.get("current") is not None
        return True

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        if part in ("activities", "connection"):
            self.show_all()

    # ----- drawing --------------------------------------------------------
    def show_title(self) -> None:
        s = self.snap
        state = s.get("state") or "idle"
        text = f"STACKING · {state}"
        if s.get("current"):
            text += f" · {progress_text(s['current'])}"
        elif state == "failed" and s.get("reason"):
            text += f": {s['reason']}"
        self.set_title(text)

    def show_all(self) -> None:
        if not self.is_mounted:
            return
        self.show_title()
        self.show_queue()
        self.show_result()

    def show_queue(self) -> None:
        s = self.snap
        lines = [f"now: {progress_text(s.get('current'))}"]
        if s.get("live"):
            lines.append(live_text(s["live"]))
        q = s.get("queue") or []
        lines.append(f"waiting: {len(q)}" + "".join(f"\n  {j['name']} ({j['lights']} lights)" for j in q))
        res = s.get("results") or []
        if res:
            lines.append("done:")
            for r in res[-5:]:
                what = (f"{r.get('frames_used')} frames in {duration(r.get('seconds'))}"
                        if "error" not in r else f"no stack: {r['error']}")
                lines.append(f"  {r['name']}: {what}")
        self.set_text("#st-queue", "\n".join(lines))

    def _show_live(self) -> bool:
        """The live stack in the preview while its set is being taken (newest set picked)."""
        live = self.snap.get("live") or {}
        if self.pick != -1 or not live.get("running") or not live.get("thumb"):
            return False
        view = self.query_one(FrameView)
        key = ("live", live.get("frames"), self.zoom)
        if key != self._thumb_key:
            self._thumb_key = key
            view.show(zoom_crop(decode_preview(live["thumb"]), self.zoom))
        self._view(f"{live.get('name')} · {live.get('frames')} frames · ×{self.zoom}", live.get("at"))
        return True

    def show_result(self) -> None:
        r = self.result()
        rej = self.query_one("#st-rejected", Static)
        view = self.query_one(FrameView)
        plot = self.query_one(FwhmPlot)
        live = self._show_live()
        if r is None and live:
            rej.border_title = "left out"
            self.set_text("#st-rejected", "the set being captured is stacked live; its final stack follows")
            plot.set_frames([], "")
            return
        if r is None:
            rej.border_title = "left out"
            self.set_text("#st-rejected", "no set stacked yet · a adds one")
            plot.set_frames([], "")
            self._view("preview", None)
            view.show(None)
            self._thumb_key = None
            return
        out = r.get("frames_rejected") or []
        rej.border_title = f"{r['name']}: {len(out)} left out"
        if "error" in r:
            text = f"no stack: {r['error']}"
        else:
            text = "\n".join(f"{Path(x['file']).name}: {x['reason']}" for x in out) or "none: every frame stacked"
            if r.get("output"):
                text += f"\n\nstack: {r['output']}"
            for w in r.get("warnings") or []:
                text += f"\nwarning: {w}"
        self.set_text("#st-rejected", text)
        plot.set_frames(r.get("frames") or [], r["name"])
        if live:
            return
        thumb = r.get("thumb")
        key = (r.get("id"), self.zoom, thumb is not None)
        if key != self._thumb_key:
            self._thumb_key = key
            if thumb:
                view.show(zoom_crop(decode_preview(thumb), self.zoom))
                self._view(f"{r['name']} · ×{self.zoom}", r.get("at"))
            else:
                view.show(None)
                self._view(f"{r['name']} · no preview (only the newest set keeps one)", None)

    # ----- keys -----------------------------------------------------------
    def action_add(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_command(self._add(path))
        self.app.push_screen(PathScreen(), chosen)

    async def _add(self, path: str) -> None:
        p = Path(path).expanduser()
        has_kinds = p.is_dir() and any(c.is_dir() and c.name.lower() in ("light", "lights") for c in p.rglob("*"))
        args = {"night": str(p)} if has_kinds else {"lights": [str(p)]}
        jid = await self.app.send("stack.add", **args)  # type: ignore[attr-defined]
        if jid is not None:
            self.message(f"set {jid} queued: {p}")

    def action_cancel(self) -> None:
        cur = self.snap.get("current")
        if cur:
            self.ask(f"Stop stacking {cur['name']}? (y/n)", lambda: self.app.send("stack.cancel"))  # type: ignore[attr-defined]

    def action_pick(self, step: int) -> None:
        n = len(self.snap.get("results") or [])
        if n:
            i = (self.pick % n) + step
            self.pick = max(0, min(n - 1, i)) - n
            self._thumb_key = None
            self.show_result()

    def action_metric(self) -> None:
        self.message(f"plot: {self.query_one(FwhmPlot).next_metric()} per frame")

    def action_zoom(self) -> None:
        self.zoom = ZOOMS[(ZOOMS.index(self.zoom) + 1) % len(ZOOMS)]
        self.show_result()

