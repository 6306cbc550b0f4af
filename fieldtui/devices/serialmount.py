"""Serial line handling shared by the mount drivers (pyserial).

:class:`SerialLink` is the blocking half: one port, one lock that serialises
every command (a command and its answer are never interleaved with
another's), a timeout on every read, and on a garbled, partial or missing
answer a resynchronisation of the line (drain until quiet, then a probe the
protocol must answer correctly) before the command is tried again.
:class:`SerialMount` is the async half: every exchange runs in a thread
(``clock.run_blocking``) so the event loop never waits on the wire.
"""

from __future__ import annotations

import asyncio
import math
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .. import astro
from ..clock import Clock, RealClock
from .base import (DIRECTIONS, SIDEREAL_ARCSEC_PER_S, DeviceDisconnected, DeviceError,
                   DeviceGarbage, DeviceInfo, DeviceTimeout, Direction, GuidePort, Mount,
                   MountState, TRACKING_RATES)

T = TypeVar("T")

# What a vanished port raises: serial.SerialException is an OSError; termios calls on a
# pseudo-terminal whose other side closed raise termios.error.
LINE_ERRORS = (OSError, termios.error)

TRACK_RATES = TRACKING_RATES


@dataclass
class LinkStats:
    """What the line has been through since it was opened (shown by ``check``)."""

    commands: int = 0
    retries: int = 0
    resyncs: int = 0
    last_error: str = ""
    recoveries_s: list[float] = field(default_factory=list)   # failure → good answer, seconds


class SerialLink:
    """One serial port speaking a request/answer protocol.

    ``probe`` is the protocol's "are you there and in step" exchange, called
    under the lock after draining the input: it returns True when the answer
    is right. Errors: :class:`DeviceDisconnected` (port missing, unplugged),
    :class:`DeviceTimeout` (no answer after every retry), :class:`DeviceGarbage`
    (answers that never made sense)."""

    QUIET_S = 0.03           # the line counts as drained after this long without a byte

    def __init__(self, port: str, baud: int, *, timeout_s: float = 1.0, retries: int = 3,
                 what: str = "mount", probe: Callable[["SerialLink"], bool] | None = None) -> None:
        self.port, self.baud, self.timeout_s, self.retries, self.what = port, baud, timeout_s, retries, what
        self.probe = probe
        self.ser: Any = None
        self.lock = threading.Lock()
        self.stats = LinkStats()
        self.bytes_out = 0           # written since the port was opened

    # ----- port ---------------------------------------------------------------
    def open(self) -> None:
        import serial
        self.close()
        try:
            self.ser = serial.serial_for_url(self.port, baudrate=self.baud, bytesize=8, parity="N",
                                             stopbits=1, timeout=self.timeout_s,
                                             write_timeout=self.timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceDisconnected(
                f"{self.what} port {self.port} cannot be opened ({exc}): check the cable and the "
                "port name (`fieldtui check` lists the serial ports), and that no other program "
                "holds it") from None
        self.stats = LinkStats()
        self.bytes_out = 0

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished port
                pass
        self.ser = None

    @property
    def is_open(self) -> bool:
        return self.ser is not None and self.ser.is_open

    # ----- raw reads (called with the lock held) -------------------------------
    def write(self, data: bytes) -> None:
        self.ser.write(data)
        self.ser.flush()
        self.bytes_out += len(data)

    def read_until(self, term: bytes = b"#", max_len: int = 96, alphabet: bytes | None = None) -> bytes:
        """Bytes up to and including ``term``. Raises DeviceTimeout (nothing) or
        DeviceGarbage (a partial answer; at once on a byte outside ``alphabet``, the
        bytes the answer can hold, instead of waiting out the timeout)."""
        data = bytearray()
        deadline = time.monotonic() + self.timeout_s
        while len(data) < max_len and time.monotonic() < deadline:
            c = self.ser.read(1)
            if not c:
                break
            data += c
            if data.endswith(term):
                break
            if alphabet is not None and c[0] not in alphabet:
                raise DeviceGarbage(f"{self.what} on {self.port} sent {bytes(data)!r}, not an answer")
        data = bytes(data)
        if not data:
            raise DeviceTimeout(f"{self.what} on {self.port} did not answer within {self.timeout_s:g} s")
        if not data.endswith(term):
            raise DeviceGarbage(f"{self.what} on {self.port} sent a partial answer {data!r}")
        return data

    def read_n(self, n: int) -> bytes:
        data = self.ser.read(n)
        if not data:
            raise DeviceTimeout(f"{self.what} on {self.port} did not answer within {self.timeout_s:g} s")
        if len(data) < n:
            raise DeviceGarbage(f"{self.what} on {self.port} sent a partial answer {data!r}")
        return data

    def drain(self) -> bytes:
        """Read and drop whatever arrives until the line stays quiet for QUIET_S
        (at most timeout_s)."""
        got = bytearray()
        old = self.ser.timeout
        end = time.monotonic() + self.timeout_s
        try:
            self.ser.timeout = self.QUIET_S
            while time.monotonic() < end:
                chunk = self.ser.read(256)
                if not chunk:
                    break
                got += chunk
        finally:
            self.ser.timeout = old
        self.ser.reset_input_buffer()
        return bytes(got)

    def resync(self) -> bool:
        """Drain the line and check it is in step with the probe (a few tries). False when
        the line stays out of step or the probe gets no answer at all (a silent device:
        trying the command again would only wait longer)."""
        self.stats.resyncs += 1
        for _ in range(3):
            self.drain()
            if self.probe is None:
                return True
            try:
                if self.probe(self):
                    return True
            except DeviceTimeout:
                return False
            except DeviceError:
                pass
        return False

    # ----- one command ----------------------------------------------------------
    def exchange(self, cmd: bytes, answer: Callable[["SerialLink"], T] | None,
                 retries: int | None = None, once: bool = False) -> T | None:
        """Send ``cmd`` and read its answer with ``answer(link)`` (which reads and parses,
        raising DeviceTimeout/DeviceGarbage/ValueError on a bad one); retried ``retries``
        times (default: the link's) after a resynchronisation. ``answer`` None: the
        command has no answer. ``once``: a command that must not run twice (a timed guide
        pulse): sent once; a lost or garbled answer only resynchronises the line and
        gives None."""
        if once:
            try:
                return self.exchange(cmd, answer, retries=0)
            except (DeviceTimeout, DeviceGarbage):
                with self.lock:
                    try:
                        self.resync()
                    except LINE_ERRORS as exc:
                        self.close()
                        raise DeviceDisconnected(f"{self.what} on {self.port} went away ({exc})") from None
                return None
        if not self.is_open:
            raise DeviceDisconnected(f"{self.what} port {self.port} is not open")
        retries = self.retries if retries is None else retries
        with self.lock:
            self.stats.commands += 1
            failed_at: float | None = None
            last: DeviceError | None = None
            for attempt in range(retries + 1):
                try:
                    self.ser.reset_input_buffer()
                    self.write(cmd)
                    result = answer(self) if answer is not None else None
                    if failed_at is not None:
                        self.stats.recoveries_s.append(time.monotonic() - failed_at)
                    return result
                except (DeviceTimeout, DeviceGarbage) as exc:
                    last = exc
                except ValueError as exc:
                    last = DeviceGarbage(f"{self.what} on {self.port} answered {cmd!r} with nonsense: {exc}")
                except LINE_ERRORS as exc:
                    self.close()
                    raise DeviceDisconnected(f"{self.what} on {self.port} went away ({exc}): "
                                             "check its cable and power") from None
                if failed_at is None:
                    failed_at = time.monotonic()
                self.stats.last_error = str(last)
                if attempt < retries:
                    try:
                        in_step = self.resync()
                    except LINE_ERRORS as exc:
                        self.close()
                        raise DeviceDisconnected(f"{self.what} on {self.port} went away ({exc})") from None
                    if not in_step:
                        break
                    self.stats.retries += 1
            assert last is not None
            raise last


class SerialMount(Mount):
    """A mount on a serial line; subclasses implement the protocol's ``_sync_*`` calls
    (blocking, run in a thread) and this class makes them async.

    ``clock`` times pulses and gives the sidereal time for
    Alt/Az; ``site`` is (latitude, longitude) in degrees. The pier side is "unknown": the
    LX200 and NexStar position commands do not give it (a guess from the hour angle would
    be wrong for a mount tracking past the meridian)."""

    protocol = ""
    DEFAULT_BAUD = 9600

    def __init__(self, port: str, baud: int | None = None, *, timeout_s: float = 1.0,
                 retries: int = 3, clock: Clock | None = None, guide_rate: float = 0.5,
                 site: tuple[float, float] = (0.0, 0.0), emulator: Any = None) -> None:
        self.driver = self.protocol
        self.emulator = emulator     # a MountEmulator whose pty is the port (``[mount] emulate``)
        self.link = SerialLink(port, baud or self.DEFAULT_BAUD, timeout_s=timeout_s, retries=retries,
                               what=f"{self.protocol} mount", probe=self._probe)
        self.clock = clock or RealClock()
        self.guide_rate = guide_rate
        self.site = site
        self.tracking_rate = "sidereal"
        self._tracking = True
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._info: DeviceInfo | None = None
        self.model = ""

    # protocol hooks (blocking) ---------------------------------------------------
    def _probe(self, link: SerialLink) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def _sync_identify(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    # async plumbing ------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.link.is_open:
            self._connected = False
            raise DeviceDisconnected(f"{self.driver} mount on {self.link.port} is not connected")
        try:
            result = await self.clock.run_blocking(fn, *args)
        except DeviceDisconnected:
            self._connected = False
            raise
        if self.emulator is not None and self.clock.virtual:
            # A command without an answer (a guide pulse) must reach the emulated mount
            # before virtual time moves on, as it reaches a real one at once.
            await self.clock.run_blocking(self.emulator.wait_handled, self.link.bytes_out)
        return result

    def lst_deg(self) -> float:
        return astro.local_sidereal_deg(self.clock.now(), self.site[1])

    async def connect(self) -> DeviceInfo:
        """Open the port and identify the mount (a second caller while connected gets the
        same answer: the mount and a guide port through it connect together)."""
        async with self._connect_lock:
            if self._connected and self.link.is_open and self._info is not None:
                return self._info
            self._info = await self._connect()
            return self._info

    async def _connect(self) -> DeviceInfo:
        if self.emulator is not None:
            self.link.port = await self.emulator.ensure_started()
        await self.clock.run_blocking(self.link.open)
        try:
            details = await self.clock.run_blocking(self._sync_identify)
        except DeviceError as exc:
            self.link.close()
            raise DeviceError(f"nothing on {self.link.port} answers the {self.protocol} protocol "
                              f"({exc}): check the port, the baud rate ({self.link.baud}) and "
                              "that the mount is on") from None
        self._connected = True
        details.update(port=self.link.port, baud=self.link.baud, protocol=self.protocol,
                       guide_rate=self.guide_rate, emulated=self.emulator is not None)
        return DeviceInfo(self.kind, self.driver, self.model, details)

    async def disconnect(self) -> None:
        self._connected = False
        await self.clock.run_blocking(self.link.close)
        if self.emulator is not None:
            await self.emulator.close()

    def _check_direction(self, direction: str, ms: int) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown guide direction {direction!r}; one of N, S, E, W")
        if ms < 0:
            raise ValueError("pulse duration must not be negative")

    def _check_target(self, ra_deg: float, dec_deg: float) -> None:
        if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)) or not -90 <= dec_deg <= 90:
            raise DeviceError(f"target RA {ra_deg!r} Dec {dec_deg!r} is not on the sky")

    async def state(self) -> MountState:
        """Position, tracking and slewing as the mount reports them (its ``_sync_state``,
        run off the event loop under the line's lock)."""
        return await self._run(self._sync_state)

    async def altaz(self) -> tuple[float, float]:
        """(altitude, azimuth) in degrees as the mount reports them."""
        return await self._run(self._sync_altaz)

    async def set_guide_rate(self, fraction: float) -> None:
        """Guide speed as a fraction of sidereal (0.1–1)."""
        if not 0.05 <= fraction <= 1.0:
            raise DeviceError(f"guide rate {fraction:g} is outside 0.05–1 x sidereal")
        self.guide_rate = fraction

    def pulse_arcsec(self, ms: int) -> float:
        """How far a pulse of ``ms`` moves the axis at the current guide rate, arcsec."""
        return self.guide_rate * SIDEREAL_ARCSEC_PER_S * ms / 1000.0


class MountGuidePort(GuidePort):
    """Guide pulses sent through the mount's own serial line ("pulse guiding")."""

    driver = "mount"

    def __init__(self, mount: Mount) -> None:
        self.mount = mount

    @property
    def guide_rate(self) -> float:  # type: ignore[override]
        """The mount's guide rate, fraction of sidereal (follows ``set_guide_rate``)."""
        return float(getattr(self.mount, "guide_rate", 0.5))

    @property
    def connected(self) -> bool:
        return self.mount.connected

    async def connect(self) -> DeviceInfo:
        if not self.mount.connected:
            await self.mount.connect()
        return DeviceInfo(self.kind, self.driver, f"pulse guiding through the {self.mount.driver} mount",
                          {"guide_rate": self.guide_rate})

    async def pulse(self, direction: Direction, ms: int) -> None:
        await self.mount.pulse(direction, ms)


__all__ = ["SerialLink", "SerialMount", "MountGuidePort", "LinkStats", "MountState", "TRACK_RATES"]
