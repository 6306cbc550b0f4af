"""Calibration: the field guide's rules for every set of lights in the frame library, and
one key that adds what is missing to the plan.

The rig service checks (``calibration.check``: the library brought up to date
with the files under the data root, then the rules of
``capture/calibration.py``); this screen draws its snapshot
(``rig.extra["calibration"]``) and checks again when shown and whenever a
capture set finishes. ``a`` sends ``calibration.append``: the loaded plan
gets a sequence for every rule still short that it does not already queue.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from .base import StageScreen, in_worker
from .capture import utc_hhmm

MARK = {"done": "✓", "missing": "✗", "mismatched": "✗", "optional": "·"}
RULE_NAMES = {"darks": "darks", "flats": "flats", "biases": "biases", "darkflats": "dk flats"}


def set_heading(s: dict[str, Any]) -> str:
    """'M31 · 10 lights ISO 800 60 s 13 °C L · night 2027-01-15 · focus 5000'."""
    setting = f"gain {s['gain']}" if s.get("gain") is not None else f"ISO {s.get('iso')}"
    temp = "? °C" if s.get("temperature") is None else f"{s['temperature']:g} °C"
    filt = f" {s['filter']}" if s.get("filter") else ""
    focus = f" · focus {s['focus']}" if s.get("focus") is not None else ""
    return (f"{s.get('object', '')} · {s.get('count', 0)} lights {setting} {s.get('exposure', 0):g} s "
            f"{temp}{filt} · night {s.get('night', '')}{focus}")


def rule_line(r: dict[str, Any], width: int = 0) -> str:
    """'  ✗ darks    mismatched  0/10  darks at ISO 1600, lights at ISO 800 · 20 queued'; with
    ``width``, the reason wraps under itself."""
    text = (f"  {MARK.get(r['state'], '?')} {RULE_NAMES.get(r['rule'], r['rule']):<8} {r['state']:<10} "
            f"{r.get('have', 0):>3}/{r.get('need', 0):<3}  ")
    extra = [x for x in (r.get("reason"), r.get("note")) if x]
    if r.get("queued") and r["state"] in ("missing", "mismatched"):
        extra.append(f"{r['queued']} queued in the plan")
    why = " · ".join(extra)
    if width and len(text) + len(why) > width and width - len(text) >= 20:
        import textwrap
        return textwrap.fill(why, width, initial_indent=" " * len(text), subsequent_indent=" " * len(text),
                             break_on_hyphens=False).replace(" " * len(text), text, 1)
    return (text + why).rstrip()


def checklist_text(snap: dict[str, Any], width: int = 0) -> str:
    """Every light set of the ``calibration`` snapshot with its rules, reasons wrapped at ``width``."""
    sets = snap.get("sets") or []
    if not sets:
        return (f"no lights in the library under {snap.get('root', 'the data root')} yet"
                f" ({snap.get('frames', 0)} frames indexed)")
    out = []
    for s in sets:
        out.append(set_heading(s))
        out.extend(rule_line(r, width) for r in s.get("rules") or [])
        out.append("")
    return "\n".join(out).rstrip()


def short_count(snap: dict[str, Any]) -> int:
    """Rules missing or mismatched over every light set of the snapshot."""
    return sum(1 for s in snap.get("sets") or [] for r in s.get("rules") or []
               if r["state"] in ("missing", "mismatched"))


class CalibrationScreen(StageScreen):
    TITLE_TEXT = "CALIBRATION"
    DEFAULT_CSS = """
    CalibrationScreen #cal-scroll { height: 1fr; border: round $border-blurred; scrollbar-size-horizontal: 0; }
    CalibrationScreen #cal-list { padding: 0 1; color: $text; }
    """
    BINDINGS = [
        Binding("a", "append", "Add missing", tooltip="add a sequence for every rule still short to the "
                "loaded plan (the running plan takes them after its current sequence)"),
        Binding("r", "check", "Recheck", tooltip="index new frames and check the rules again"),
        Binding("down", "scroll(1)", "Down", show=False, tooltip="scroll down"),
        Binding("up", "scroll(-1)", "Up", show=False, tooltip="scroll up"),
        Binding("pagedown", "scroll(10)", "Page down", show=False, tooltip="scroll a page down"),
        Binding("pageup", "scroll(-10)", "Page up", show=False, tooltip="scroll a page up"),
    ]

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._checking = False

    def body(self) -> ComposeResult:
        with VerticalScroll(id="cal-scroll", classes="live"):
            yield Static("", id="cal-list", markup=False)

    def on_mount(self) -> None:
        self.query_one("#cal-scroll").border_title = "light sets and their calibration"
        self.show_all()
        self._check()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.show_all()
        self._check()

    def on_resize(self) -> None:
        self.show_all()

    @property
    def snap(self) -> dict[str, Any]:
        return self.app.rig.extra.get("calibration") or {}  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "scroll":
            return True
        if not self.app.rig.connected:  # type: ignore[attr-defined]
            return False
        if action == "append":
            return short_count(self.snap) > 0 and bool((self.app.rig.extra.get("capture") or {}).get("plan"))  # type: ignore[attr-defined]
        return True

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        if part == "CaptureSetFinished":
            self._check()
        elif part == "connection":
            if self.connected:
                self._check()
            self.show_all()
        elif part == "activities":
            self.show_all()

    def _check(self) -> None:
        if self.connected and self.is_mounted:
            self.run_worker(self._send_check, group="calibration-check", exclusive=True, exit_on_error=False)

    async def _send_check(self) -> None:
        self._checking = True
        self.show_title()
        try:
            await self.app.send("calibration.check")  # type: ignore[attr-defined]
        finally:
            self._checking = False
        self.show_all()

    def show_title(self) -> None:
        snap = self.snap
        if not snap:
            self.set_title("CALIBRATION · checking the library…" if self._checking else "CALIBRATION")
            return
        n = short_count(snap)
        text = (f"CALIBRATION · {len(snap.get('sets') or [])} light sets · "
                f"{n} rule{'s' if n != 1 else ''} short · checked {utc_hhmm(snap.get('checked'))} UT")
        if self._checking:
            text += " · checking…"
        if n and not snap.get("plan"):
            text += " · load a plan (c, o) to add what is missing"
        self.set_title(text)

    def show_all(self) -> None:
        if not self.is_mounted:
            return
        self.show_title()
        snap = self.snap
        width = self.query_one("#cal-list").size.width
        self.set_text("#cal-list", checklist_text(snap, width) if snap else "checking the library…")
        self.refresh_keys()

    @in_worker
    async def action_check(self) -> None:
        await self._send_check()

    @in_worker
    async def action_append(self) -> None:
        res = await self.app.send("calibration.append")  # type: ignore[attr-defined]
        if not isinstance(res, dict):
            return
        if res.get("added"):
            when = ("the running plan takes them after its current sequence" if res.get("running")
                    else "they run at the next start (Capture screen, r)")
            self.message(f"added to {res['plan']}: {'; '.join(res['added'])} · {when}")
        else:
            self.message(f"nothing to add: {'; '.join(res.get('queued') or []) or 'every rule is met'}")
        self.show_all()

    def action_scroll(self, lines: int) -> None:
        box = self.query_one("#cal-scroll", VerticalScroll)
        box.scroll_to(y=box.scroll_y + lines, animate=False)
