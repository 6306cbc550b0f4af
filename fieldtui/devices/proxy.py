"""One door to every device: a timeout on each call, errors mapped, the holder checked.

Activities never call a driver directly: :meth:`Session.device` and
:meth:`Session.lease` hand out a :class:`DeviceProxy`. Each coroutine method
of the device is awaited with a timeout on the session clock (an exposure
gets its own length plus a margin), so a hung driver — a DSLR that never
returns from its download, a serial port that stopped answering — ends in
:class:`DeviceTimeout` instead of holding an activity forever. Errors are
mapped to the :class:`DeviceError` family: a vanished device is reported to
the Session (which reconnects it) and raised as :class:`DeviceDisconnected`;
an ``OSError`` or any other driver exception becomes a ``DeviceError`` that
names the device and the call.

Calls that act on the device (exposures, pulses, moves, slews) are refused
with :class:`DeviceBusy` while another owner holds the device's lease;
calls that only read (mount state, focuser position) always pass.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable

from ..clock import Clock
from ..frame import Frame
from .base import Device, DeviceDisconnected, DeviceError, DeviceTimeout

#: seconds a call may take, by method (an exposure: its length plus the margin)
CALL_TIMEOUT_S: dict[str, float] = {
    "state": 10.0, "position": 10.0, "sync": 10.0, "set_tracking": 10.0, "abort": 10.0,
    "move_to": 120.0, "move_by": 120.0, "slew_to": 300.0, "flip": 300.0,
}
DEFAULT_TIMEOUT_S = 30.0
PULSE_MARGIN_S = 5.0
#: what an exposure may take beyond its length: readout and download (a DSLR
#: writes its raw file to the computer first)
EXPOSE_MARGIN_S = {"main_camera": 30.0}
DEFAULT_EXPOSE_MARGIN_S = 10.0
#: calls that act on the device and need its lease (or no holder at all)
EXCLUSIVE = frozenset({"expose", "live_view", "pulse", "move_to", "move_by", "slew_to", "sync",
                       "set_tracking", "flip"})


class DeviceBusy(DeviceError):
    """The device is leased to another activity (the message says which, and since when)."""


@dataclass
class DeviceUse:
    """What the Session knows of a device's use: the last frame, call counts."""

    last_frame: Frame | None = None
    last_frame_t: float = 0.0   # clock time the last frame came in
    calls: int = 0
    timeouts: int = 0
    errors: int = 0


def call_timeout(name: str, method: str, args: tuple[Any, ...], kw: dict[str, Any]) -> float:
    """Seconds ``method`` of device ``name`` may take with these arguments."""
    if method in ("expose", "live_view"):
        seconds = kw.get("seconds", args[0] if args else 1.0)
        return float(seconds or 0.0) + EXPOSE_MARGIN_S.get(name, DEFAULT_EXPOSE_MARGIN_S)
    if method == "pulse":
        ms = kw.get("ms", args[1] if len(args) > 1 else 0)
        return float(ms or 0) / 1000.0 + PULSE_MARGIN_S
    return CALL_TIMEOUT_S.get(method, DEFAULT_TIMEOUT_S)


class DeviceProxy:
    """A device seen through the Session: every coroutine call timed out and mapped.

    ``name`` is the device's slot (``guide_camera``…), ``owner`` who calls
    through this proxy (an activity's name, or None). ``gate(name, owner)``
    raises :class:`DeviceBusy` when another owner holds the device;
    ``on_lost(name, exc)`` is told when the device vanished;
    ``wait_connected()`` returns once the Session has the device connected
    again (what :meth:`connect` does: activities never open or close a
    device themselves). Plain attributes (``width``, ``pixel_um``…) pass
    through.
    """

    def __init__(self, device: Device, name: str, clock: Clock, *, owner: str | None = None,
                 gate: Callable[[str, str | None], None] | None = None,
                 on_lost: Callable[[str, Exception], None] | None = None,
                 wait_connected: Callable[[], Any] | None = None,
                 use: DeviceUse | None = None) -> None:
        self.device = device
        self.name = name
        self.owner = owner
        self.clock = clock
        self._gate = gate
        self._on_lost = on_lost
        self._wait_connected = wait_connected
        self.use = use if use is not None else DeviceUse()

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.device, attr)
        if attr.startswith("_") or not asyncio.iscoroutinefunction(value):
            return value

        async def call(*args: Any, **kw: Any) -> Any:
            return await self.call(attr, *args, **kw)

        call.__name__ = attr
        return call

    async def call(self, method: str, *args: Any, **kw: Any) -> Any:
        """Await ``device.method(*args, **kw)`` with its timeout; errors as DeviceError."""
        if method in EXCLUSIVE and self._gate is not None:
            self._gate(self.name, self.owner)
        timeout = call_timeout(self.name, method, args, kw)
        self.use.calls += 1
        try:
            result = await self.clock.wait_for(getattr(self.device, method)(*args, **kw), timeout)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.use.timeouts += 1
            raise DeviceTimeout(f"{self.label}: {method} got no answer within {timeout:g} s") from None
        except DeviceDisconnected as exc:
            self.use.errors += 1
            if self._on_lost is not None:
                self._on_lost(self.name, exc)
            raise
        except DeviceError:
            self.use.errors += 1
            raise
        except OSError as exc:
            self.use.errors += 1
            raise DeviceError(f"{self.label}: {method} failed: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a driver bug becomes a device error with a name
            self.use.errors += 1
            raise DeviceError(f"{self.label}: {method} failed in the driver: "
                              f"{type(exc).__name__}: {exc}") from exc
        if isinstance(result, Frame):
            self.use.last_frame = result
            self.use.last_frame_t = self.clock.now()
        return result

    async def connect(self) -> None:
        """Wait until the Session has the device connected again."""
        if self._wait_connected is not None:
            await self._wait_connected()

    async def disconnect(self) -> None:
        """Nothing: the Session opens and closes devices, not the activities."""
        return None
