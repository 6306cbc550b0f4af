"""The service's flight recorder: what runs, and with what, kept on disk as it changes.

The rig service writes one small JSON file (``service-state.json`` in its
state folder, see :func:`state_dir`) atomically (:mod:`fieldtui.atomic`)
whenever an activity's status changes, and once a minute while it runs::

    {"pid": 1234, "running": true, "started": 1800000000.0, "alive_at": 1800003600.0,
     "night": "2027-01-14", "night_dir": "...",
     "activities": {"guiding": {"state": "guiding", "since": ..., "guiding_since": ...,
                                "lock": [x, y], "calibration": {...}, ...}}}

A clean stop writes ``"running": false`` and no activities. When the next
service starts and finds ``"running": true``, the previous one was
interrupted (crash, ``kill -9``, power loss) somewhere after ``alive_at``:
the Session reports it (a critical alert, and ``snapshot()["interrupted"]``)
and offers to take up what ran (``guide.resume``), or does so by itself when
``[service] resume_guiding = true``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..atomic import write_json

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

FILE_NAME = "service-state.json"
ALIVE_EVERY_S = 60.0   # clock seconds between "still alive" writes


def state_dir() -> Path:
    """The service's state folder ($FIELDTUI_STATE_DIR, else the platform's user state dir)."""
    from platformdirs import user_state_dir
    d = Path(os.environ.get("FIELDTUI_STATE_DIR") or user_state_dir("fieldtui"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_path() -> Path:
    return state_dir() / FILE_NAME


class Recorder:
    """Keeps ``path`` current with the Session's running activities (one writer task)."""

    def __init__(self, session: "Session", path: Path) -> None:
        self.s = session
        self.path = Path(path)
        self.started = session.clock.now()
        self.task: asyncio.Task[Any] | None = None
        self._dirty = asyncio.Event()
        self._last: dict[str, Any] | None = None
        self.writes = 0
        self._gen = 0  # records handed to a writer thread
        self._written_gen = 0  # the newest record on disk
        self._file_lock = threading.Lock()

    # ----- the previous run ----------------------------------------------
    def previous_run(self) -> dict[str, Any] | None:
        """What the previous service was doing when it ended without a clean stop, or None."""
        try:
            prev = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("flight record %s unreadable (%s): ignored", self.path, exc)
            return None
        if not isinstance(prev, dict) or not prev.get("running"):
            return None
        acts = prev.get("activities") or {}
        return {"pid": prev.get("pid"), "started": prev.get("started"), "alive_at": prev.get("alive_at"),
                "night": prev.get("night"), "night_dir": prev.get("night_dir"),
                "activities": acts if isinstance(acts, dict) else {},
                "resumable": [n for n in (acts if isinstance(acts, dict) else {})
                              if n in self.s.registry and self.s.registry[n].resumable],
                "resumed": []}

    def describe(self, prev: dict[str, Any]) -> str:
        tz = ZoneInfo(self.s.cfg.site.timezone)

        def hm(t: Any) -> str:
            return datetime.fromtimestamp(float(t), tz).strftime("%Y-%m-%d %H:%M") if t else "?"

        parts = []
        for name, rec in prev["activities"].items():
            what = f"{name} ({rec.get('state', '?')} since {hm(rec.get('since'))}"
            if rec.get("lock"):
                what += f", star at {rec['lock'][0]:.0f},{rec['lock'][1]:.0f}"
            cal = rec.get("calibration")
            if cal:
                what += f", calibration angle {cal.get('angle_deg')}°"
            parts.append(what + ")")
        doing = "; ".join(parts) if parts else "no activity"
        return (f"The rig service stopped unexpectedly (pid {prev.get('pid')}, last alive "
                f"{hm(prev.get('alive_at'))}): it was running {doing}")

    async def report_interruption(self, prev: dict[str, Any]) -> None:
        """Alert every client; resume guiding when the config says so, else offer it."""
        text = self.describe(prev)
        if "guiding" in prev["activities"]:
            if self.s.cfg.service.resume_guiding:
                text += ". Resuming guiding ([service] resume_guiding = true)"
            else:
                text += ". Send guide.resume (Guiding screen) to take it up again"
        log.error("%s", text)
        self.s.alert("critical", "service", text)
        if "guiding" in prev["activities"] and self.s.cfg.service.resume_guiding:
            await self.s.wait_connected()
            try:
                await self.s.registry["guiding"].resume(prev["activities"]["guiding"])
                prev["resumed"].append("guiding")
            except Exception as exc:  # noqa: BLE001 - reported, the service goes on
                self.s.alert("critical", "guiding", f"Guiding could not be resumed: {exc}")

    # ----- recording -----------------------------------------------------
    def current(self, running: bool = True) -> dict[str, Any]:
        acts: dict[str, Any] = {}
        if running:
            for a in self.s.registry:
                rec = a.record()
                if rec is not None:
                    acts[a.name] = rec
        return {"pid": os.getpid(), "running": running, "started": self.started,
                "night": self.s.night, "night_dir": str(self.s.night_dir), "activities": acts}

    def touch(self) -> None:
        """Something changed: the writer task writes the file (coalesced)."""
        self._dirty.set()

    def start(self) -> None:
        if self.task is None or self.task.done():
            self._dirty.set()
            self.task = self.s.spawn(self._run(), name="recorder")

    def _write_in_order(self, gen: int, data: dict[str, Any]) -> None:
        """In a worker thread: write unless a later record is already on disk. A write
        whose task was cancelled goes on in its thread; without this a stale record could
        land after the clean stop's."""
        with self._file_lock:
            if gen <= self._written_gen:
                return
            write_json(self.path, data)
            self._written_gen = gen

    async def _write(self, data: dict[str, Any]) -> None:
        data = dict(data, alive_at=self.s.clock.now())
        self._gen += 1
        try:
            await self.s.clock.run_blocking(self._write_in_order, self._gen, data)
            self.writes += 1
        except OSError as exc:
            log.warning("flight record not written to %s: %s", self.path, exc)

    async def _run(self) -> None:
        last_alive = -1e300
        while True:
            try:
                await self.s.clock.wait_for(self._dirty.wait(), ALIVE_EVERY_S)
            except TimeoutError:
                pass
            self._dirty.clear()
            data = self.current()
            now = self.s.clock.now()
            if data != self._last or now - last_alive >= ALIVE_EVERY_S:
                self._last = data
                last_alive = now
                await self._write(data)

    async def close(self) -> None:
        """A clean stop: nothing was interrupted."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except BaseException:  # noqa: BLE001 - cancelled
                pass
        await self._write(self.current(running=False))
