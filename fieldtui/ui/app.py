"""The terminal client: one screen per stage of the night, a thin view of the rig service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding

from ..service.client import CommandFailed, RigClient, ServiceUnavailable
from .screens.equipment import EquipmentScreen
from .screens.focus import FocusScreen
from .screens.guiding import GuidingScreen
from .screens.stages import CalibrationScreen, CaptureScreen, StackingScreen
from .state import RigState
from .theme import load_theme

STAGES = (
    ("e", "equipment", "Equip"),
    ("f", "focus", "Focus"),
    ("g", "guiding", "Guide"),
    ("c", "capture", "Capture"),
    ("k", "calibration", "Calib"),
    ("s", "stacking", "Stack"),
)


class FieldApp(App):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "fieldtui"
    MODES = {
        "equipment": EquipmentScreen,
        "focus": FocusScreen,
        "guiding": GuidingScreen,
        "capture": CaptureScreen,
        "calibration": CalibrationScreen,
        "stacking": StackingScreen,
    }
    BINDINGS = [
        *[Binding(key, f"stage('{mode}')", label) for key, mode, label in STAGES],
        Binding("t", "toggle_theme", "Day/Night"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, socket_path: Path | None = None, theme: str = "night") -> None:
        super().__init__()
        self.socket_path = socket_path
        self.rig = RigState()
        self.client: RigClient | None = None
        self.animation_level = "none"
        self._start_theme = theme
        for name in ("night", "day"):
            self.register_theme(load_theme(name))

    def on_mount(self) -> None:
        self.theme = f"fieldtui-{self._start_theme}"
        self.switch_mode("equipment")
        self.run_worker(self._connection(), name="rig-connection", exclusive=True, exit_on_error=False)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # The terminal went away (SSH dropped): leave quietly, the service keeps the night.
            loop.add_signal_handler(signal.SIGHUP, self._hangup)

    def _hangup(self) -> None:
        """Exit; if restoring a terminal that is gone hangs (it can, inside Textual's
        writer), leave anyway after a moment: the client holds nothing to lose."""
        timer = threading.Timer(2.0, os._exit, args=(0,))
        timer.daemon = True
        timer.start()
        self.exit()

    async def _connection(self) -> None:
        while True:
            client = RigClient(self.socket_path)
            try:
                hello = await client.connect(timeout=3.0)
            except (ServiceUnavailable, OSError, Exception):
                if self.rig.connected:
                    self.rig.connected = False
                    self._changed("connection")
                await asyncio.sleep(1.0)
                continue
            self.client = client
            self.rig.load(hello.get("snapshot", {}))
            self._changed("connection")
            async for ev in client.events():
                self._changed(self.rig.apply(ev))
            self.client = None
            self.rig.connected = False
            self._changed("connection")
            await client.close()
            await asyncio.sleep(0.5)

    def _changed(self, part: str) -> None:
        screen = self.screen
        handler = getattr(screen, "rig_changed", None)
        if handler is not None:
            handler(part)

    async def send(self, name: str, /, **args: Any) -> Any:
        if self.client is None:
            self.notify("not connected to the rig service", severity="error")
            return None
        try:
            return await self.client.command(name, **args)
        except (CommandFailed, ServiceUnavailable, asyncio.TimeoutError) as exc:
            self.notify(str(exc) or "command failed", severity="error")
            return None

    def action_stage(self, mode: str) -> None:
        self.switch_mode(mode)
        self.call_after_refresh(self._changed, "connection")

    def action_toggle_theme(self) -> None:
        night = self.theme == "fieldtui-night"
        self.theme = "fieldtui-day" if night else "fieldtui-night"
        for view in self.screen.query("FrameView"):
            view.set_night(not night)  # type: ignore[attr-defined]
