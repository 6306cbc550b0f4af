"""Small pop-ups over a stage screen: a one-key confirmation, the help for every key, and the
night's alerts."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from textual import events
from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """``y`` confirms; any other key cancels. The question says what will be lost."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; background: $background 0%; }
    ConfirmScreen > Static { width: 64; max-width: 100%; height: auto; padding: 0 1;
                             border: heavy $border; background: $background; color: $text-primary; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}\n\ny: yes · any other key: no", markup=False)

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self.dismiss(event.key == "y")


def key_name(b: Binding) -> str:
    return b.key_display or b.key.split(",")[0]


def help_lines(screen: Screen, app: Any) -> list[str]:
    """One line per key of ``screen`` and of the app: key, what it does, and whether it applies now."""
    lines: list[str] = []

    def add(owner: Any, bindings: list[Any], heading: str) -> None:
        lines.append(heading)
        for b in bindings:
            if isinstance(b, tuple):
                continue
            _, name, params = parse(b.action)
            ok = owner.check_action(name, params)
            text = b.tooltip or b.description
            now = "" if ok is not False else "  (not now)"
            lines.append(f" {key_name(b):>3}  {text}{now}")

    add(screen, [b for b in getattr(screen, "BINDINGS", [])], f"{getattr(screen, 'TITLE_TEXT', '').split()[0]} keys")
    add(app, list(app.BINDINGS), "everywhere")
    return lines


class TextBox(ModalScreen[None]):
    """A scrolling box of text over the screen below: ``↑↓`` / ``j k`` scroll a line, space and
    Page keys ten, Esc, ``q`` or the key that opened it (:attr:`KEY`) closes. Subclasses give
    :attr:`KEY`, :attr:`BOX_TITLE`, :attr:`TEXT_ID`, and :meth:`lines`."""

    DEFAULT_CSS = """
    TextBox { align: center middle; background: $background; }
    TextBox VerticalScroll { width: 100%; max-width: 100; height: 100%; border: round $border;
                             background: $background; }
    TextBox Static { color: $text; padding: 0 1; }
    """
    KEY = ""
    BOX_TITLE = ""
    TEXT_ID = ""
    BINDINGS = [
        Binding("escape,q", "close", "Close"),
        Binding("down,j", "scroll(1)", "Down", show=False),
        Binding("up,k", "scroll(-1)", "Up", show=False),
        Binding("pagedown,space", "scroll(10)", "Page down", show=False),
        Binding("pageup", "scroll(-10)", "Page up", show=False),
    ]

    def lines(self) -> list[str]:  # pragma: no cover - subclasses say
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = self.BOX_TITLE
            yield Static("\n".join(self.lines()), id=self.TEXT_ID, markup=False)

    def on_key(self, event: events.Key) -> None:
        if event.key == self.KEY:
            event.stop()
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, lines: int) -> None:
        box = self.query_one(VerticalScroll)
        box.scroll_to(y=box.scroll_y + lines, animate=False)


class HelpScreen(TextBox):
    """Every key of the screen below and of the app, with what it does (``?``, Esc or q closes)."""

    KEY = "question_mark"
    BOX_TITLE = "keys · ↑↓ scroll · ? Esc q close"
    TEXT_ID = "help-text"

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def lines(self) -> list[str]:
        return help_lines(self.under, self.app)


def alert_lines(alerts: list[dict[str, Any]]) -> list[str]:
    """The alerts (event dicts: ``t`` unix time, ``level``, ``source``, ``text``), newest
    first, one line each: ``21:43:05 UT  warning  guiding: star lost``."""
    lines = []
    for a in reversed(alerts):
        t = a.get("t")
        stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S UT") if t else "--:--:-- UT"
        who = f"{a['source']}: " if a.get("source") else ""
        lines.append(f"{stamp}  {a.get('level', 'info'):<8} {who}{a.get('text', '')}")
    return lines or ["no alerts yet tonight"]


class AlertsScreen(TextBox):
    """The alerts the client has (the service's last 20 when it connected, and every one since,
    up to 50), newest first and in full (``!``, Esc or q closes); the status bar shows only the
    latest, cut to the terminal's width."""

    KEY = "exclamation_mark"
    BOX_TITLE = "alerts, newest first · ↑↓ scroll · ! Esc q close"
    TEXT_ID = "alerts-text"

    def lines(self) -> list[str]:
        return alert_lines(self.app.rig.alerts)  # type: ignore[attr-defined]
