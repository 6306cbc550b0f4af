"""`fieldtui service start|stop|status|run`: the process that owns the night.

It runs the Session, listens on a Unix socket in the user's runtime folder
(mode 0600 in a 0700 folder), sends each client a full snapshot and then
events, takes commands, and keeps running with no client attached. One
service per rig: a second one is refused (an advisory lock on ``rig.lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..clock import make_clock
from ..config import Config
from ..events import Command
from . import protocol
from .client import CommandFailed, RigClient, ServiceUnavailable
from .recorder import default_path as record_path
from .recorder import state_dir
from .session import Session

log = logging.getLogger("fieldtui.service")


class AlreadyRunning(Exception):
    pass


def _acquire_lock() -> Any:
    path = protocol.lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fh = os.fdopen(fd, "r+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip() or "?"
        fh.close()
        raise AlreadyRunning(f"a rig service is already running on this rig (pid {pid}); "
                             "attach with `fieldtui` or stop it with `fieldtui service stop`") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def log_path() -> Path:
    return state_dir() / "service.log"


class Server:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.clients: set[asyncio.StreamWriter] = set()
        self.stopping = asyncio.Event()
        self.stop_report: list[str] = []
        self.started_at = time.monotonic()  # uptime is an interval: immune to clock steps
        session.commands["service.status"] = self._cmd_status
        session.commands["service.stop"] = self._cmd_stop

    async def _cmd_status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "uptime_s": round(time.monotonic() - self.started_at, 1),
                "config": list(self.session.cfg.sources),
                "clients": len(self.clients),
                "devices": {n: s.status.state for n, s in self.session.slots.items()},
                "activities": {n: a.state for n, a in self.session.activities.items()},
                "interrupted": self.session.interrupted}

    async def _cmd_stop(self) -> dict[str, Any]:
        running = self.session.running_activities()
        self.stopping.set()
        return {"aborted": running}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        q = self.session.subscribe()
        self.clients.add(writer)
        lock = asyncio.Lock()

        async def send(msg: dict[str, Any]) -> None:
            async with lock:
                writer.write(protocol.encode(msg))
                await writer.drain()

        async def pump() -> None:
            while True:
                ev = await q.get()
                await send({"type": "event", "kind": ev.kind, "data": ev.to_dict()})

        pump_task: asyncio.Task[None] | None = None
        try:
            await send({"type": "hello", "pid": os.getpid(), "snapshot": self.session.snapshot()})
            pump_task = asyncio.ensure_future(pump())
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = protocol.decode(line)
                except protocol.ProtocolError as exc:
                    await send({"type": "reply", "id": None, "ok": False, "error": str(exc)})
                    continue
                if msg["type"] != "command":
                    continue
                asyncio.ensure_future(self._run_command(msg, send))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.session.unsubscribe(q)
            self.clients.discard(writer)
            if pump_task:
                pump_task.cancel()
            with contextlib.suppress(Exception):
                writer.close()

    async def _run_command(self, msg: dict[str, Any], send: Any) -> None:
        cid = msg.get("id")
        try:
            result = await self.session.command(Command(str(msg.get("name")), dict(msg.get("args") or {})))
            reply = {"type": "reply", "id": cid, "ok": True, "result": result}
        except Exception as exc:  # noqa: BLE001 - a bad command is answered, never fatal
            reply = {"type": "reply", "id": cid, "ok": False, "error": str(exc) or type(exc).__name__}
        with contextlib.suppress(ConnectionError, OSError):
            await send(reply)


async def serve(cfg: Config, fast: bool = False, ready: asyncio.Event | None = None) -> list[str]:
    """Run the service until stopped; returns what was aborted."""
    lock = _acquire_lock()
    path = protocol.socket_path()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    session = Session(cfg, make_clock(fast), record_path=record_path())
    server_state = Server(session)
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(server_state.handle, path=str(path), limit=protocol.MAX_LINE)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, server_state.stopping.set)
    await session.start(wait=False)
    log.info("rig service %d listening on %s", os.getpid(), path)
    if ready is not None:
        ready.set()
    try:
        await server_state.stopping.wait()
    finally:
        running = session.running_activities()
        server.close()
        for w in list(server_state.clients):
            with contextlib.suppress(Exception):
                w.close()
        await session.stop()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        lock.close()
        log.info("rig service stopped; aborted: %s", ", ".join(running) or "nothing")
    return running


def _run_foreground(cfg: Config, fast: bool) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(cfg, fast))
    except AlreadyRunning as exc:
        print(f"fieldtui: {exc}", file=sys.stderr)
        return 1
    return 0


def spawn_detached(config_path: str | None, fast: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fieldtui", "service", "run"]
    if config_path:
        cmd += ["--config", str(Path(config_path).resolve())]
    if fast:
        cmd.append("--fast")
    logf = open(log_path(), "ab")
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            start_new_session=True, close_fds=True)


async def _ask(name: str, timeout: float = 30.0) -> Any:
    client = RigClient()
    await client.connect()
    try:
        return await client.command(name, timeout=timeout)
    finally:
        await client.close()


async def ensure_running(config_path: str | None, fast: bool = False, timeout: float = 15.0,
                         wait: bool = True) -> bool:
    """Start the service when none answers; True when this call started it.

    With ``wait=False`` it returns as soon as the process is launched (the
    client paints at once and connects when the service answers)."""
    client = RigClient()
    try:
        await client.connect(timeout=2.0)
        await client.close()
        return False
    except ServiceUnavailable:
        pass
    proc = spawn_detached(config_path, fast)
    if not wait:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if proc.poll() is not None:
            raise ServiceUnavailable(f"the rig service exited at start (status {proc.returncode}); see {log_path()}")
        try:
            await client.connect(timeout=1.0)
            await client.close()
            return True
        except ServiceUnavailable:
            continue
    raise ServiceUnavailable(f"the rig service did not answer within {timeout:g} s; see {log_path()}")


def main(action: str, cfg: Config, config_path: str | None = None, fast: bool = False) -> int:
    if action == "run":
        return _run_foreground(cfg, fast)
    if action == "start":
        try:
            started = asyncio.run(ensure_running(config_path, fast))
        except ServiceUnavailable as exc:
            print(f"fieldtui: {exc}", file=sys.stderr)
            return 1
        print("rig service started" if started else "rig service already running",
              f"(socket {protocol.socket_path()})")
        return 0
    if action == "status":
        try:
            st = asyncio.run(_ask("service.status"))
        except ServiceUnavailable:
            print("no rig service is running")
            return 3
        print(json.dumps(st, indent=1))
        return 0
    if action == "resume":
        try:
            state = asyncio.run(_ask("guide.resume"))
        except ServiceUnavailable:
            print("no rig service is running")
            return 3
        except CommandFailed as exc:
            print(f"fieldtui: {exc}", file=sys.stderr)
            return 1
        print(f"guiding resumed ({state})")
        return 0
    if action == "stop":
        try:
            res = asyncio.run(_ask("service.stop"))
        except ServiceUnavailable:
            print("no rig service is running")
            return 0
        # Wait for it to let go of the socket.
        deadline = time.monotonic() + 15
        while protocol.socket_path().exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        aborted = res.get("aborted") or []
        print("rig service stopped; " + (f"aborted: {', '.join(aborted)}" if aborted else "nothing was running"))
        return 0
    raise ValueError(action)
