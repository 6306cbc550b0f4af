"""The running night: devices, workers, state, events and commands.

The Session owns every device built from the config. It connects them
concurrently with a timeout each; a device that hangs or fails is reported
(with what to do) and retried in the background, and never blocks the
others. Workers run as asyncio tasks. Subscribers get plain event
dataclasses; :meth:`snapshot` gives the whole state for a client that has
just connected.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np

from .. import astro
from ..atomic import write_json
from ..clock import Clock
from ..config import Config
from ..devices.base import Device, DeviceDisconnected, DeviceError, DeviceTimeout, VendorLibraryMissing
from ..devices.factory import Rig, build_rig
from ..events import (ActivityStatus, Alert, ChecklistChanged, Command, DeviceStatus, Event,
                      FramePreview, Heartbeat)
from ..frame import Frame

log = logging.getLogger(__name__)

CHECKLIST = (
    ("t_ring", "T-ring and adapter fitted"),
    ("diagonal", "Diagonal removed"),
    ("raw", "Camera set to RAW"),
    ("balance", "Balance re-checked with camera"),
    ("guide_focus", "Guide camera focused"),
    ("caps", "Caps off"),
)

FIXES = {
    "guide_camera": "check the guide camera's USB cable (use a port on the computer, not a hub) and that no other program holds it",
    "main_camera": "check the camera's USB cable, that it is switched on, its battery, and that no other program holds it",
    "mount": "check the mount's power and its cable, and that it is out of park",
    "guide_port": "check the ST4 (RJ12) cable between the guide camera and the mount's GUIDE port",
    "focuser": "check the focuser's cable and power",
}


@dataclass
class Slot:
    name: str
    device: Device
    status: DeviceStatus
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def preview_of(frame: Frame, max_w: int = 160, max_h: int = 120) -> FramePreview:
    """Bin and stretch a frame to a small 8-bit array (black sky, stars bright)."""
    data = frame.data
    scale = max(1, int(np.ceil(max(data.shape[1] / max_w, data.shape[0] / max_h))))
    h, w = data.shape[0] // scale, data.shape[1] // scale
    binned = data[:h * scale, :w * scale].reshape(h, scale, w, scale).astype(np.float32).mean(axis=(1, 3))
    lo = float(np.median(binned))
    sd = float(np.median(np.abs(binned - lo))) * 1.4826 + 1e-6
    hi = max(float(binned.max()), lo + 10 * sd)
    # A black floor a little above the sky keeps runs long over slow links.
    norm = np.clip((binned - lo - 2 * sd) / (hi - lo - 2 * sd), 0, 1)
    img = (np.sqrt(norm) * 255).astype(np.uint8)
    stats = {"mean": float(data.mean()), "median": float(np.median(data)), "min": int(data.min()),
             "max": int(data.max()), "exposure": frame.exposure}
    return FramePreview(t=frame.timestamp, camera=frame.camera, width=w, height=h, scale=scale,
                        pixels=base64.b64encode(img.tobytes()).decode(), stats=stats)


class Session:
    def __init__(self, cfg: Config, clock: Clock, rig: Rig | None = None,
                 connect_timeout: float | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.rig = rig or build_rig(cfg, clock)
        self.connect_timeout = connect_timeout or cfg.service.connect_timeout_s
        self.slots: dict[str, Slot] = {
            n: Slot(n, d, DeviceStatus(name=n, driver=d.driver)) for n, d in self.rig.devices.items()}
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.alerts: list[Alert] = []
        self.checklist: dict[str, bool] = {k: False for k, _ in CHECKLIST}
        self.activities: dict[str, ActivityStatus] = {}
        self.last_preview: dict[str, FramePreview] = {}
        self.heartbeat = Heartbeat()
        self.check_results: dict[str, Any] | None = None
        self.commands: dict[str, Callable[..., Awaitable[Any]]] = {
            "ping": self._cmd_ping,
            "checklist.toggle": self._cmd_checklist_toggle,
            "device.reconnect": self._cmd_reconnect,
            "fault": self._cmd_fault,
            "loop.start": self._cmd_loop_start,
            "loop.stop": self._cmd_loop_stop,
            "check": self._cmd_check,
        }
        self.started = False
        from . import focus
        focus.install(self)
        from . import guiding as guiding_service
        guiding_service.install(self)
        self._night = astro.night_of(clock.now(), cfg.site.timezone)
        self._load_checklist()

    # ----- lifecycle ------------------------------------------------------
    @property
    def night_dir(self) -> Path:
        return self.cfg.storage.root / self._night

    async def start(self, wait: bool = True) -> None:
        """Connect every device (concurrently) and start the background workers."""
        self.started = True
        for slot in self.slots.values():
            slot.task = self.spawn(self._keep_connected(slot), name=f"connect-{slot.name}")
        self.spawn(self._heartbeat(), name="heartbeat")
        if wait:
            await self.wait_connected()

    async def wait_connected(self) -> None:
        """Return once every device has been tried once (connected or failed)."""
        await asyncio.gather(*(s.ready.wait() for s in self.slots.values()))

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("worker %s failed: %s", task.get_name(), exc, exc_info=exc)
            self.alert("error", task.get_name(), f"{task.get_name()} stopped: {exc}")

    def running_activities(self) -> list[str]:
        """What is going on now: loops, focusing, guiding (in any of its states), a test exposure."""
        return [a.name for a in self.activities.values() if a.state not in ("idle", "stopped", "done")]

    async def stop(self) -> list[str]:
        """Abort what runs; returns what was running (for the user's message)."""
        running = self.running_activities()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for slot in self.slots.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(slot.device.disconnect(), 2.0)
        return running

    # ----- events ---------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(q)

    def publish(self, event: Event) -> None:
        if not event.t:
            event.t = self.clock.now()
        for q in list(self._subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                # A stuck subscriber loses its oldest events, never blocks the night.
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(event)

    def alert(self, level: str, source: str, text: str) -> Alert:
        a = Alert(t=self.clock.now(), level=level, source=source, text=text)
        self.alerts = (self.alerts + [a])[-50:]
        self.publish(a)
        return a

    def set_activity(self, name: str, state: str, progress: float = 0.0, detail: str = "") -> None:
        a = ActivityStatus(t=self.clock.now(), name=name, state=state, progress=progress, detail=detail)
        self.activities[name] = a
        self.publish(a)

    def snapshot(self) -> dict[str, Any]:
        return {
            "clock": self.clock.now(),
            "virtual": self.clock.virtual,
            "night": self._night,
            "config": {"sources": self.cfg.sources, "target": self.cfg.plan.target,
                       "theme": self.cfg.ui.theme, "guide_scale": self.cfg.guide_scale,
                       "main_scale": self.cfg.main_scale, "simulated": self.rig.sim is not None},
            "devices": {n: s.status.to_dict() for n, s in self.slots.items()},
            "checklist": dict(self.checklist),
            "checklist_labels": dict(CHECKLIST),
            "alerts": [a.to_dict() for a in self.alerts[-20:]],
            "activities": {n: a.to_dict() for n, a in self.activities.items()},
            "heartbeat": self.heartbeat.to_dict(),
            "check": self.check_results,
            "previews": {n: p.to_dict() for n, p in self.last_preview.items()},
            "guiding": self.guider.snapshot(),  # type: ignore[attr-defined]
        }

    # ----- devices --------------------------------------------------------
    def device(self, name: str) -> Device:
        slot = self.slots.get(name)
        if slot is None:
            raise DeviceError(f"no {name.replace('_', ' ')} is configured")
        if slot.status.state != "connected":
            raise DeviceDisconnected(f"{name.replace('_', ' ')} is {slot.status.state}"
                                     + (f": {slot.status.error}" if slot.status.error else ""))
        return slot.device

    def _set_status(self, slot: Slot, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(slot.status, k, v)
        slot.status.t = self.clock.now()
        self.publish(DeviceStatus(**{k: v for k, v in slot.status.to_dict().items()}))

    def device_lost(self, name: str, error: Exception) -> None:
        """A worker saw a device vanish: report it and let the connector retry."""
        slot = self.slots[name]
        if slot.status.state == "connected":
            self._set_status(slot, state="disconnected", error=str(error), fix=FIXES.get(name, ""))
            self.alert("error", name, f"{name.replace('_', ' ')} lost: {error}")
            slot.ready.clear()
            if slot.task is None or slot.task.done():
                slot.task = self.spawn(self._keep_connected(slot), name=f"connect-{name}")

    async def _keep_connected(self, slot: Slot) -> None:
        attempts = 0
        while True:
            attempts += 1
            self._set_status(slot, state="connecting", attempts=attempts)
            try:
                info = await self.clock.wait_for(slot.device.connect(), self.connect_timeout)
            except TimeoutError:
                err: Exception = DeviceTimeout(f"no answer within {self.connect_timeout:g} s")
            except VendorLibraryMissing as exc:
                self._set_status(slot, state="failed", error=str(exc),
                                 fix="install what the message names, then restart the service")
                slot.ready.set()
                return
            except Exception as exc:  # noqa: BLE001 - any driver failure is reported, never fatal
                err = exc
            else:
                self._set_status(slot, state="connected", model=info.model, details=info.details,
                                 error="", fix="")
                if attempts > 1:
                    self.alert("info", slot.name, f"{slot.name.replace('_', ' ')} connected again")
                slot.ready.set()
                return
            self._set_status(slot, state="failed", error=str(err), fix=FIXES.get(slot.name, ""))
            if attempts == 1:
                self.alert("error", slot.name, f"{slot.name.replace('_', ' ')}: {err}")
            slot.ready.set()
            await self.clock.sleep(self.cfg.service.retry_interval_s)

    # ----- background -----------------------------------------------------
    def disk_free_gb(self) -> float:
        root = self.cfg.storage.root
        probe = root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free / 1e9

    async def _heartbeat(self) -> None:
        from .check import cpu_temperature
        while True:
            now = self.clock.now()
            self.heartbeat = Heartbeat(t=now, clock=now,
                                       lst_deg=astro.local_sidereal_deg(now, self.cfg.site.longitude),
                                       disk_free_gb=round(self.disk_free_gb(), 2),
                                       load=os.getloadavg()[0], cpu_temp_c=cpu_temperature())
            self.publish(self.heartbeat)
            await self.clock.sleep(5.0)

    # ----- checklist ------------------------------------------------------
    @property
    def _checklist_file(self) -> Path:
        return self.night_dir / "checklist.json"

    def _load_checklist(self) -> None:
        import json
        try:
            saved = json.loads(self._checklist_file.read_text())
            for k in self.checklist:
                self.checklist[k] = bool(saved.get(k, False))
        except (OSError, ValueError, AttributeError):
            pass

    # ----- commands -------------------------------------------------------
    async def command(self, cmd: Command) -> Any:
        handler = self.commands.get(cmd.name)
        if handler is None:
            raise ValueError(f"unknown command {cmd.name!r}")
        return await handler(**cmd.args)

    async def _cmd_ping(self) -> dict[str, Any]:
        return {"clock": self.clock.now()}

    async def _cmd_checklist_toggle(self, item: str) -> dict[str, bool]:
        if item not in self.checklist:
            raise ValueError(f"unknown checklist item {item!r}; one of {', '.join(self.checklist)}")
        self.checklist[item] = not self.checklist[item]
        try:
            await self.clock.run_blocking(write_json, self._checklist_file, self.checklist)
        except OSError as exc:
            self.alert("warning", "checklist", f"checklist not saved: {exc}")
        self.publish(ChecklistChanged(items=dict(self.checklist)))
        return dict(self.checklist)

    async def _cmd_reconnect(self, name: str) -> str:
        slot = self.slots[name]
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
        slot.ready.clear()
        slot.task = self.spawn(self._keep_connected(slot), name=f"connect-{name}")
        return "reconnecting"

    async def _cmd_fault(self, device: str, fault: str, value: Any = True) -> str:
        if self.rig.sim is None:
            raise ValueError("faults can only be switched on the simulated rig")
        if fault == "clouds":
            self.rig.sim.clouds(float(value))
        elif fault == "clear":
            self.rig.sim.faults.clear()
        else:
            self.rig.sim.faults.set(device, fault, value)
        return f"{fault} on {device}"

    async def _cmd_check(self) -> dict[str, Any]:
        from .check import run_checks
        self.check_results = await run_checks(self)
        from ..events import CheckResults
        self.publish(CheckResults(ok=self.check_results["ok"], checks=self.check_results["checks"]))
        return self.check_results

    async def _cmd_loop_start(self, camera: str = "guide_camera", exposure: float | None = None) -> str:
        name = f"loop:{camera}"
        if self.activities.get(name, ActivityStatus()).state == "running":
            return "already looping"
        exposure = exposure or self.cfg.guiding.exposure_s
        self.spawn(self._loop(camera, exposure), name=name)
        return "looping"

    async def _cmd_loop_stop(self, camera: str = "guide_camera") -> str:
        name = f"loop:{camera}"
        for task in list(self._tasks):
            if task.get_name() == name:
                task.cancel()
        self.set_activity(name, "stopped")
        return "stopped"

    async def _loop(self, camera: str, exposure: float) -> None:
        """Expose in a loop and publish previews: framing, focusing, watching the sky."""
        name = f"loop:{camera}"
        n = 0
        self.set_activity(name, "running", detail=f"{exposure:g} s exposures")
        try:
            while True:
                try:
                    dev = self.device(camera)
                    if camera == "main_camera":
                        frame = await dev.live_view(exposure)  # type: ignore[attr-defined]
                    else:
                        frame = await dev.expose(exposure)  # type: ignore[attr-defined]
                except DeviceDisconnected as exc:
                    self.device_lost(camera, exc)
                    await self.clock.sleep(max(exposure, 1.0))
                    continue
                except DeviceError as exc:
                    self.alert("warning", camera, str(exc))
                    await self.clock.sleep(0.5)
                    continue
                n += 1
                prev = await self.clock.run_blocking(preview_of, frame)
                prev.camera = camera
                self.last_preview[camera] = prev
                self.publish(prev)
                self.set_activity(name, "running", progress=float(n), detail=f"{n} frames, {exposure:g} s")
        finally:
            if self.activities.get(name) and self.activities[name].state == "running":
                self.set_activity(name, "stopped", progress=float(n))
