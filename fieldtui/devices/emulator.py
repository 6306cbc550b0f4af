"""A serial mount on a pseudo-terminal, answering from the simulated mount model.

:class:`MountEmulator` opens a pty and speaks LX200, NexStar or SynScan on
it, the way the hand controllers do, with every answer taken from a
:class:`~fieldtui.devices.sim.SimMount` (so tracking, periodic error, slews
that take time and guide pulses are the simulated rig's own). Any program
that drives such a mount over a serial port can drive it: this app's
drivers, INDI, a planetarium.

Faults (:class:`EmulatorFaults`) replace answers with junk bytes, drop them
or send them late, either the next *n* answers or at random.

Only answers are faulted; commands without an answer (LX200 pulses, moves)
always act. Unknown commands get no answer, as on a Meade.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from . import mountproto as mp
from .base import SIDEREAL_ARCSEC_PER_S, DeviceError
from .nexstar import (DEST_DEC, DEST_RA, MC_GET_GUIDE_RATE, MC_GUIDE, MC_GUIDE_ACTIVE,
                      MC_SET_GUIDE_RATE, MC_SET_NEG_RATE, MC_SET_POS_RATE, TRACK_OFF,
                      TRACK_RATE_CODES)

PROTOCOLS = ("lx200", "nexstar", "synscan")
JUNK = b"\xfe\x15?"


@dataclass
class EmulatorFaults:
    """Answer faults: counts for the next answers, and rates (0–1) for random ones."""

    garbage: int = 0
    drop: int = 0
    slow: int = 0
    slow_s: float = 2.0
    garbage_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    seed: int = 1
    injected: list[tuple[str, float]] = field(default_factory=list)   # (fault, monotonic time)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def pick(self) -> str | None:
        for name in ("garbage", "drop", "slow"):
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                self.injected.append((name, time.monotonic()))
                return name
        for name in ("garbage", "drop", "slow"):
            rate = getattr(self, f"{name}_rate")
            if rate > 0 and self._rng.random() < rate:
                self.injected.append((name, time.monotonic()))
                return name
        return None


class _Protocol:
    """One protocol: split the byte stream into commands and answer each."""

    def __init__(self, emu: "MountEmulator") -> None:
        self.emu = emu

    @property
    def mount(self):  # the SimMount
        return self.emu.mount

    def split(self, buf: bytearray) -> bytes | None:  # pragma: no cover - interface
        raise NotImplementedError

    async def handle(self, cmd: bytes) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


class _Lx200(_Protocol):
    def __init__(self, emu: "MountEmulator") -> None:
        super().__init__(emu)
        self.long = False            # a Meade starts in the short format
        self.target = (0.0, 0.0)
        self.move_rate = "RG"        # :RG guide (where clients assume it starts), :RC centre, :RM find, :RS slew
        self.moves: dict[str, tuple[str, float, float]] = {}   # axis → (direction, x sidereal, start)

    MOVE_RATES = {"RC": 8.0, "RM": 64.0, "RS": 64.0}

    def start_move(self, direction: str) -> None:
        """:Mn/:Ms/:Me/:Mw: move at the selected rate until :Q or :Qd (the path is applied
        as a guide pulse at that rate when it stops)."""
        axis = "ns" if direction in "NS" else "ew"
        self.stop_moves(axis)
        rate = self.emu.sky.guide_rate if self.move_rate == "RG" else self.MOVE_RATES[self.move_rate]
        self.moves[axis] = (direction, rate, self.mount.clock.monotonic())

    def stop_moves(self, *axes: str) -> None:
        now = self.mount.clock.monotonic()
        for axis in axes or tuple(self.moves):
            if axis in self.moves:
                direction, rate, t0 = self.moves.pop(axis)
                if now > t0:
                    self.emu.pulse(direction, (now - t0) * 1000.0, rate=rate, at=t0)

    def split(self, buf: bytearray) -> bytes | None:
        while buf:
            if buf[0] == 0x06:
                del buf[0]
                return b"\x06"
            if buf[0] != ord(":"):
                del buf[0]           # noise between commands
                continue
            end = buf.find(b"#")
            if end < 0:
                return None
            body = bytes(buf[:end])
            del buf[:end + 1]
            # A ':' followed by a letter starts a new command (an unfinished one is dropped);
            # inside arguments (":Sr01:33:50#") a ':' is followed by a digit.
            starts = [i for i in range(len(body))
                      if body[i] == ord(":") and (i + 1 == len(body) or chr(body[i + 1]).isalpha())]
            start = starts[-1] if starts else -1
            return body[start + 1:]
        return None

    def _ra(self, ra: float) -> bytes:
        return (mp.format_ra(ra, self.long) + "#").encode("latin-1")

    def _dec(self, dec: float, **kw) -> bytes:
        return (mp.format_dec(dec, self.long, deg="\xdf", **kw) + "#").encode("latin-1")

    async def handle(self, cmd: bytes) -> bytes:
        emu, m = self.emu, self.mount
        if cmd == b"\x06":
            return b"P" if m.tracking else b"L"
        c = cmd.decode("latin-1")
        if c in ("GR", "GD", "GA", "GZ"):
            st = await m.state()
            if c == "GR":
                return self._ra(st.ra_deg)
            if c == "GD":
                return self._dec(st.dec_deg)
            alt, az = mp.altaz_from_radec(st.ra_deg, st.dec_deg, emu.lst_deg(), emu.latitude)
            return self._dec(alt) if c == "GA" else self._dec(az, sign=False, deg_digits=3)
        if c == "U":
            self.long = not self.long
            return b""
        if c.startswith("Sr"):
            try:
                ra = mp.parse_ra(c[2:])
            except ValueError:
                return b"0"
            self.target = (ra, self.target[1])
            return b"1"
        if c.startswith("Sd"):
            try:
                dec = mp.parse_dec(c[2:])
            except ValueError:
                return b"0"
            if not -90 <= dec <= 90:
                return b"0"
            self.target = (self.target[0], dec)
            return b"1"
        if c == "MS":
            emu.start_slew(*self.target)   # while slewing: heads for the new target (a retried goto)
            return b"0"
        if c == "CM":
            await m.sync(*self.target)
            return b" M31 EX GAL MAG 3.5 SZ178.0'#"
        if c == "Q":
            self.stop_moves()
            emu.abort()
            return b""
        if c in ("Qn", "Qs", "Qe", "Qw"):
            self.stop_moves("ns" if c[1] in "ns" else "ew")
            return b""
        if c in ("Mn", "Ms", "Me", "Mw"):
            self.start_move(c[1].upper())
            return b""
        if c in ("RG", "RC", "RM", "RS"):
            self.move_rate = c
            return b""
        if c.startswith("Mg") and len(c) == 7 and c[2] in "nsew" and c[3:].isdigit():
            emu.pulse(c[2].upper(), int(c[3:]))
            return b""
        if c.startswith("Rg"):
            try:
                emu.set_guide_rate(float(c[2:]) / SIDEREAL_ARCSEC_PER_S)
            except ValueError:
                pass
            return b""
        if c in ("AP", "AA"):
            await m.set_tracking(True)
            return b""
        if c == "AL":
            await m.set_tracking(False)
            return b""
        if c in ("TQ", "TL", "TS"):
            emu.tracking_rate = {"TQ": "sidereal", "TL": "lunar", "TS": "solar"}[c]
            return b""
        if c == "hP":
            emu.park()
            return b""
        if c == "D":
            return b"\x7f#" if m.slewing else b"#"
        if c == "GW":
            return b"G" + (b"T" if m.tracking else b"N") + b"1#"
        if c == "GVP":
            return b"LX200 Emulator#"
        if c == "GVN":
            return b"fieldtui#"
        if c == "GVD":
            return b"Nov 01 2026#"
        if c == "GVT":
            return b"12:00:00#"
        if c == "GS":
            return (mp.format_ra(emu.lst_deg(), True) + "#").encode()
        if c == "Gt":
            return (mp.format_dec(emu.latitude, False, deg="\xdf") + "#").encode("latin-1")
        if c == "Gg":
            return (mp.format_dec((-emu.longitude) % 360.0, False, sign=False, deg_digits=3,
                                  deg="\xdf") + "#").encode("latin-1")
        if c == "GG":
            return b"+00#"
        if c in ("GM", "GN", "GO", "GP"):
            return b"fieldtui#"
        if c == "GT":
            return {"sidereal": b"60.1#", "lunar": b"57.9#", "solar": b"60.0#"}[emu.tracking_rate]
        if c == "Gc":
            return b"24#"
        if c in ("GL", "Ga"):
            return time.strftime("%H:%M:%S#", time.gmtime(m.clock.now())).encode()
        if c == "GC":
            return time.strftime("%m/%d/%y#", time.gmtime(m.clock.now())).encode()
        if c[:2] in ("St", "Sg", "SG", "SL", "Sw", "Sr"):
            return b"1"
        if c.startswith("SC"):
            return b"1Updating Planetary Data#" + b" " * 24 + b"#"
        return b""


class _NexStar(_Protocol):
    LENGTHS = {"K": 2, "V": 1, "m": 1, "E": 1, "e": 1, "Z": 1, "z": 1, "R": 10, "r": 18,
               "S": 10, "s": 18, "B": 10, "b": 18, "L": 1, "J": 1, "M": 1, "t": 1, "T": 2,
               "P": 8, "p": 1, "h": 1, "w": 1, "H": 9, "W": 9}
    MODEL = 20                       # Advanced VX

    def __init__(self, emu: "MountEmulator") -> None:
        super().__init__(emu)
        self.mode = 2 if emu.latitude >= 0 else 3
        self.moves: dict[int, tuple[str, float, float]] = {}   # axis → (direction, "/s, start)
        self.guide_until: dict[int, float] = {}

    def split(self, buf: bytearray) -> bytes | None:
        while buf:
            n = self.LENGTHS.get(chr(buf[0]))
            if n is None:
                del buf[0]
                continue
            if len(buf) < n:
                return None
            cmd = bytes(buf[:n])
            del buf[:n]
            return cmd
        return None

    def version(self) -> bytes:
        return bytes([4, 21]) + b"#"

    async def handle(self, cmd: bytes) -> bytes:
        emu, m = self.emu, self.mount
        op, arg = chr(cmd[0]), cmd[1:]
        if op == "K":
            return arg + b"#"
        if op == "V":
            return self.version()
        if op == "m":
            return bytes([self.MODEL]) + b"#"
        if op == "J":
            return b"1#"
        if op in "Ee":
            st = await m.state()
            return mp.format_pair(st.ra_deg, st.dec_deg, op == "e").encode() + b"#"
        if op in "Zz":
            st = await m.state()
            alt, az = mp.altaz_from_radec(st.ra_deg, st.dec_deg, emu.lst_deg(), emu.latitude)
            return mp.format_pair(az, alt, op == "z").encode() + b"#"
        if op in "RrSsBb":
            try:
                a, b = mp.parse_pair(arg.decode("latin-1"))
            except (ValueError, UnicodeDecodeError):
                return b""
            if op in "Bb":
                a, b = mp.radec_from_altaz(b, a, emu.lst_deg(), emu.latitude)
            if op in "Ss":
                await m.sync(a, b)
            else:
                emu.start_slew(a, b)
            return b"#"
        if op == "L":
            return b"1#" if m.slewing else b"0#"
        if op == "M":
            emu.abort()
            return b"#"
        if op == "t":
            return bytes([self.mode if m.tracking else TRACK_OFF]) + b"#"
        if op == "T":
            if arg[0] != TRACK_OFF:
                self.mode = arg[0]
            await m.set_tracking(arg[0] != TRACK_OFF)
            return b"#"
        if op == "p":
            return b"W#" if emu.pier_west() else b"E#"
        if op == "P":
            return self.passthrough(arg)
        if op in "HW":
            return b"#"
        if op == "h":
            t = time.gmtime(m.clock.now())
            return bytes([t.tm_hour, t.tm_min, t.tm_sec, t.tm_mon, t.tm_mday, t.tm_year % 100, 0, 0]) + b"#"
        if op == "w":
            return self.location() + b"#"
        return b""

    def location(self) -> bytes:
        def dms(v: float) -> list[int]:
            a = abs(v)
            d = int(a)
            mi = int((a - d) * 60)
            return [d, mi, int(round(((a - d) * 60 - mi) * 60)) % 60]
        lat, lon = self.emu.latitude, self.emu.longitude
        return bytes(dms(lat) + [1 if lat < 0 else 0] + dms(lon) + [1 if lon < 0 else 0])

    def passthrough(self, arg: bytes) -> bytes:
        n, dest, cmd = arg[0], arg[1], arg[2]
        data, answer_len = arg[3:3 + max(0, n - 1)], arg[6]
        emu = self.emu
        now = emu.mount.clock.monotonic()
        if dest not in (DEST_RA, DEST_DEC):
            return b"\0" * answer_len + b"#"
        if cmd == MC_GUIDE and len(data) >= 2:
            pct = data[0] - 256 if data[0] > 127 else data[0]
            direction = ("E" if pct > 0 else "W") if dest == DEST_RA else ("N" if pct > 0 else "S")
            emu.pulse(direction, data[1] * 10, rate=abs(pct) / 100.0)
            self.guide_until[dest] = now + data[1] / 100.0
            return b"#"
        if cmd == MC_GUIDE_ACTIVE:
            return bytes([1 if self.guide_until.get(dest, 0) > now else 0]) + b"#"
        if cmd == MC_SET_GUIDE_RATE and data:
            emu.set_guide_rate(data[0] / 256.0)
            return b"#"
        if cmd == MC_GET_GUIDE_RATE:
            return bytes([min(255, round(emu.sky.guide_rate * 256))]) + b"#"
        if cmd in (MC_SET_POS_RATE, MC_SET_NEG_RATE) and len(data) == 2:
            value = int.from_bytes(data, "big")
            if dest == DEST_RA and value in TRACK_RATE_CODES.values():
                emu.tracking_rate = {v: k for k, v in TRACK_RATE_CODES.items()}[value]
                return b"#"
            self.move(dest, cmd, value / 4.0, now)
            return b"#"
        return b"\0" * answer_len + b"#"

    def move(self, dest: int, cmd: int, arcsec_s: float, now: float) -> None:
        """A variable-rate move on top of tracking: its path is applied as a guide pulse
        at that speed when it stops."""
        if dest in self.moves:
            direction, rate, t0 = self.moves.pop(dest)
            ms = (now - t0) * 1000.0
            if ms > 0 and rate > 0:
                self.emu.pulse(direction, ms, rate=rate / SIDEREAL_ARCSEC_PER_S, at=t0)
        if arcsec_s > 0:
            pos = cmd == MC_SET_POS_RATE
            direction = ("E" if pos else "W") if dest == DEST_RA else ("N" if pos else "S")
            self.moves[dest] = (direction, arcsec_s, now)


class _SynScan(_NexStar):
    MODEL = 1                        # HEQ5

    def version(self) -> bytes:
        return b"042507#"


class MountEmulator:
    """Speak ``protocol`` on a new pseudo-terminal, answering from ``mount`` (a SimMount).

    ``await start()`` returns the device path; ``await close()`` ends it."""

    def __init__(self, protocol: str, mount, *, faults: EmulatorFaults | None = None,
                 trace: Callable[[bytes, bytes], None] | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self.mount = mount
        self.sky = mount.rig.sky
        self.latitude = mount.rig.cfg.site.latitude
        self.longitude = mount.rig.cfg.site.longitude
        self.faults = faults or EmulatorFaults()
        self.trace = trace           # called with (command, answer) for each command
        self.tracking_rate = "sidereal"
        self.handler: _Protocol = {"lx200": _Lx200, "nexstar": _NexStar, "synscan": _SynScan}[protocol](self)
        self.path = ""
        self.commands = 0
        self._master = self._slave = -1
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._serve_task: asyncio.Task | None = None
        self._slew: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handled = threading.Condition()
        self.bytes_handled = 0       # bytes read and acted on since start()

    def wait_handled(self, nbytes: int, timeout: float = 0.5) -> bool:
        """Block (in a thread) until ``nbytes`` bytes written by the driver since the port
        opened have been read and acted on, or ``timeout`` seconds (real time) pass: with the
        virtual clock a command without an answer reaches the model before time moves on.
        Returns False on the timeout (bytes that never form a command)."""
        with self._handled:
            return self._handled.wait_for(lambda: self.bytes_handled >= nbytes, timeout)

    # ----- life cycle -----------------------------------------------------------------
    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._master, self._slave = os.openpty()
        with self._handled:
            self.bytes_handled = 0
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        if not self.mount.connected:
            await self.mount.connect()
        self._loop.add_reader(self._master, self._readable)
        self._serve_task = asyncio.ensure_future(self._serve())
        return self.path

    async def ensure_started(self) -> str:
        """Start when not running (again after :meth:`close`); the device path."""
        if self._master < 0:
            self._queue = asyncio.Queue()
            return await self.start()
        return self.path

    async def close(self) -> None:
        if self._loop is not None and self._master >= 0:
            self._loop.remove_reader(self._master)
        for task in (self._serve_task, self._slew):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # noqa: BLE001 - shutting down
                    pass
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    async def serve_forever(self) -> None:
        assert self._serve_task is not None
        await self._serve_task

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return                   # no client on the other side yet
        if data:
            self._queue.put_nowait(data)

    async def _serve(self) -> None:
        buf = bytearray()
        taken = 0
        while True:
            data = await self._queue.get()
            buf += data
            taken += len(data)
            while True:
                cmd = self.handler.split(buf)
                if cmd is None:
                    with self._handled:
                        self.bytes_handled = taken - len(buf)
                        self._handled.notify_all()
                    break
                self.commands += 1
                try:
                    if not self.mount.connected:   # back after a simulated unplug
                        await self.mount.connect()
                    answer = await self.handler.handle(cmd)
                except DeviceError:
                    continue         # the simulated mount is "unplugged" or faulted: silence
                if self.trace is not None:
                    self.trace(cmd, answer)
                if answer:
                    await self._send(answer)

    async def _send(self, answer: bytes) -> None:
        fault = self.faults.pick()
        if fault == "drop":
            return
        if fault == "garbage":
            answer = JUNK[:1] + answer[:len(answer) // 2] + JUNK[1:]
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_s)
        try:
            os.write(self._master, answer)
        except OSError:
            pass

    # ----- the model ---------------------------------------------------------------------
    def lst_deg(self) -> float:
        return self.mount.rig.lst_deg()

    def pier_west(self) -> bool:
        """On the west side of the pier (pointing east), as the simulated mount says."""
        return self.mount.pier_side == "west"

    def start_slew(self, ra_deg: float, dec_deg: float) -> None:
        self.abort()
        self.mount.slewing = True    # at once: a status read right after the goto sees it
        self._slew = asyncio.ensure_future(self._run_slew(self.mount.slew_to(ra_deg, dec_deg)))

    @staticmethod
    async def _run_slew(aw: Awaitable[None]) -> None:
        try:
            await aw
        except DeviceError:
            pass

    def abort(self) -> None:
        if self._slew is not None and not self._slew.done():
            self._slew.cancel()
        self.mount.slewing = False

    def park(self) -> None:
        """Slew to the pole (hour angle 0) and stop tracking when there."""
        lat = self.latitude
        target = (self.lst_deg(), 90.0 if lat >= 0 else -90.0)

        async def go() -> None:
            await self.mount.slew_to(*target)
            await self.mount.set_tracking(False)
        self.abort()
        self.mount.slewing = True
        self._slew = asyncio.ensure_future(self._run_slew(go()))

    def set_guide_rate(self, fraction: float) -> None:
        if 0.0 < fraction <= 1.0:
            self.sky.guide_rate = fraction

    def pulse(self, direction: str, ms: float, *, rate: float | None = None, at: float | None = None) -> None:
        """Move the simulated pointing as a guide pulse (at ``rate`` x sidereal when given)."""
        t = self.mount.clock.monotonic() if at is None else at
        if rate is None:
            self.sky.apply_pulse(direction, ms, t)
            return
        keep = self.sky.guide_rate
        self.sky.guide_rate = rate
        try:
            self.sky.apply_pulse(direction, ms, t)
        finally:
            self.sky.guide_rate = keep


def driver_class(protocol: str) -> Callable[..., object]:
    """The serial driver class speaking ``protocol``."""
    if protocol == "lx200":
        from .lx200 import Lx200Mount
        return Lx200Mount
    if protocol in ("nexstar", "synscan"):
        from .nexstar import NexStarMount, SynScanMount
        return NexStarMount if protocol == "nexstar" else SynScanMount
    raise ValueError(f"unknown mount protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
