"""The footer: the keys that apply now, wrapped to the width.

The first entries are the stages of the night (the current one marked) and
the app's keys, then the keys of the screen shown, grouped ("[] Foc").
A key whose action does not apply in the current state (``check_action``
says False: no dither while not guiding, no commands while the service is
gone) is left out, so every key shown does something.
"""

from __future__ import annotations

from typing import Any

from textual.actions import parse
from textual.content import Content
from textual.markup import escape
from textual.widgets import Static


def applies(owner: Any, action: str) -> bool:
    _, name, params = parse(action)
    try:
        return owner.check_action(name, params) is not False
    except Exception:  # noqa: BLE001 - a screen still composing: show the key
        return True


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { height: auto; background: $footer-background; }
    """

    def __init__(self) -> None:
        super().__init__("")
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        self.refresh_keys()

    def on_screen_resume(self) -> None:
        self.refresh_keys(force=True)

    def keys(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """(key, label, action) of the app's and the screen's keys shown now."""
        app, screen = self.app, self.screen
        app_keys = [(b.key_display or b.key.split(",")[0], b.description, b.action) for b in app.BINDINGS  # type: ignore[union-attr]
                    if getattr(b, "show", True) and applies(app, b.action)]
        screen_keys: list[tuple[str, str, str]] = []
        last_group = None
        for b in getattr(screen, "BINDINGS", []):
            if isinstance(b, tuple) or not b.show or not applies(screen, b.action):
                continue
            shown = b.key_display or b.key.split(",")[0]
            if b.group is not None and b.group is last_group:
                k, d, a = screen_keys[-1]
                screen_keys[-1] = (k + shown, d, a)  # grouped keys share one label: "-+ Exp"
                continue
            last_group = b.group
            screen_keys.append((shown, b.group.description if b.group else b.description, b.action))
        return app_keys, screen_keys

    def refresh_keys(self, force: bool = False) -> None:
        app_keys, screen_keys = self.keys()
        mode = getattr(self.app, "current_mode", "")
        state = (tuple(app_keys), tuple(screen_keys), mode, self.app.theme, self.size.width)
        if state == self._shown and not force:
            return
        self._shown = state
        width = max(self.size.width, 40) if self.size.width else 80
        # Theme variables in the markup: a theme switch restyles it without a rebuild.
        key, desc, current = "b $footer-key-foreground", "$footer-description-foreground", "b reverse"
        lines: list[list[str]] = [[]]
        used = 0

        def add(k: str, d: str, here: bool = False, gap: str = " ") -> None:
            nonlocal used
            item = len(k) + len(d) + 1 + len(gap)
            if lines[-1] and used + item > width:
                lines.append([])
                used = 0
            kst, dst = (current, current) if here else (key, desc)
            lines[-1].append(f"[{kst}]{escape(k)}[/][{dst}] {escape(d)}[/]{gap}")
            used += item

        for k, d, action in app_keys:
            add(k, d, here=action == f"stage('{mode}')")
        lines.append([])  # the screen's keys on lines of their own
        used = 0
        for k, d, _ in screen_keys:
            add(k, d, gap="  ")
        lines = [x for x in lines if x]
        self.styles.height = len(lines)
        if self.parent is not None:
            self.parent.styles.height = 2 + len(lines)
        self.update(Content.from_markup("\n".join("".join(x) for x in lines)))
