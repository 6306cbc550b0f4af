"""The footer: two lines of keys, so every action's key shows even at 80 columns.

The first line lists the stages of the night (the current one marked) and
the app's keys; the next lines the keys of the screen shown, grouped
("[] Foc") and wrapped to the width.
"""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.widgets import Static


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

    def refresh_keys(self, force: bool = False) -> None:
        screen = self.screen
        app_keys = [(b.key_display or b.key, b.description, b.action) for b in self.app.BINDINGS  # type: ignore[union-attr]
                    if getattr(b, "show", True)]
        screen_keys: list[tuple[str, str, str]] = []
        last_group = None
        for b in getattr(screen, "BINDINGS", []):
            if isinstance(b, tuple) or not b.show:
                continue
            shown = b.key_display or b.key.split(",")[0]
            if b.group is not None and b.group is last_group:
                k, d, a = screen_keys[-1]
                screen_keys[-1] = (k + shown, d, a)  # grouped keys share one label: "-+ Exp"
                continue
            last_group = b.group
            screen_keys.append((shown, b.group.description if b.group else b.description, b.action))
        mode = getattr(self.app, "current_mode", "")
        state = (tuple(app_keys), tuple(screen_keys), mode, self.app.theme)
        if state == self._shown and not force:
            return
        self._shown = state
        width = max(self.size.width, 40) if self.size.width else 80
        # Theme variables in the markup: a theme switch restyles it without a rebuild.
        key, desc, current = "b $footer-key-foreground", "$footer-description-foreground", "b reverse"
        line1 = []
        for k, d, action in app_keys:
            here = action == f"stage('{mode}')"
            line1.append(f"[{current if here else key}]{escape(k)}[/][{current if here else desc}] {escape(d)} [/] ")
        # The screen's keys, wrapped over as many lines as they need.
        lines: list[list[str]] = [[]]
        used = 0
        for k, d, _ in screen_keys:
            item = len(k) + len(d) + 3
            if lines[-1] and used + item > width:
                lines.append([])
                used = 0
            lines[-1].append(f"[{key}]{escape(k)}[/][{desc}] {escape(d)}  [/]")
            used += item
        self.styles.height = 1 + len(lines)
        if self.parent is not None:
            self.parent.styles.height = 2 + len(lines)
        self.update(Content.from_markup("\n".join("".join(x) for x in [line1, *lines])))
