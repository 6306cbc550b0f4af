"""One pattern for everything the rig service runs: the focus aid, the guider, next
the capture sequencer and the stacking worker.

An :class:`Activity` declares

- its commands (``name.verb`` → coroutine), registered once on the Session
  (a name two activities claim is refused when the Session is built);
- its part of the snapshot (:meth:`Activity.snapshot`, under its ``name``),
  which every :class:`~fieldtui.events.ActivityStatus` it publishes carries
  as ``summary`` so a client keeps it current from that one event type;
- what it is doing, for the flight recorder (:meth:`Activity.record`) and how
  to take it up again after a crash (:meth:`Activity.resume`);
- a graceful stop (:meth:`Activity.shutdown`).

The base owns the activity's tasks (:meth:`Activity.spawn`) and device
leases (:meth:`Activity.lease`). An exception in one of its tasks ends the
activity: state ``failed`` with the reason, a critical alert, a log line
with the traceback, and a status event every client shows
(:meth:`Activity.fail`). The Session keeps activities in one
:class:`ActivityRegistry` and stops them in reverse order.

Adding an activity is one module with an ``Activity`` subclass and one line
in :data:`fieldtui.service.session.ACTIVITIES`.

:class:`SubprocessActivity` is the base for work that runs in a child
process (the stacking worker): the child is started niced, speaks JSON lines
over stdin/stdout and is stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar

from ..events import ActivityStatus

if TYPE_CHECKING:
    from ..devices.proxy import DeviceProxy
    from .session import Lease, Session

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]
#: states after which an activity holds nothing and runs nothing
IDLE_STATES = frozenset({"idle", "stopped", "done", "failed"})


class Activity:
    """Something the rig service runs for a while, with its commands, state and devices.

    Subclasses set :attr:`name` (the status and snapshot key, e.g.
    ``"guiding"``) and override what they need of :meth:`commands`,
    :meth:`snapshot`, :meth:`record`, :meth:`resume` and :meth:`shutdown`.
    """

    name: ClassVar[str] = ""
    #: the Session attribute it is also reachable as (``session.guider``), or ""
    attribute: ClassVar[str] = ""
    #: :meth:`resume` can take up a recorded run after the service was interrupted
    resumable: ClassVar[bool] = False

    def __init__(self, session: "Session") -> None:
        self.s = session
        self._state = "idle"
        self.reason = ""          # why it failed or stopped
        self.since: float | None = None  # clock time the current state began
        self._tasks: set[asyncio.Task[Any]] = set()
        self._leases: dict[str, "Lease"] = {}

    @property
    def state(self) -> str:
        """``idle``, ``running``… as last published; ``failed`` after an error ended it."""
        return self._state

    # ----- what a subclass declares --------------------------------------
    def commands(self) -> dict[str, Handler]:
        """``{"name.verb": coroutine}``: the commands a client may send to this activity."""
        return {}

    def snapshot(self) -> dict[str, Any] | None:
        """This activity's part of the Session snapshot (small, JSON-able), or None."""
        return None

    def record(self) -> dict[str, Any] | None:
        """What runs and with what, for the flight recorder; None when nothing runs."""
        return None

    async def resume(self, record: dict[str, Any]) -> Any:
        """Take up again what :meth:`record` described before the service was interrupted."""
        raise ValueError(f"{self.name} cannot be resumed")

    async def shutdown(self) -> None:
        """Stop gracefully (close files, stop loops); the base then cancels what is left."""

    def on_start(self) -> None:
        """Hook: the Session has started (its event loop runs); e.g. subscribe to its events."""

    # ----- what the base provides ----------------------------------------
    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this activity owns: its exception fails the activity."""
        task = self.s.spawn(coro, name=name, owner=self)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def lease(self, device: str) -> "DeviceProxy":
        """Take ``device`` for this activity (see :meth:`Session.lease`); returns its proxy.

        Raises :class:`~fieldtui.devices.proxy.DeviceBusy` when another owner holds it."""
        lease = self.s.lease(device, self.name)
        self._leases[device] = lease
        return lease.device

    def release(self, device: str | None = None) -> None:
        """Give back one leased device, or all of them."""
        names = [device] if device is not None else list(self._leases)
        for n in names:
            lease = self._leases.pop(n, None)
            if lease is not None:
                self.s.release(lease)

    def holds(self, device: str) -> bool:
        return device in self._leases

    def set_status(self, state: str, *, progress: float = 0.0, detail: str = "", reason: str = "",
                   name: str | None = None) -> None:
        """Publish this activity's state (``name``: a sub-status such as ``focus.test``)."""
        if name is None or name == self.name:
            if state != self._state or self.since is None:
                self.since = self.s.clock.now()
            self._state, self.reason = state, reason
            summary = self.snapshot() or {}
            since = self.since
        else:
            prev = self.s.activities.get(name)
            summary = {}
            since = prev.since if prev is not None and prev.state == state else self.s.clock.now()
        self.s.publish_activity(ActivityStatus(
            name=name or self.name, state=state, progress=progress, detail=detail, reason=reason,
            since=since, summary=summary))

    def fail(self, error: BaseException | str) -> None:
        """End the activity on an error: ``failed``, a critical alert, a log line, a status."""
        reason = error if isinstance(error, str) else (f"{type(error).__name__}: {error}"
                                                       if str(error) else type(error).__name__)
        exc_info = error if isinstance(error, BaseException) else None
        log.error("%s failed: %s", self.name, reason, exc_info=exc_info)
        self.release()
        self.on_failure(reason)
        self.set_status("failed", detail=f"failed: {reason}", reason=reason)
        self.s.alert("critical", self.name, f"{self.name} stopped on an error: {reason}")
        for t in list(self._tasks):
            if not t.done() and t is not asyncio.current_task():
                t.cancel()

    def on_failure(self, reason: str) -> None:
        """Hook: a subclass notes the failure (e.g. so its state reads ``failed``)."""

    def task_failed(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        """Called by the Session when one of this activity's tasks raised."""
        self.fail(exc)

    async def stop(self) -> None:
        """Graceful stop, then cancel what is left and give back the devices."""
        try:
            await self.shutdown()
        except Exception as exc:  # noqa: BLE001 - stopping goes on; the error is reported
            log.error("%s: error while stopping: %s", self.name, exc, exc_info=exc)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        self.release()
        if self.state not in IDLE_STATES:
            self.set_status("stopped", detail="stopped with the service")


class ActivityRegistry:
    """The Session's activities, in start order; their commands in one table.

    :meth:`add` refuses a command name that is not ``name.verb`` or that is
    already registered (by the Session or another activity)."""

    def __init__(self, commands: dict[str, Handler]) -> None:
        self.commands = commands
        self._items: dict[str, Activity] = {}

    def add(self, activity: Activity) -> Activity:
        if not activity.name:
            raise ValueError(f"{type(activity).__name__} has no name")
        if activity.name in self._items:
            raise ValueError(f"an activity named {activity.name!r} is already registered")
        cmds = activity.commands()
        for cmd in cmds:
            if cmd.count(".") != 1 or not all(cmd.split(".")):
                raise ValueError(f"{activity.name}: command {cmd!r} is not of the form name.verb")
            if cmd in self.commands:
                raise ValueError(f"{activity.name}: command {cmd!r} is already registered")
        self.commands.update(cmds)
        self._items[activity.name] = activity
        return activity

    def __iter__(self):  # noqa: ANN204 - Iterator[Activity]
        return iter(list(self._items.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> Activity:
        return self._items[name]

    def get(self, name: str) -> Activity | None:
        return self._items.get(name)

    async def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every activity, the last registered first (each within ``timeout`` s, wall time)."""
        for a in reversed(list(self._items.values())):
            try:
                await asyncio.wait_for(a.stop(), timeout)
            except (asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - the next one still stops
                log.error("%s did not stop cleanly: %s", a.name, exc or type(exc).__name__)


class SubprocessActivity(Activity):
    """An activity whose work runs in a child process (e.g. the stacking worker).

    The child is started with :attr:`niceness` added to its priority, gets one
    JSON object per line on stdin (:meth:`send`) and answers one JSON object
    per line on stdout (each goes to :meth:`on_message`). Its stderr is kept
    (the last :data:`STDERR_LINES` lines) for the failure message. A child
    that exits while it should run fails the activity with its exit status
    and last stderr line; :meth:`stop_child` sends SIGTERM and, after
    :attr:`term_grace_s` seconds (wall time: the child runs on real time),
    SIGKILL.
    """

    niceness: ClassVar[int] = 10
    term_grace_s: ClassVar[float] = 5.0
    STDERR_LINES: ClassVar[int] = 20

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=self.STDERR_LINES)
        self._stopping: set[int] = set()  # pids we are stopping (their exit is no failure)

    async def start_child(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start the child (niced) and the tasks that read its output."""
        if self.proc is not None and self.proc.returncode is None:
            raise ValueError(f"{self.name} is already running (pid {self.proc.pid})")
        n = self.niceness
        self.stderr_tail.clear()
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, preexec_fn=(lambda: os.nice(n)) if n else None,
            limit=16 * 1024 * 1024)
        self.spawn(self._read_stdout(self.proc), name=f"{self.name}-stdout")
        self.spawn(self._read_stderr(self.proc), name=f"{self.name}-stderr")

    async def send(self, msg: dict[str, Any]) -> None:
        """One JSON line to the child's stdin."""
        if self.proc is None or self.proc.stdin is None or self.proc.returncode is not None:
            raise ValueError(f"{self.name}: no child process is running")
        self.proc.stdin.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
        await self.proc.stdin.drain()

    async def on_message(self, msg: dict[str, Any]) -> None:
        """One JSON object from the child (subclasses act on it)."""

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.info("%s[%d]: %s", self.name, proc.pid, text)

    async def _read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("%s[%d] sent a line that is not JSON: %.200r", self.name, proc.pid, line)
                continue
            if isinstance(msg, dict):
                await self.on_message(msg)
        rc = await proc.wait()
        if proc.pid not in self._stopping:
            last = self.stderr_tail[-1] if self.stderr_tail else "no message"
            raise RuntimeError(f"its process {proc.pid} exited with status {rc} ({last})")

    async def stop_child(self) -> int | None:
        """SIGTERM, then SIGKILL after :attr:`term_grace_s`; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        self._stopping.add(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.term_grace_s)
            except asyncio.TimeoutError:
                log.warning("%s[%d] ignored SIGTERM for %g s: killing it", self.name, proc.pid,
                            self.term_grace_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        return proc.returncode

    async def shutdown(self) -> None:
        await self.stop_child()
