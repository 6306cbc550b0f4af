"""A PlotextPlot that redraws at most MAX_HZ times a second, and only when its data changed.

Each plot draws with its own ``plt`` (never the global plotext module);
subclasses fill :meth:`ThrottledPlot.build_plot`.
"""

from __future__ import annotations

import time
from typing import Any

from textual_plotext import PlotextPlot

MAX_HZ = 2.0


def with_note(note: str, title: str, width: int) -> str:
    """A panel's title with a note first ("12 s old · RA bright, Dec dim · ±2″ · 10 min"),
    fitted to a panel ``width`` columns wide (0: not laid out yet, no limit): the title's
    last " · " parts go first, so the note always shows whole."""
    if not note:
        return title
    room = width - 4 if width else 10**6  # the border's corners and a space each side
    parts = title.split(" · ") if title else []
    while parts and len(note) + 3 + len(" · ".join(parts)) > room:
        parts.pop()
    return " · ".join([note, *parts])


class ThrottledPlot(PlotextPlot):
    """A PlotextPlot redrawn at most MAX_HZ times a second, and only when its data changed."""

    def __init__(self, night: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.night = night
        self._dirty = False
        self._last_draw = 0.0
        self._timer: Any = None
        self._stale = ""
        self._title = ""  # the title build_plot gave, before the stale/age note
        self.draws = 0

    @property
    def stale(self) -> str:
        """'' for live data; else a note ("stale", "12 s old") the title starts with. Changing
        it redraws the title only, not the plot."""
        return self._stale

    @stale.setter
    def stale(self, note: str) -> None:
        if note != self._stale:
            self._stale = note
            self._show_title()

    def _show_title(self) -> None:
        title = with_note(self._stale, self._title, self.size.width)
        if self.border_title != title:
            self.border_title = title

    def on_resize(self) -> None:
        self._show_title()

    def set_night(self, night: bool) -> None:
        self.night = night
        self.changed()

    def changed(self) -> None:
        self._dirty = True
        if not self.is_mounted:
            return
        wait = 1.0 / MAX_HZ - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self._draw()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._draw)

    def on_mount(self) -> None:
        if self._dirty:
            self._draw()

    def _draw(self) -> None:
        self._timer = None
        if not self._dirty:
            return
        self._dirty = False
        self._last_draw = time.monotonic()
        self.draws += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.border_title = self._title  # (build_plot sets its own title, or keeps this one)
        self.build_plot()
        self._title = str(self.border_title or "")
        self._show_title()
        self.refresh()

    def build_plot(self) -> None:  # pragma: no cover - subclasses draw
        raise NotImplementedError
