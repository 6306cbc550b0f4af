"""Framing loops: expose a camera over and over and publish small previews.

``loop.start camera=… exposure=…`` leases the camera (a second start on the
same camera answers "already looping"; a camera another activity holds is
refused, saying which) and ``loop.stop camera=…`` gives it back. Each camera's
loop has its own status, ``loop:CAMERA``; an error in one loop ends that loop
(``failed``, with an alert), not the other camera's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ..devices.base import DeviceDisconnected, DeviceError
from ..devices.proxy import DeviceBusy
from .activity import Activity

if TYPE_CHECKING:
    from .session import Lease, Session

log = logging.getLogger(__name__)


class Looper(Activity):
    name = "loop"

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.loops: dict[str, tuple[asyncio.Task[Any], "Lease", float]] = {}

    def commands(self) -> dict[str, Any]:
        return {"loop.start": self.cmd_start, "loop.stop": self.cmd_stop}

    def _looping(self) -> dict[str, float]:
        return {c: exp for c, (task, _, exp) in self.loops.items() if not task.done()}

    def snapshot(self) -> dict[str, Any] | None:
        looping = self._looping()
        return {"cameras": looping} if looping else None

    def record(self) -> dict[str, Any] | None:
        looping = self._looping()
        if not looping:
            return None
        return {"state": "running", "cameras": {c: {"exposure": e, "since": self.loops[c][1].since}
                                                for c, e in looping.items()}}

    async def cmd_start(self, camera: str = "guide_camera", exposure: float | None = None) -> str:
        sub = f"loop:{camera}"
        if camera in self._looping():
            return "already looping"
        try:
            lease = self.s.lease(camera, sub)  # taken now: a second loop.start sees it at once
        except DeviceBusy as exc:
            raise ValueError(str(exc)) from None
        exposure = float(exposure or self.s.cfg.guiding.exposure_s)
        self.set_status("running", name=sub, detail=f"{exposure:g} s exposures")
        task = self.spawn(self._loop(lease, exposure), name=sub)
        self.loops[camera] = (task, lease, exposure)
        return "looping"

    async def _stop_one(self, camera: str) -> None:
        entry = self.loops.pop(camera, None)
        if entry is None:
            return
        task, lease, _ = entry
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.s.release(lease)

    async def cmd_stop(self, camera: str = "guide_camera") -> str:
        await self._stop_one(camera)
        self.set_status("stopped", name=f"loop:{camera}")
        return "stopped"

    async def shutdown(self) -> None:
        for camera in list(self.loops):
            running = not self.loops[camera][0].done()
            await self._stop_one(camera)
            if running:
                self.set_status("stopped", name=f"loop:{camera}", detail="stopped with the service")

    def task_failed(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        """One camera's loop raised: that loop ends as failed; the other goes on."""
        sub = task.get_name()
        camera = sub.partition(":")[2]
        reason = f"{type(exc).__name__}: {exc}"
        log.error("%s failed: %s", sub, reason, exc_info=exc)
        entry = self.loops.pop(camera, None)
        if entry is not None:
            self.s.release(entry[1])
        self.set_status("failed", name=sub, detail=f"failed: {reason}", reason=reason)
        self.s.alert("critical", sub, f"{sub} stopped on an error: {reason}")

    async def _loop(self, lease: "Lease", exposure: float) -> None:
        from .session import preview_of
        s = self.s
        camera = lease.name
        sub = f"loop:{camera}"
        dev = lease.device
        n = 0
        while True:
            try:
                s.device(camera)  # connected? (DeviceDisconnected when not)
                if camera == "main_camera":
                    frame = await dev.live_view(exposure)
                else:
                    frame = await dev.expose(exposure)
            except DeviceDisconnected as exc:
                s.device_lost(camera, exc)
                await s.clock.sleep(max(exposure, 1.0))
                continue
            except DeviceError as exc:
                s.alert("warning", camera, str(exc))
                await s.clock.sleep(0.5)
                continue
            n += 1
            prev = await s.clock.run_blocking(preview_of, frame)
            prev.camera = camera
            s.last_preview[camera] = prev
            s.publish(prev)
            self.set_status("running", name=sub, progress=float(n), detail=f"{n} frames, {exposure:g} s")
