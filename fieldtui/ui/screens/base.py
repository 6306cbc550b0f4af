"""What every stage screen shares: a title line, the status bar and the footer."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from ..widgets.keybar import KeyBar
from ..widgets.status import StatusBar


class StageScreen(Screen):
    TITLE_TEXT = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown_texts: dict[str, str] = {}

    @property
    def night(self) -> bool:
        return self.app.theme != "fieldtui-day"

    def set_text(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed (nothing else is sent to the terminal)."""
        if self._shown_texts.get(selector) != text:
            self._shown_texts[selector] = text
            self.query_one(selector, Static).update(text)

    def compose(self) -> ComposeResult:
        yield Static(self.TITLE_TEXT, classes="title", markup=False)
        with Vertical(id="bottom"):
            yield StatusBar()
            yield KeyBar()
        yield from self.body()

    def body(self) -> ComposeResult:
        return iter(())

    def rig_changed(self, part: str) -> None:
        """The rig's state changed (``part`` says where); redraw what shows it."""
        if part in ("connection", "devices", "alerts", "activities", "heartbeat"):
            for bar in self.query(StatusBar):
                bar.refresh_state()


class ComingScreen(StageScreen):
    """A stage whose tools arrive later: it says which, and shows the rig's state meanwhile."""

    COMING = ""

    def body(self) -> ComposeResult:
        yield Static(self.COMING, classes="coming", markup=False)
