"""What every stage screen shares: a title line, the message line, the status bar and the key bar;
commands in workers, one-key confirmations, and panels marked stale when the service is gone."""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from ..widgets.keybar import KeyBar
from ..widgets.message import MessageLine
from ..widgets.status import StatusBar
from .dialogs import ConfirmScreen


async def in_lane(app: Any, lane: str, coro: Awaitable[Any], name: str = "command") -> Any:
    """Await ``coro`` after the commands sent before it in the same lane (keys act in the
    order pressed: two focuser steps move two steps, never race). The one place an
    unexpected failure of a key's work becomes a message (and nothing else is lost)."""
    lanes = app.__dict__.setdefault("_command_lanes", {})
    lock = lanes.setdefault(lane, asyncio.Lock())
    async with lock:  # asyncio.Lock wakes its waiters first come, first served
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 - reported, never a traceback over the screen
            app.notify(f"{name} failed: {type(exc).__name__}: {exc}", severity="error")
            return None


def in_worker(fn: Callable[..., Awaitable[Any]] | None = None, *, lane: str = "commands") -> Any:
    """Run an async action in a worker: the key returns at once, the next key is handled
    (``q`` quits) while the service answers. Commands of one lane run in the order of their
    keys; a long one (the check) has a lane of its own. Failures reach the message line
    (``App.send`` and the app's worker-error handler)."""
    def wrap(f: Callable[..., Awaitable[Any]]) -> Callable[..., None]:
        @functools.wraps(f)
        def action(self: Any, *args: Any) -> None:
            name = f.__name__.removeprefix("action_").replace("_", " ")
            self.run_worker(in_lane(self.app, lane, f(self, *args), name), group="commands", name=name,
                            exit_on_error=False)
        return action
    return wrap(fn) if fn is not None else wrap


def hhmm(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%H:%M")


def bar(done: float, width: int = 10) -> str:
    """A progress bar of ``width`` cells for ``done`` in [0, 1]."""
    n = int(max(0.0, min(1.0, done)) * width + 0.5)
    return "▮" * n + "▯" * (width - n)


def mmss(seconds: float) -> str:
    """A duration as the title shows it: '42 s', '1:10', '1:02:03'."""
    s = int(max(0.0, seconds) + 0.5)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def age_text(seconds: float) -> str:
    """How old data is: '12 s old', '3 min old', '1.5 h old'."""
    if seconds < 90:
        return f"{seconds:.0f} s old"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min old"
    return f"{seconds / 3600:.1f} h old"


def time_left(left_s: float | None, at: float | None, now: float) -> float | None:
    """Seconds left now, from an estimate of ``left_s`` made at clock time ``at``."""
    if left_s is None:
        return None
    return max(0.0, float(left_s) - max(0.0, now - float(at or now)))


#: seconds without any event (the service sends a heartbeat every 5 s) before panels are stale
SILENT_S = 30.0


class StageScreen(Screen):
    TITLE_TEXT = ""
    DEFAULT_CSS = """
    StageScreen.-stale .live { opacity: 45%; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown_texts: dict[str, str] = {}

    @property
    def night(self) -> bool:
        return self.app.theme != "fieldtui-day"

    @property
    def connected(self) -> bool:
        return bool(self.app.rig.connected)  # type: ignore[attr-defined]

    def stale_note(self) -> str:
        """'' while the service answers; else what the title says instead of live state (also
        when it is connected but has sent nothing, not even its 5 s heartbeat, for SILENT_S)."""
        rig = self.app.rig  # type: ignore[attr-defined]
        if rig.connected:
            silent = rig.silent_for()
            return f"STALE: no news from the rig service for {mmss(silent)}" if silent > SILENT_S else ""
        if rig.lost_at:
            return f"STALE: service not running since {hhmm(rig.lost_at)} UT · R starts it"
        return "no rig service answers · R starts it"

    def set_text(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed (nothing else is sent to the terminal)."""
        if self._shown_texts.get(selector) != text:
            self._shown_texts[selector] = text
            self.query_one(selector, Static).update(text)

    def set_title(self, text: str) -> None:
        """The title line; while the service is gone it says so first."""
        note = self.stale_note()
        self.set_text(".title", f"{text.split(' · ')[0]} · {note}" if note else text)

    def compose(self) -> ComposeResult:
        yield Static(self.TITLE_TEXT, classes="title", markup=False)
        with Vertical(id="bottom"):
            yield MessageLine()
            yield StatusBar()
            yield KeyBar()
        yield from self.body()

    def body(self) -> ComposeResult:
        return iter(())

    def on_screen_resume(self) -> None:
        self._mark_stale()

    def _mark_stale(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        self._silent = rig.connected and rig.silent_for() > SILENT_S
        self.set_class((not rig.connected or self._silent) and bool(rig.snapshot), "-stale")
        self.show_title()

    def on_mount(self) -> None:
        self._silent = False
        self.set_interval(1.0, self._watch_news)

    def _watch_news(self) -> None:
        """Once a second: a service that went silent (or spoke again) changes the title and
        dims the panels; while silent, the title counts the seconds."""
        rig = self.app.rig  # type: ignore[attr-defined]
        silent = rig.connected and rig.silent_for() > SILENT_S
        if silent or silent != getattr(self, "_silent", False):
            self._mark_stale()

    def show_title(self) -> None:
        self.set_title(self.TITLE_TEXT)

    def rig_changed(self, part: str) -> None:
        """The rig's state changed (``part`` says where); redraw what shows it."""
        if part in ("connection", "devices", "alerts", "activities", "heartbeat"):
            for bar in self.query(StatusBar):
                bar.refresh_state()
        if part == "connection":
            self._mark_stale()
        self.refresh_keys()

    def refresh_keys(self) -> None:
        """Show only the keys that apply now (the bar redraws only when that changes)."""
        for bar in self.query(KeyBar):
            bar.refresh_keys()

    def message(self, text: str, severity: str = "information") -> None:
        self.app.notify(text, severity=severity)  # type: ignore[arg-type]

    def run_command(self, coro: Awaitable[Any], lane: str = "commands") -> None:
        """Send a command from a key without waiting for it (in order within its lane)."""
        self.run_worker(in_lane(self.app, lane, coro), group="commands", exit_on_error=False)

    def ask(self, question: str, then: Callable[[], Awaitable[Any]], lane: str = "commands") -> None:
        """Ask once; ``y`` runs ``then`` in a worker (in ``lane``), any other key drops it."""
        def answered(yes: bool | None) -> None:
            if yes:
                self.run_command(then(), lane=lane)
            else:
                self.message("cancelled")
        self.app.push_screen(ConfirmScreen(question), answered)


class ComingScreen(StageScreen):
    """A stage whose tools arrive later: it says which, and shows the rig's state meanwhile."""

    COMING = ""

    def body(self) -> ComposeResult:
        yield Static(self.COMING, classes="coming", markup=False)
