"""The message line: one fixed line above the status bar for what the last key or alert said.

It never covers anything (Textual's pop-up notifications covered the key bar
for seconds): a message replaces the previous one, says when it came
("21:43 ") and clears after a while; an error stays longer.
"""

from __future__ import annotations

import time

from textual.widgets import Static

#: seconds a message stays, by severity
KEEP_S = {"information": 8.0, "warning": 20.0, "error": 30.0, "critical": 120.0}


class MessageLine(Static):
    DEFAULT_CSS = """
    MessageLine { height: 1; background: $background; color: $text; text-wrap: nowrap; text-overflow: ellipsis; }
    MessageLine.-warning, MessageLine.-error, MessageLine.-critical { color: $text-error; }
    MessageLine.-critical { text-style: reverse; }
    """

    def __init__(self) -> None:
        super().__init__("", markup=False)
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        self.refresh_message()
        self.set_interval(1.0, self.refresh_message)

    def on_screen_resume(self) -> None:
        self.refresh_message()

    def refresh_message(self) -> None:
        msg = getattr(self.app, "message", None)
        if msg is None or time.monotonic() - msg[3] > KEEP_S.get(msg[1], 8.0):
            state: tuple = ("", "information")
        else:
            state = (msg[0], msg[1])
        if state != self._shown:
            self._shown = state
            for level in ("warning", "error", "critical"):
                self.set_class(state[1] == level, f"-{level}")
            self.update(state[0])
