"""A client of the rig service: connect, read the snapshot and events, send commands."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, AsyncIterator

from ..events import Event
from . import protocol


class ServiceUnavailable(Exception):
    pass


class CommandFailed(Exception):
    pass


class RigClient:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or protocol.socket_path()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.hello: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def snapshot(self) -> dict[str, Any]:
        return self.hello.get("snapshot", {})

    async def connect(self, timeout: float = 5.0) -> dict[str, Any]:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path), limit=protocol.MAX_LINE), timeout)
        except (FileNotFoundError, ConnectionRefusedError, OSError, asyncio.TimeoutError) as exc:
            raise ServiceUnavailable(f"no rig service at {self.path}: {exc}") from None
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ServiceUnavailable("the rig service closed the connection")
        msg = protocol.decode(line)
        if msg["type"] != "hello":
            raise protocol.ProtocolError(f"expected hello, got {msg['type']}")
        self.hello = msg
        self._reader_task = asyncio.ensure_future(self._read())
        return msg

    async def _read(self) -> None:
        assert self.reader is not None
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                msg = protocol.decode(line)
                if msg["type"] == "event":
                    try:
                        self._events.put_nowait(Event.from_dict(msg["kind"], msg["data"]))
                    except KeyError:
                        continue  # an event kind this client does not know
                elif msg["type"] == "reply":
                    fut = self._pending.pop(msg.get("id"), None)
                    if fut is not None and not fut.done():
                        if msg.get("ok"):
                            fut.set_result(msg.get("result"))
                        else:
                            fut.set_exception(CommandFailed(msg.get("error", "command failed")))
        except (ConnectionError, protocol.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ServiceUnavailable("the rig service went away"))
            self._pending.clear()
            self._events.put_nowait(None)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            yield ev

    async def command(self, name: str, /, timeout: float | None = 30.0, **args: Any) -> Any:
        if self.writer is None or self.writer.is_closing():
            raise ServiceUnavailable("not connected to the rig service")
        cid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        self.writer.write(protocol.encode({"type": "command", "id": cid, "name": name, "args": args}))
        await self.writer.drain()
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
