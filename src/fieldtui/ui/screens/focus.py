"""Focus: live frames from a camera, drawn in the theme's reds."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ..widgets.frameview import FrameView, decode_preview
from .base import StageScreen


class FocusScreen(StageScreen):
    TITLE_TEXT = "FOCUS  l loop · v camera"
    BINDINGS = [
        Binding("l", "toggle_loop", "Loop"),
        Binding("v", "switch_camera", "Camera"),
    ]
    camera = "guide_camera"

    def body(self) -> ComposeResult:
        yield FrameView(night=self.app.current_theme.name.endswith("night"), id="frame")
        yield Static("", id="focus-info", markup=False)

    def on_mount(self) -> None:
        self.show_preview()

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        if part in ("preview", "connection"):
            self.show_preview()
        if part in ("activities", "connection"):
            self.show_info()

    def show_preview(self) -> None:
        p = self.app.rig.previews.get(self.camera)  # type: ignore[attr-defined]
        view = self.query_one("#frame", FrameView)
        view.show(decode_preview(p) if p else None)
        self.show_info()

    def show_info(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        act = rig.activities.get(f"loop:{self.camera}", {})
        p = rig.previews.get(self.camera) or {}
        st = p.get("stats", {})
        text = (f"{self.camera.replace('_', ' ')} · loop {act.get('state', 'off')}"
                + (f" · {act.get('detail')}" if act.get("detail") else "")
                + (f" · median {st.get('median', 0):.0f} max {st.get('max', 0)}" if st else ""))
        self.query_one("#focus-info", Static).update(text)

    async def action_toggle_loop(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        running = rig.activities.get(f"loop:{self.camera}", {}).get("state") == "running"
        await self.app.send("loop.stop" if running else "loop.start", camera=self.camera)  # type: ignore[attr-defined]

    def action_switch_camera(self) -> None:
        self.camera = "main_camera" if self.camera == "guide_camera" else "guide_camera"
        self.show_preview()
