"""What every stage screen shares: a title line, the status bar and the footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from ..widgets.keybar import KeyBar
from ..widgets.status import StatusBar


class StageScreen(Screen):
    TITLE_TEXT = ""

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
