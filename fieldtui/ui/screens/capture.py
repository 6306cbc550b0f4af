"""Capture: the plan with a progress bar per sequence and for the night, the frame being
taken with its countdown, the time left and ETA, the last frame's figures with a trend,
where the targets stand in the sky, and a key for every action of the sequencer.

The sequencer runs in the rig service (``service/capture.py``) and goes on
whatever screen is shown; this screen draws its snapshot
(``rig.extra["capture"]``, current at each of its status events: a frame
starting, a pause, a plan change) and sends ``capture.*`` commands. The
countdown is drawn from the service clock once a second, and only the texts
that changed are sent to the terminal.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from .base import StageScreen, in_worker
from .focus import bar
from .stacking import duration

SELECT = Binding.Group("Seq", compact=True)
#: how often the targets' altitudes are asked again (s, wall time)
SKY_EVERY_S = 300.0
BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], marks: list[bool] | None = None, width: int = 24) -> str:
    """The last ``width`` values as one line of block characters (low to high over their own
    range, outliers left out of it); ``marks`` (outliers) are drawn ``×``, missing values as a space."""
    vals = values[-width:]
    flags = (marks or [False] * len(values))[-width:]
    nums = [v for v, m in zip(vals, flags) if v is not None and not m]  # outliers never set the scale
    if not nums:
        return "×" * sum(flags) if any(flags) else ""
    lo, hi = min(nums), max(nums)
    out = []
    for v, m in zip(vals, flags):
        if m:
            out.append("×")
        elif v is None:
            out.append(" ")
        else:
            k = 0 if hi <= lo else int((v - lo) / (hi - lo) * (len(BLOCKS) - 1) + 0.5)
            out.append(BLOCKS[k])
    return "".join(out)


def utc_hhmm(t: float | None) -> str:
    """'21:43' (UTC) of unix time ``t``; '--:--' when unknown."""
    return "--:--" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M")


def setting(q: dict[str, Any]) -> str:
    """'ISO800' or 'G120' of a sequence of the snapshot ('' when neither is known)."""
    return f"G{q['gain']}" if q.get("gain") is not None else (f"ISO{q['iso']}" if q.get("iso") else "")


def exp_text(e: float | None) -> str:
    """'120s', '0.5s', '1/4000s'; 'auto' when the sequencer decides (flats)."""
    if e is None:
        return "auto"
    return f"{e:g}s" if e >= 0.1 else f"1/{1 / e:.0f}s"


SHORT_TYPE = {"darkflat": "dkflat"}


def sequence_line(q: dict[str, Any], width: int = 44) -> str:
    """'M31     light   12/30  ▮▮▮▮▯▯ 60s ISO1600 L' for one sequence of the snapshot."""
    done, count = q.get("done", 0), q.get("count", 0)
    typ = SHORT_TYPE.get(q.get("type", ""), q.get("type", ""))
    head = f"{q.get('target', '')[:7]:<7} {typ:<6} {done:>3}/{count:<3} "
    tail = f" {exp_text(q.get('exposure'))} {setting(q)}{' ' + q['filter'] if q.get('filter') else ''}"
    cells = max(3, min(10, width - len(head) - len(tail)))  # the bar gives way to the settings
    return (head + bar(done / count if count else 0, cells) + tail)[:width]


def night_line(snap: dict[str, Any]) -> str:
    """'night 21/39 ▮▮▮▮▮▯▯▯▯▯' and below it '1 h 10 min left · ETA 23:40 UT'."""
    done, total = snap.get("done", 0), snap.get("planned", 0)
    left = snap.get("left_s") or 0.0
    text = f"night {done}/{total} {bar(done / total if total else 0)}"
    if total and done < total:
        text += f"\n{duration(left)} left"
        if snap.get("at") is not None:
            text += f" · ETA {utc_hhmm(snap['at'] + left)} UT"
    elif total:
        text += " · complete"
    return text


def figures_text(last: dict[str, Any] | None) -> list[str]:
    """The last frame's figures, a line each: its file, HFR and stars, clipping, outlier."""
    if not last:
        return ["no frame yet"]
    f = last.get("figures") or {}
    name = Path(str(last.get("path") or "")).name
    lines = [("…" + name[-25:] if len(name) > 26 else name) or last.get("type", "")]
    if f.get("hfr") is not None or f.get("stars") is not None:
        hfr = f"{f['hfr']:.2f}px" if f.get("hfr") is not None else "–"
        lines.append(f"HFR {hfr}  stars {f.get('stars', '–')}")
        if f.get("saturated_pct") is not None:
            lines.append(f"clipped {f['saturated_pct']:.2f} %")
    elif f.get("mean_frac") is not None:
        lines.append(f"flat mean {100 * f['mean_frac']:.0f} %"
                     f"{' clipped' if (f.get('clipped_frac') or 0) > 0 else ''}")
    else:
        lines.append(f"{last.get('type', '')}: no figures")
    if last.get("outlier"):
        lines.append("OUTLIER: " + "; ".join(last["outlier"]))
    return lines


class AskScreen(ModalScreen[str | None]):
    """One line of input: Enter answers, Esc cancels."""

    DEFAULT_CSS = """
    AskScreen { align: center middle; background: $background; }
    AskScreen Vertical { width: 90%; max-width: 76; height: auto; border: round $border;
                         background: $background; }
    AskScreen Static { color: $text; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"{self.question}\nEnter: yes · Esc: cancel", markup=False)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class CaptureScreen(StageScreen):
    TITLE_TEXT = "CAPTURE"
    DEFAULT_CSS = """
    CaptureScreen #cap-main { height: 1fr; }
    CaptureScreen #cap-plan { width: 1fr; height: 1fr; min-width: 40; padding: 0 1; color: $text;
                              border: round $border-blurred; }
    CaptureScreen #cap-right { width: 30; }
    CaptureScreen #cap-now { height: 5; padding: 0 1; color: $text-primary; border: round $border-blurred; }
    CaptureScreen #cap-last { height: 1fr; min-height: 5; padding: 0 1; color: $text;
                              border: round $border-blurred; }
    CaptureScreen #cap-sky { height: auto; max-height: 6; padding: 0 1; color: $text-muted;
                             border: round $border-blurred; }
    """
    BINDINGS = [
        Binding("o", "open", "Open", tooltip="load a plan file: a path, a number from the list of "
                "DATA/plans/*.toml and ./*.toml, or empty for the default ([plan] file or DATA/plans/<target>.toml)"),
        Binding("r", "start", "Run", tooltip="start the plan, or resume it where its journal stopped"),
        Binding("p", "pause", "Pause", tooltip="pause after the frame being taken"),
        Binding("u", "resume", "Resume", tooltip="go on after a pause"),
        Binding("n", "skip", "Skip", tooltip="skip the rest of this sequence after the frame being taken"),
        Binding("x", "abort", "Abort", tooltip="stop after the frame being taken (r takes the plan up again)"),
        Binding("X", "abort_now", "Abort now", tooltip="stop at once: the frame being taken is dropped "
                "(asks first)"),
        Binding("up", "select(-1)", "Up", group=SELECT, key_display="↑", tooltip="select the previous sequence"),
        Binding("down", "select(1)", "Down", group=SELECT, key_display="↓", tooltip="select the next sequence"),
        Binding("N", "count", "Count", tooltip="change the selected sequence's frame count"),
        Binding("E", "exposure", "Exp", tooltip="change the selected sequence's exposure (before any of "
                "its frames is taken)"),
        Binding("a", "altitude", "Altitude", tooltip="show the targets' altitude through the night (meridian, "
                "altitude limit, astronomical dusk and dawn, the plan's start and end) instead of the "
                "plan, and the plan's sky warnings; again: back to the plan"),
    ]

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.cursor = 0
        self._dirty = True
        self._sky: dict[str, Any] | None = None
        self._sky_at = 0.0
        self._sky_plan: Any = None
        self._auto_loaded = False
        self.altitude = False  # the plan panel shows the altitude plot
        self._plot: dict[str, Any] | None = None  # {"size": (w, h), "plan": id, "plot", "warnings", "at"}
        self._plot_pending = False

    def body(self) -> ComposeResult:
        with Horizontal(id="cap-main"):
            yield Static("", id="cap-plan", markup=False, classes="live")
            with Vertical(id="cap-right"):
                yield Static("", id="cap-now", markup=False, classes="live")
                yield Static("", id="cap-last", markup=False, classes="live")
                yield Static("", id="cap-sky", markup=False, classes="live")

    def on_mount(self) -> None:
        self.query_one("#cap-plan").border_title = "plan"
        self.query_one("#cap-now").border_title = "now"
        self.query_one("#cap-last").border_title = "last frame"
        self.query_one("#cap-sky").border_title = "altitude · a plots the night"
        self.set_interval(1.0, self._tick)
        self._first_load()
        self.show_all()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._first_load()
        self.show_all()

    # ----- state ----------------------------------------------------------
    @property
    def snap(self) -> dict[str, Any]:
        return self.app.rig.extra.get("capture") or {}  # type: ignore[attr-defined]

    @property
    def state(self) -> str:
        return (self.app.rig.activities.get("capture") or {}).get("state", "idle")  # type: ignore[attr-defined]

    @property
    def running(self) -> bool:
        return bool(self.snap.get("running")) and self.state not in ("done", "stopped", "failed", "idle")

    def selected(self) -> dict[str, Any] | None:
        seqs = self.snap.get("sequences") or []
        if not seqs:
            return None
        self.cursor = max(0, min(self.cursor, len(seqs) - 1))
        return seqs[self.cursor]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select":
            return len(self.snap.get("sequences") or []) > 1 and not self.altitude
        if action == "altitude":
            return bool(self.snap.get("sequences"))
        if not self.app.rig.connected:  # type: ignore[attr-defined]
            return False
        snap, running = self.snap, self.running
        paused = bool(snap.get("paused"))
        if action == "open":
            return not running
        if action == "start":
            return bool(snap.get("sequences")) and not running and snap.get("done", 0) < snap.get("planned", 0)
        if action == "pause":
            return running and not paused
        if action == "resume":
            return running and paused
        if action in ("skip", "abort", "abort_now"):
            return running
        if action == "count":
            return self.selected() is not None
        if action == "exposure":
            q = self.selected()
            return q is not None and not q.get("done") and q.get("type") != "bias"
        return True

    def _first_load(self) -> None:
        """Nothing loaded in the service yet: load the default plan once."""
        if self._auto_loaded or not self.connected or self.app.rig.extra.get("capture"):  # type: ignore[attr-defined]
            return
        self._auto_loaded = True
        self.run_command(self._load(None))

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        if part in ("activities", "connection", "CaptureFrame"):
            self._dirty = True
            if part == "connection":
                self._first_load()
                self._tick()

    def _tick(self) -> None:
        """Once a second: the countdown and anything the service changed (only what differs
        reaches the terminal)."""
        if not self.is_mounted:
            return
        self.show_now()
        if self._dirty:
            self._dirty = False
            self.show_all()
        elif self.snap and (not self.running or self.snap.get("paused")):
            self.show_plan()  # the ETA moves on while nothing runs (the text changes once a minute)
        snap = self.snap
        plan_id = (snap.get("path"), tuple(t.get("name") for t in snap.get("targets") or []))
        if snap.get("targets") and self.connected and (
                plan_id != self._sky_plan or time.monotonic() - self._sky_at > SKY_EVERY_S):
            self._sky_plan, self._sky_at = plan_id, time.monotonic()
            self.run_worker(self._fetch_sky, group="capture-sky", exclusive=True, exit_on_error=False)

    # ----- drawing --------------------------------------------------------
    def show_all(self) -> None:
        if not self.is_mounted:
            return
        self.show_title()
        self.show_plan()
        self.show_now()
        self.show_last()
        self.show_sky()
        self.refresh_keys()

    def show_title(self) -> None:
        snap = self.snap
        act = self.app.rig.activities.get("capture") or {}  # type: ignore[attr-defined]
        if not snap:
            self.set_title("CAPTURE · no plan loaded · o opens one")
            return
        state = act.get("state", "idle")
        if snap.get("paused") and self.running:
            state = "paused" if state == "paused" else "pausing after this frame"
        text = f"CAPTURE · {snap.get('plan', '?')} · {state}"
        detail = act.get("detail") or ""
        waiting = snap.get("waiting") or {}
        if waiting.get("message"):  # a filter change, the meridian, the guider: what to do
            text += f" · {waiting['message']}" + (" · u goes on" if waiting.get("resume") else "")
        elif detail and state in ("stopped", "failed", "idle", "done"):
            text += f" · {detail}"
        elif not self.running and snap.get("done", 0) < snap.get("planned", 0):
            text += " · r runs it"
        self.set_title(text[:200])

    def show_plan(self) -> None:
        snap = self.snap
        box = self.query_one("#cap-plan", Static)
        seqs = snap.get("sequences") or []
        if self.altitude and seqs:
            self.show_altitude(box)
            return
        if not seqs:
            box.border_title = "plan"
            self.set_text("#cap-plan", "no plan loaded: o opens one\n\n"
                          "(`fieldtui plan new M31 > m31.toml` writes one)")
            return
        box.border_title = f"plan {snap.get('plan', '')}: {Path(str(snap.get('path') or '')).name}"
        cur = snap.get("current") or {}
        width = max(30, (box.size.width or 44) - 2)
        rows = max(3, (box.size.height or 14) - 3)
        self.selected()
        lines = []
        for i, q in enumerate(seqs):
            now = (self.running and cur.get("target") == q["target"] and cur.get("type") == q["type"]
                   and q["done"] < q["count"] and not any(p["done"] < p["count"] for p in seqs[:i]))
            mark = "▸" if i == self.cursor else " "
            lines.append(f"{mark}{'●' if now else ' '}{sequence_line(q, width - 2)}")
        top = max(0, min(self.cursor - rows // 2, len(lines) - rows))
        shown = lines[top:top + rows]
        if top > 0:
            shown[0] = f"  ↑ {top} more"
        if top + rows < len(lines):
            shown[-1] = f"  ↓ {len(lines) - top - rows + 1} more"
        if not self.running or snap.get("paused"):
            snap = dict(snap, at=self.app.rig.now())  # type: ignore[attr-defined]  # ETA from now
        self.set_text("#cap-plan", "\n".join(shown) + "\n\n" + "\n".join(x[:width] for x in night_line(snap).split("\n")))

    def show_now(self) -> None:
        snap = self.snap
        cur = snap.get("current")
        act = self.app.rig.activities.get("capture") or {}  # type: ignore[attr-defined]
        if not snap:
            text = "idle"
        elif not self.running:
            text = {"done": "plan complete", "stopped": "stopped", "failed": "failed"}.get(
                act.get("state", ""), "not running") + "\n" + ("r runs the plan" if act.get("state") != "done" else "")
        elif snap.get("paused") and act.get("state") == "paused":
            text = "paused\nu goes on"
        elif cur:
            exp = float(cur.get("exposure") or 0.0)
            elapsed = max(0.0, self.app.rig.now() - float(cur.get("started") or 0.0))  # type: ignore[attr-defined]
            head = f"{cur.get('target', '')} {cur.get('type', '')} {cur.get('index', 0)}/{cur.get('count', 0)}"
            if cur.get("detail"):
                head = f"{cur.get('type', '')}: {cur['detail']}"
            if elapsed < exp:
                text = f"{head}\n{exp_text(exp)} · {exp - elapsed:.0f} s left\n{bar(elapsed / exp if exp else 1, 24)}"
            else:
                text = f"{head}\n{exp_text(exp)} · reading out / saving\n{bar(1.0, 24)}"
            if "dither" in (act.get("detail") or ""):
                text = f"{head}\ndithering, settling…"
        else:
            text = act.get("detail") or "starting…"
        self.set_text("#cap-now", text)

    def show_last(self) -> None:
        snap = self.snap
        lines = figures_text(snap.get("last"))
        recent = snap.get("recent") or []
        if recent:
            marks = [bool(r[4]) for r in recent]
            lines.append(f"HFR   {sparkline([r[1] for r in recent], marks, 20)}")
            lines.append(f"stars {sparkline([r[2] for r in recent], marks, 20)}")
            hfrs = [r[1] for r in recent if r[1] is not None and not r[4]]
            span = f"HFR {min(hfrs):.2f}–{max(hfrs):.2f} · " if hfrs else ""
            lines.append(f"{span}× {sum(marks)}/{len(recent)}")
        self.set_text("#cap-last", "\n".join(x[:26] for x in lines))

    def show_sky(self) -> None:
        sky = self._sky
        if not self.snap:
            self.set_text("#cap-sky", "no plan")
            return
        if not sky:
            self.set_text("#cap-sky", "asking the service…" if self.connected else "–")
            return
        lines = []
        for t in sky.get("targets") or []:
            lines.append(f"{t['name'][:10]:<10} {t['alt_now']:5.1f}° now")
            lines.append(f"  transit {utc_hhmm(t.get('transit'))} UT {t.get('transit_alt', 0):.0f}°")
        dark = next((t.get("dark") for t in sky.get("targets") or [] if t.get("dark")), None)
        if dark:
            lines.append(f"dark {utc_hhmm(dark[0])}–{utc_hhmm(dark[1])} UT")
        self.set_text("#cap-sky", "\n".join(x[:26] for x in lines) or "no target with coordinates")

    def _plot_size(self, box: Static) -> tuple[int, int]:
        return max(40, (box.size.width or 50) - 2), max(10, (box.size.height or 16) - 2)

    def show_altitude(self, box: Static) -> None:
        """The plan panel as the night's altitude plot (text the service renders at the
        panel's size) with the plan's sky warnings under it."""
        box.border_title = "altitude tonight (a: back to the plan)"
        size = self._plot_size(box)
        plot = self._plot
        old = plot is None or plot["size"] != size or plot["plan"] != self._sky_plan \
            or time.monotonic() - plot["at"] > SKY_EVERY_S
        if old and self.connected and not self._plot_pending:
            self._plot_pending = True
            self.run_worker(self._fetch_plot(size, self._sky_plan), group="capture-plot", exit_on_error=False)
        if plot is None:
            self.set_text("#cap-plan", "asking the service…" if self.connected else "–")
            return
        warnings = plot.get("warnings") or []
        lines = (plot.get("plot") or "").splitlines()
        room = max(0, size[1] - len(lines))
        tail = [f"! {w}"[:size[0]] for w in warnings][:room] if warnings else []
        if warnings and len(warnings) > room and room:
            tail[-1] = f"! … {len(warnings) - room + 1} more warnings (fieldtui plan show)"[:size[0]]
        self.set_text("#cap-plan", "\n".join(lines + tail) or "no target with coordinates")

    async def _fetch_plot(self, size: tuple[int, int], plan_id: Any) -> None:
        try:
            res = await self.app.send("capture.sky", width=size[0], height=size[1] - 2)  # type: ignore[attr-defined]
        finally:
            self._plot_pending = False
        if isinstance(res, dict):
            self._plot = {"size": size, "plan": plan_id, "plot": res.get("plot") or "",
                          "warnings": res.get("warnings") or [], "at": time.monotonic()}
            self._sky = res
            self.show_plan()
            self.show_sky()

    def action_altitude(self) -> None:
        self.altitude = not self.altitude
        self.show_plan()
        self.refresh_keys()

    async def _fetch_sky(self) -> None:
        res = await self.app.send("capture.sky")  # type: ignore[attr-defined]
        if isinstance(res, dict):
            self._sky = res
            self.show_sky()

    # ----- keys -----------------------------------------------------------
    async def _send(self, name: str, **args: Any) -> Any:
        return await self.app.send(name, **args)  # type: ignore[attr-defined]

    async def _load(self, path: str | None) -> None:
        res = await self._send("capture.load", **({"plan": path} if path else {}))
        if isinstance(res, dict):
            self.cursor = 0
            self._sky = None
            what = f"{res['done']} of {res['planned']} frames done" if res.get("resumed") else \
                f"{res['planned']} frames planned"
            self.message(f"plan {res['plan']} loaded from {res['path']}: {what}")
            self._dirty = True

    def plan_files(self) -> list[Path]:
        """Plan files to offer: DATA/plans/*.toml and *.toml in the current folder that have a
        ``[[target]]`` (9 at most)."""
        def is_plan(p: Path) -> bool:
            try:
                return p.is_file() and p.stat().st_size < 1 << 20 and "[[target]]" in p.read_text(errors="replace")
            except OSError:
                return False
        found: list[Path] = []
        root = self.snap.get("root")
        for folder in ([Path(root) / "plans"] if root else []) + [Path.cwd()]:
            try:
                found += sorted(p for p in folder.glob("*.toml") if p not in found and is_plan(p))
            except OSError:
                continue
        return found[:9]

    def action_open(self) -> None:
        files = self.plan_files()

        def chosen(answer: str | None) -> None:
            if answer is None:
                return
            if answer.isdigit() and 1 <= int(answer) <= len(files):
                answer = str(files[int(answer) - 1])
            self.run_command(self._load(answer or None))
        listing = "".join(f"\n {i} {p}" for i, p in enumerate(files, 1))
        self.app.push_screen(AskScreen("Load which plan? A TOML file (`fieldtui plan new TARGET` writes one), "
                                       "a number from the list, or empty for the default plan." + listing,
                                       str(self.snap.get("path") or ""), "/path/to/plan.toml"), chosen)

    @in_worker
    async def action_start(self) -> None:
        res = await self._send("capture.start")
        if isinstance(res, dict):
            self.message(f"{res['plan']}: {'resuming' if res.get('resumed') else 'starting'}, "
                         f"{res['done']} of {res['planned']} frames done")

    @in_worker
    async def action_pause(self) -> None:
        if await self._send("capture.pause") is not None:
            self.message("pausing after the frame being taken: u goes on")

    @in_worker
    async def action_resume(self) -> None:
        if await self._send("capture.resume") is not None:
            self.message("going on")

    @in_worker
    async def action_skip(self) -> None:
        if await self._send("capture.skip") is not None:
            self.message("skipping the rest of this sequence after the frame being taken")

    @in_worker
    async def action_abort(self) -> None:
        if await self._send("capture.abort") is not None:
            self.message("stopping after the frame being taken; r takes the plan up again")

    def action_abort_now(self) -> None:
        self.ask("Abort now? The frame being taken is dropped (it is taken again when the plan "
                 "resumes).", self._abort_now)

    async def _abort_now(self) -> None:
        if await self._send("capture.abort", now=True) is not None:
            self.message("aborted; r takes the plan up again")

    def action_select(self, step: int) -> None:
        n = len(self.snap.get("sequences") or [])
        if n:
            self.cursor = max(0, min(n - 1, self.cursor + step))
            self.show_plan()
            self.refresh_keys()

    def _ask_edit(self, field: str, prompt: str, shown: str, parse: Any, what: str) -> None:
        """Ask for a new value of the selected sequence's ``field`` (``parse`` turns the
        answer into it, ValueError: ``what`` it must be) and send ``capture.edit``."""
        q = self.selected()
        if q is None:
            return
        ti, si = q["ti"], q["si"]

        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                value = parse(text)
            except ValueError:
                self.message(f"{what}, not {text!r}", "error")
                return
            self.run_command(self._edit(ti, si, **{field: value}))
        self.app.push_screen(AskScreen(prompt.format(**q), shown), chosen)

    def action_count(self) -> None:
        q = self.selected() or {}
        self._ask_edit("count", "Frames for {target} {type} ({done} taken):", str(q.get("count", "")),
                       int, "a count is a whole number")

    def action_exposure(self) -> None:
        now = (self.selected() or {}).get("exposure")
        self._ask_edit("exposure", "Exposure (s) for {target} {type}:", "" if now is None else f"{now:g}",
                       lambda text: float(text.rstrip("s ")), "an exposure is a number of seconds")

    async def _edit(self, ti: int, si: int, **args: Any) -> None:
        res = await self._send("capture.edit", target=ti, sequence=si, **args)
        if isinstance(res, dict):
            exp = "" if res.get("exposure") is None else f", {res['exposure']:g} s"
            self.message(f"{res['target']} {res['type']}: {res['count']} frames{exp}"
                         f"{' (the running plan follows)' if self.running else ''}")
