"""The terminal client: one screen per stage of the night, a thin view of the rig service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from ..service.client import CommandFailed, RigClient, ServiceUnavailable
from .screens.equipment import EquipmentScreen
from .screens.focus import FocusScreen
from .screens.base import hhmm
from .screens.dialogs import AlertsScreen, ConfirmScreen, HelpScreen
from .screens.guiding import GuidingScreen
from .screens.stacking import StackingScreen
from .screens.calibration import CalibrationScreen
from .screens.capture import CaptureScreen
from .lowcolour import NightLowColour, colour_depth
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
        *[Binding(key, f"stage('{mode}')", label, tooltip=f"the {mode} screen") for key, mode, label in STAGES],
        Binding("t", "toggle_theme", "Day/Night", tooltip="switch between the night (red) and day themes; "
                "leaving night asks first"),
        Binding("R", "restart_service", "Restart", tooltip="start the rig service again (shown only "
                "while none answers)"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="every key of this screen"),
        Binding("exclamation_mark", "alerts", "Alerts", key_display="!", show=False,
                tooltip="the night's alerts, newest first and in full"),
        Binding("q", "quit", "Quit", tooltip="quit the client; the rig service and the night go on"),
    ]

    def __init__(self, socket_path: Path | None = None, theme: str = "night", config_path: str | None = None,
                 fast: bool = False, colours: str = "auto") -> None:
        super().__init__()
        self._colours = colours
        self._depth: int | None = None
        self._filters.append(NightLowColour(lambda: self.night_low))
        self.socket_path = socket_path
        self.config_path = config_path
        self.fast = fast
        self.rig = RigState()
        self.client: RigClient | None = None
        self.animation_level = "none"
        self._start_theme = theme
        #: the message line's text: (text, severity, wall time, monotonic time)
        self.message: tuple[str, str, float, float] | None = None
        self._starting = False
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
                    self._lost()
                await asyncio.sleep(1.0)
                continue
            self.client = client
            lost_at = self.rig.lost_at
            self.rig.load(hello.get("snapshot", {}))
            if lost_at:
                self._back(lost_at)
            else:
                self._first_contact()
            self._changed("connection")
            async for ev in client.events():
                part = self.rig.apply(ev)
                if part == "alerts":
                    self._alert(self.rig.alerts[-1])
                self._changed(part)
            self.client = None
            self._lost()
            await client.close()
            await asyncio.sleep(0.5)

    @property
    def colour_depth(self) -> int:
        """Colours the terminal shows (8, 16, 256 or 2**24): with 16 or fewer, night is drawn
        with reverse, underline and faint instead of five reds (see lowcolour.py). Headless
        (tests, screenshots) it is what the config says, else full colour."""
        if self._depth is None:
            system = None if self.is_headless else self.console.color_system
            self._depth = colour_depth(self._colours, system, term="" if self.is_headless else None)
        return self._depth

    @property
    def night_low(self) -> bool:
        """Night theme on a terminal of 16 colours or fewer."""
        return self.colour_depth <= 16 and self.theme == "fieldtui-night"

    def _lost(self) -> None:
        self.rig.connected = False
        self.rig.lost_at = self.rig.lost_at or time.time()
        self.notify(f"the rig service stopped answering at {hhmm(self.rig.lost_at)} UT: R starts it again",
                    severity="error")
        self._changed("connection")

    def _back(self, lost_at: float) -> None:
        """Connected again after a loss: say so, with what the service reported meanwhile
        (this replaces the "stopped answering" error, which is no longer true)."""
        self.rig.lost_at = 0.0
        self.message = None
        news = [a for a in self.rig.alerts if a.get("level") in ("warning", "error", "critical")
                and float(a.get("t", 0)) >= lost_at - 5]
        if news:
            level = "critical" if any(a.get("level") == "critical" for a in news) else "warning"
            self.notify(" · ".join(a.get("text", "") for a in news[-3:]), severity=level)
        else:
            self.notify("rig service answering again")

    def _first_contact(self) -> None:
        """The service reports work a crash interrupted: say so at once (it stays a while)."""
        if self.rig.extra.get("interrupted"):
            crit = [a for a in self.rig.alerts if a.get("level") == "critical"]
            text = crit[-1].get("text", "") if crit else "the rig service was interrupted before it started again"
            self.notify(text, severity="critical")

    def _alert(self, alert: dict[str, Any]) -> None:
        level = alert.get("level", "info")
        if level in ("warning", "error", "critical"):
            self.notify(f"{alert.get('source', '')}: {alert.get('text', '')}".lstrip(": "), severity=level)

    def notify(self, message: str, *, title: str = "", severity: str = "information",  # type: ignore[override]
               timeout: float | None = None, markup: bool = True) -> None:
        """Every message goes to the one message line (never a pop-up over the keys). A
        message never hides a more severe one that is still within its time on the line
        (a critical report stays readable when "connecting…" follows it)."""
        from .widgets.message import KEEP_S
        rank = {"information": 0, "warning": 1, "error": 2, "critical": 3}
        current = getattr(self, "message", None)
        if (current and rank.get(current[1], 0) > rank.get(severity, 0)
                and time.monotonic() - current[3] < KEEP_S.get(current[1], 8.0)):
            return
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.rig.now() if self.rig.connected else time.time()))
        self.message = (f"{stamp} {message}", severity, time.time(), time.monotonic())
        with contextlib.suppress(Exception):
            for line in self.screen.query("MessageLine"):
                line.refresh_message()  # type: ignore[attr-defined]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed command becomes a message (nothing is lost, no traceback)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            err = event.worker.error
            self.notify(f"{event.worker.name or 'command'} failed: {err or type(err).__name__}", severity="error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restart_service":
            return not self.rig.connected and not self._starting
        return True

    def _changed(self, part: str) -> None:
        screen = self.screen
        handler = getattr(screen, "rig_changed", None)
        if handler is not None:
            handler(part)

    async def send(self, name: str, /, **args: Any) -> Any:
        """Send a command; a failure becomes a message and None (call it from a worker)."""
        if self.client is None:
            self.notify("no rig service answers: R starts it", severity="error")
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
        if self.theme == "fieldtui-night":
            def answered(yes: bool | None) -> None:
                if yes:
                    self._set_theme(False)
            self.push_screen(ConfirmScreen("Switch to the day theme? White light ends your dark adaptation."),
                             answered)
        else:
            self._set_theme(True)

    def _set_theme(self, night: bool) -> None:
        self.theme = "fieldtui-night" if night else "fieldtui-day"
        for view in self.screen.query("FrameView"):
            view.set_night(night)  # type: ignore[attr-defined]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_alerts(self) -> None:
        if not isinstance(self.screen, (AlertsScreen, HelpScreen)):
            self.push_screen(AlertsScreen())

    def action_restart_service(self) -> None:
        if self.rig.connected or self._starting:
            return
        self._starting = True
        self.notify("starting the rig service…")
        self.run_worker(self._restart_service(), name="start service", group="commands", exit_on_error=False)

    async def _restart_service(self) -> None:
        from ..service.daemon import ensure_running
        try:
            await ensure_running(self.config_path, self.fast, wait=True, timeout=30.0)
            self.notify("rig service started; connecting…")
        except ServiceUnavailable as exc:
            self.notify(str(exc), severity="error")
        finally:
            self._starting = False
            self._changed("connection")
