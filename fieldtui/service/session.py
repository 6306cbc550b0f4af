"""The running night: devices, activities, state, events and commands.

The Session owns every device built from the config. It connects them
concurrently with a timeout each; a device that hangs or fails is reported
(with what to do) and retried in the background, and never blocks the
others. Activities (:mod:`fieldtui.service.activity`; the registry is
:data:`ACTIVITIES`) run as tasks the Session owns; an activity takes a device
with :meth:`Session.lease`, and every device call goes through a
:class:`~fieldtui.devices.proxy.DeviceProxy` (a timeout on each call, errors
mapped). Subscribers get plain event dataclasses; :meth:`snapshot` gives the
whole state for a client that has just connected. The night (its folder and
checklist) follows the session clock: a new one begins at local noon.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
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
from ..devices.proxy import DeviceBusy, DeviceProxy, DeviceUse
from ..events import (ActivityStatus, Alert, ChecklistChanged, Command, DeviceStatus, Event,
                      FramePreview, Heartbeat, NightChanged)
from ..frame import Frame
from .activity import Activity, ActivityRegistry, IDLE_STATES

log = logging.getLogger(__name__)

#: The activities a Session runs, in start order (they stop in reverse order).
#: Adding one: a module with an Activity subclass, and its line here.
ACTIVITIES: tuple[str, ...] = (
    "fieldtui.service.looping:Looper",
    "fieldtui.service.focus:FocusAid",
    "fieldtui.service.guiding:Guider",
    "fieldtui.service.capture:Capture",
    "fieldtui.service.calibration:CalibrationCheck",
    "fieldtui.service.stacking:StackWorker",
)

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
class Lease:
    """``owner`` (an activity's name) holds device ``name`` since clock time ``since``;
    ``device`` is the proxy it calls the device through."""

    name: str
    owner: str
    since: float
    device: DeviceProxy


@dataclass
class Slot:
    name: str
    device: Device
    status: DeviceStatus
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lease: Lease | None = None
    use: DeviceUse = field(default_factory=DeviceUse)


def _import(path: str) -> type[Activity]:
    import importlib
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


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
    """The night: devices (leased through proxies), activities, alerts, the checklist.

    ``record_path``: the flight recorder's file (see
    :mod:`fieldtui.service.recorder`); the rig service passes one, an
    in-process session (``fieldtui check``) does not."""

    def __init__(self, cfg: Config, clock: Clock, rig: Rig | None = None,
                 connect_timeout: float | None = None, record_path: Path | None = None,
                 activities: tuple[str, ...] | None = None) -> None:
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
            "check": self._cmd_check,
        }
        self.started = False
        self.recorder = None  # type: ignore[assignment] - set below, once the activities exist
        self.registry = ActivityRegistry(self.commands)
        for path in (ACTIVITIES if activities is None else activities):
            self.add_activity(_import(path)(self))
        self._night = astro.night_of(clock.now(), cfg.site.timezone)
        self._load_checklist()
        from .recorder import Recorder
        self.recorder: Recorder | None = Recorder(self, record_path) if record_path is not None else None
        self.interrupted: dict[str, Any] | None = None
        if self.recorder is not None:
            self.interrupted = self.recorder.previous_run()

    def add_activity(self, activity: Activity) -> Activity:
        """Register an activity and its commands (a duplicate command is refused)."""
        self.registry.add(activity)
        if activity.attribute:
            setattr(self, activity.attribute, activity)
        return activity

    # ----- lifecycle ------------------------------------------------------
    @property
    def night(self) -> str:
        """The date naming the current night (nights run noon to noon, local time)."""
        return self._night

    @property
    def night_dir(self) -> Path:
        return self.cfg.storage.root / self._night

    async def start(self, wait: bool = True) -> None:
        """Connect every device (concurrently) and start the background workers.

        After an interrupted run (see :mod:`~fieldtui.service.recorder`) an
        alert says what was running and when; guiding resumes by itself when
        ``[service] resume_guiding`` says so, else ``guide.resume`` offers it."""
        self.started = True
        indi = getattr(self.rig, "indi", None)
        if indi is not None:   # the INDI server went away, came back: alerts
            indi.on_notice = lambda level, text: self.alert(level, "indi", text)
        for slot in self.slots.values():
            slot.task = self.spawn(self._keep_connected(slot), name=f"connect-{slot.name}")
        self.spawn(self._heartbeat(), name="heartbeat")
        for activity in self.registry:
            activity.on_start()
        if self.recorder is not None:
            self.recorder.start()
            if self.interrupted is not None:
                self.spawn(self.recorder.report_interruption(self.interrupted), name="interrupted")
        if wait:
            await self.wait_connected()

    async def wait_connected(self) -> None:
        """Return once every device has been tried once (connected or failed)."""
        await asyncio.gather(*(s.ready.wait() for s in self.slots.values()))

    def spawn(self, coro: Awaitable[Any], name: str, owner: Activity | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task of this Session (``owner``: the activity it belongs to).

        Nothing stops silently: an exception ends the owner with ``failed``
        (:meth:`Activity.fail`); a Session task's exception is logged and
        raises a critical alert."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, owner))
        return task

    def _task_done(self, task: asyncio.Task[Any], owner: Activity | None = None) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        if owner is not None:
            owner.task_failed(task, exc)
            return
        log.error("worker %s failed: %s", task.get_name(), exc, exc_info=exc)
        self.alert("critical", task.get_name(), f"{task.get_name()} stopped on an error: "
                   f"{type(exc).__name__}: {exc}")

    def running_activities(self) -> list[str]:
        """What is going on now: loops, focusing, guiding (in any of its states), a test exposure."""
        return [a.name for a in self.activities.values() if a.state not in IDLE_STATES]

    async def stop(self) -> list[str]:
        """Abort what runs; returns what was running (for the user's message).

        Activities stop first, the last registered first (each gracefully:
        files closed, devices given back), then the Session's own tasks; the
        flight recorder notes a clean stop; devices are disconnected last."""
        running = self.running_activities()
        await self.registry.stop_all()
        recorder_task = self.recorder.task if self.recorder is not None else None
        for task in list(self._tasks):
            if task is not recorder_task:
                task.cancel()
        for task in list(self._tasks):
            if task is not recorder_task:
                with contextlib.suppress(BaseException):
                    await task
        if self.recorder is not None:
            await self.recorder.close()
        for slot in self.slots.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(slot.device.disconnect(), 2.0)
        if getattr(self.rig, "indi", None) is not None:
            await self.rig.indi.close()
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

    def publish_activity(self, status: ActivityStatus) -> None:
        """Keep an activity's status (snapshot, recorder) and send it to every client."""
        status.t = status.t or self.clock.now()
        self.activities[status.name] = status
        self.publish(status)
        if self.recorder is not None:
            self.recorder.touch()

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
            "interrupted": self.interrupted,
            **{a.name: a.snapshot() for a in self.registry},
        }

    # ----- devices --------------------------------------------------------
    def _slot(self, name: str) -> Slot:
        slot = self.slots.get(name)
        if slot is None:
            raise DeviceError(f"no {name.replace('_', ' ')} is configured")
        return slot

    def _proxy(self, slot: Slot, owner: str | None) -> DeviceProxy:
        async def wait_connected() -> None:
            while slot.status.state != "connected":
                await self.clock.sleep(0.5)

        return DeviceProxy(slot.device, slot.name, self.clock, owner=owner, gate=self._gate,
                           on_lost=self.device_lost, wait_connected=wait_connected, use=slot.use)

    def device(self, name: str, owner: str | None = None) -> DeviceProxy:
        """The connected device ``name`` behind a proxy (timeouts, mapped errors).

        Without a lease, calls that act on the device are refused while
        another owner holds it; reads always pass. Raises DeviceError when it
        is not configured, DeviceDisconnected when it is not connected."""
        slot = self._slot(name)
        if slot.status.state != "connected":
            raise DeviceDisconnected(f"{name.replace('_', ' ')} is {slot.status.state}"
                                     + (f": {slot.status.error}" if slot.status.error else ""))
        return self._proxy(slot, owner)

    def holder(self, name: str) -> Lease | None:
        """Who holds device ``name`` now (None: nobody)."""
        slot = self.slots.get(name)
        return slot.lease if slot is not None else None

    def busy_message(self, lease: Lease) -> str:
        from datetime import datetime
        from zoneinfo import ZoneInfo
        since = datetime.fromtimestamp(lease.since, ZoneInfo(self.cfg.site.timezone)).strftime("%H:%M")
        return f"{lease.name.replace('_', ' ')} is in use by {lease.owner} (since {since})"

    def _gate(self, name: str, owner: str | None) -> None:
        lease = self.holder(name)
        if lease is not None and lease.owner != owner:
            raise DeviceBusy(self.busy_message(lease))

    def lease(self, name: str, owner: str) -> Lease:
        """Give device ``name`` to ``owner`` (an activity's name) until :meth:`release`.

        The same owner asking again gets its lease back. Raises DeviceBusy
        (saying who holds it) when another owner has it, DeviceError when the
        device is not configured. The device need not be connected: calls
        through the lease's proxy say so when it is not."""
        slot = self._slot(name)
        if slot.lease is not None:
            if slot.lease.owner == owner:
                return slot.lease
            raise DeviceBusy(self.busy_message(slot.lease))
        slot.lease = Lease(name, owner, self.clock.now(), self._proxy(slot, owner))
        self._set_status(slot, holder=owner)
        log.info("%s leased to %s", name, owner)
        return slot.lease

    def release(self, lease: Lease) -> None:
        """Give a device back (nothing happens when the lease is no longer current)."""
        slot = self.slots.get(lease.name)
        if slot is not None and slot.lease is lease:
            slot.lease = None
            self._set_status(slot, holder="")
            log.info("%s released by %s", lease.name, lease.owner)

    @contextlib.asynccontextmanager
    async def leased(self, name: str, owner: str):  # noqa: ANN201 - AsyncIterator[DeviceProxy]
        """``async with session.leased("main_camera", "check") as cam:`` — leased for the block."""
        lease = self.lease(name, owner)
        try:
            yield lease.device
        finally:
            self.release(lease)

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
            self.roll_night()
            now = self.clock.now()
            self.heartbeat = Heartbeat(t=now, clock=now,
                                       lst_deg=astro.local_sidereal_deg(now, self.cfg.site.longitude),
                                       disk_free_gb=round(self.disk_free_gb(), 2),
                                       load=os.getloadavg()[0], cpu_temp_c=cpu_temperature())
            self.publish(self.heartbeat)
            await self.clock.sleep(5.0)

    # ----- the night ------------------------------------------------------
    def roll_night(self) -> bool:
        """Start a new night when local noon has passed (on the session clock).

        The night folder and the checklist follow: the new night's checklist
        is the one saved in its folder, or all unticked. True when it rolled."""
        night = astro.night_of(self.clock.now(), self.cfg.site.timezone)
        if night == self._night:
            return False
        old, self._night = self._night, night
        self.checklist = {k: False for k, _ in CHECKLIST}
        self._load_checklist()
        log.info("night of %s over; night of %s begins (folder %s)", old, night, self.night_dir)
        self.publish(NightChanged(night=night, checklist=dict(self.checklist)))
        self.publish(ChecklistChanged(items=dict(self.checklist)))
        self.alert("info", "night", f"Night of {night} begins: new night folder {self.night_dir}, "
                   "checklist cleared")
        if self.recorder is not None:
            self.recorder.touch()
        return True

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
        try:  # an argument the command does not take (or one it needs) is named, in one line
            inspect.signature(handler).bind(**cmd.args)
        except TypeError as exc:
            raise ValueError(f"{cmd.name}: {exc}") from None
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
        self.check_results["t"] = self.clock.now()  # (clients say how old the answers are)
        from ..events import CheckResults
        self.publish(CheckResults(ok=self.check_results["ok"], checks=self.check_results["checks"],
                                  attached=self.check_results.get("attached", [])))
        return self.check_results

