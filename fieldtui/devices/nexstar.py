"""Celestron NexStar and SkyWatcher SynScan hand-controller serial protocols.

Single-letter commands with binary or hex arguments, answers ending in
``#``. Both controllers speak the same core (``Kx`` echo, ``e``/``r``/``s``
precise RA/Dec, ``z``/``b`` Az/Alt, ``L`` goto in progress, ``M`` cancel,
``t``/``T`` tracking mode, ``P`` pass-through to the motor controllers) and
differ in the version answer, the model codes and guiding: Celestron's motor
controllers take timed guide pulses (pass-through command 0x26 with a rate in
percent of sidereal and a duration in centiseconds, 0x27 to ask whether one
is running, 0x46 to set the autoguide rate); SynScan has none of these, so a
pulse is a variable-rate move at the guide speed (pass-through 6/7 with the
rate in 1/4 arcsec/s) that the driver times and stops.

Sources: Celestron "NexStar Communication Protocol" v1.2 and the motor
controller commands documented by INDI's ``celestrondriver``; SkyWatcher
"SynScan Hand Control Serial Communication Protocol" v3.37+ and INDI's
``synscandriver``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from . import mountproto as mp
from .base import (SIDEREAL_ARCSEC_PER_S, DeviceError, DeviceGarbage, Direction, MountState)
from .serialmount import TRACK_RATES, SerialLink, SerialMount

DEST_RA, DEST_DEC = 16, 17                       # motor controllers: RA/Azm, Dec/Alt
MC_SET_POS_RATE, MC_SET_NEG_RATE = 6, 7          # variable-rate move (rate in 1/4 "/s); tracking rate
MC_GUIDE, MC_GUIDE_ACTIVE = 0x26, 0x27
MC_SET_GUIDE_RATE, MC_GET_GUIDE_RATE = 0x46, 0x47
TRACK_RATE_CODES = {"sidereal": 0xFFFF, "solar": 0xFFFE, "lunar": 0xFFFD}
TRACK_OFF, TRACK_ALTAZ, TRACK_EQ_NORTH, TRACK_EQ_SOUTH = 0, 1, 2, 3
MAX_GUIDE_CS = 255                               # one 0x26 pulse: at most 2.55 s

CELESTRON_MODELS = {1: "GPS Series", 3: "i-Series", 4: "i-Series SE", 5: "CGE", 6: "Advanced GT",
                    7: "SLT", 9: "CPC", 10: "GT", 11: "4/5 SE", 12: "6/8 SE", 13: "CGE Pro",
                    14: "CGEM DX", 15: "LCM", 16: "Sky Prodigy", 17: "CPC Deluxe", 18: "GT 16",
                    19: "StarSeeker", 20: "Advanced VX", 21: "Cosmos", 22: "Evolution",
                    23: "CGX", 24: "CGXL", 25: "Astrofi", 26: "SkyWatcher"}
SYNSCAN_MODELS = {0: "EQ6 GOTO", 1: "HEQ5 GOTO", 2: "EQ5 GOTO", 3: "EQ3 GOTO", 4: "EQ8 GOTO",
                  5: "AZ-EQ6 GOTO", 6: "AZ-EQ5 GOTO", 160: "AllView GOTO", 165: "AZ-GTi GOTO"}


def _hash(link: SerialLink) -> None:
    c = link.read_n(1)
    if c != b"#":
        raise DeviceGarbage(f"{link.what} sent {c!r} where '#' was expected")


def _byte(link: SerialLink) -> int:
    data = link.read_n(2)
    if data[1:] != b"#":
        raise DeviceGarbage(f"{link.what} sent {data!r} where a byte and '#' were expected")
    return data[0]


def _flag(link: SerialLink) -> bool:
    data = link.read_n(2)
    if data not in (b"0#", b"1#"):
        raise DeviceGarbage(f"{link.what} sent {data!r} where 0# or 1# was expected")
    return data == b"1#"


def _pair(link: SerialLink) -> tuple[float, float]:
    data = link.read_until(b"#", 24, alphabet=b"0123456789ABCDEFabcdef,").decode("latin-1")
    if len(data) != 18:
        raise DeviceGarbage(f"{link.what} sent {data!r} where a precise coordinate pair was expected")
    return mp.parse_pair(data)


def passthrough(dest: int, cmd: int, data: bytes = b"", answer_bytes: int = 0) -> bytes:
    """The 8-byte ``P`` command: length, destination, command, up to 3 data bytes, answer length."""
    if len(data) > 3:
        raise ValueError("pass-through carries at most 3 data bytes")
    return b"P" + bytes([len(data) + 1, dest, cmd]) + data.ljust(3, b"\0") + bytes([answer_bytes])


class NexStarMount(SerialMount):
    """A Celestron mount through its NexStar hand controller's serial port."""

    protocol = "nexstar"
    MODELS = CELESTRON_MODELS
    MAKER = "Celestron"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._nonce = itertools.cycle(b"abcdefghijklmnopqrstuvwxyz")
        self.version = ""

    # ----- blocking protocol calls --------------------------------------------------
    def _probe(self, link: SerialLink) -> bool:
        c = bytes([next(self._nonce)])
        link.write(b"K" + c)
        return link.read_n(2) == c + b"#"

    def _x(self, cmd: bytes, answer=None, retries: int | None = None):
        return self.link.exchange(cmd, answer, retries)

    def _read_version(self) -> str:
        data = self._x(b"V", lambda link: link.read_n(3))
        if data[2:] != b"#":
            raise DeviceGarbage(f"version {data!r}")
        return f"{data[0]}.{data[1]}"

    def _sync_identify(self) -> dict[str, Any]:
        if not self._probe_once():
            raise DeviceGarbage("no echo")
        self.version = self._read_version()
        code = self._x(b"m", _byte)
        aligned = self._x(b"J", _flag)
        self.model = f"{self.MAKER} {self.MODELS.get(code, f'model {code}')}"
        mode = self._x(b"t", _byte)
        self._tracking = mode != TRACK_OFF
        return {"version": self.version, "model_code": code, "aligned": aligned,
                "tracking_mode": mode}

    def _probe_once(self) -> bool:
        c = bytes([next(self._nonce)])
        return self._x(b"K" + c, lambda link: link.read_n(2)) == c + b"#"

    def _sync_state(self) -> MountState:
        ra, dec = self._x(b"e", _pair)
        slewing = self._x(b"L", lambda link: link.read_n(2))
        if slewing not in (b"0#", b"1#"):
            raise DeviceGarbage(f"goto status {slewing!r}")
        self._tracking = self._x(b"t", _byte) != TRACK_OFF
        return MountState(ra, dec, self._tracking, "unknown", slewing == b"1#")  # type: ignore[arg-type]

    def _sync_altaz(self) -> tuple[float, float]:
        az, alt = self._x(b"z", _pair)
        return alt, az

    def _eq_mode(self) -> int:
        return TRACK_EQ_SOUTH if self.site[0] < 0 else TRACK_EQ_NORTH

    # ----- the Mount interface ------------------------------------------------------
    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Precise goto (``r``); returns when ``L`` says it finished. Cancelled: aborted."""
        self._check_target(ra_deg, dec_deg)
        await self._run(self._x, b"r" + mp.format_pair(ra_deg, dec_deg).encode(), _hash)
        await self._wait_slew()

    async def _wait_slew(self, limit_s: float = 600.0) -> None:
        t0 = self.clock.monotonic()
        try:
            while await self._run(self._x, b"L", _flag):
                if self.clock.monotonic() - t0 > limit_s:
                    await self.abort()
                    raise DeviceError(f"slew did not finish within {limit_s:g} s; aborted")
                await self.clock.sleep(0.25)
        except asyncio.CancelledError:
            await asyncio.shield(self.abort())
            raise

    async def sync(self, ra_deg: float, dec_deg: float) -> None:
        self._check_target(ra_deg, dec_deg)
        await self._run(self._x, b"s" + mp.format_pair(ra_deg, dec_deg).encode(), _hash)

    async def abort(self) -> None:
        await self._run(self._x, b"M", _hash)

    async def set_tracking(self, on: bool) -> None:
        mode = self._eq_mode() if on else TRACK_OFF
        await self._run(self._x, b"T" + bytes([mode]), _hash)
        self._tracking = on

    async def set_tracking_rate(self, rate: str) -> None:
        """Sidereal, solar or lunar, set on the RA motor controller (pass-through 6)."""
        if rate not in TRACK_RATES:
            raise DeviceError(f"tracking rate {rate!r}: one of {', '.join(TRACK_RATES)}")
        code = TRACK_RATE_CODES[rate]
        cmd = MC_SET_NEG_RATE if self.site[0] < 0 else MC_SET_POS_RATE
        await self._run(self._x, passthrough(DEST_RA, cmd, code.to_bytes(2, "big")), _hash)
        self.tracking_rate = rate

    async def set_guide_rate(self, fraction: float) -> None:
        """Autoguide rate of both motor controllers (pass-through 0x46, 256ths of sidereal)."""
        await super().set_guide_rate(fraction)
        code = min(255, round(fraction * 256))
        for dest in (DEST_RA, DEST_DEC):
            await self._run(self._x, passthrough(dest, MC_SET_GUIDE_RATE, bytes([code])), _hash)

    async def pulse(self, direction: Direction, ms: int) -> None:
        """Timed guide pulses on the motor controller (0x26: signed % of sidereal, centiseconds),
        2.55 s at most each; waits for each to finish (0x27)."""
        self._check_direction(direction, ms)
        dest = DEST_RA if direction in ("E", "W") else DEST_DEC
        pct = max(1, min(100, round(self.guide_rate * 100)))
        rate = pct if direction in ("N", "E") else 256 - pct
        left = round(ms / 10)
        while left > 0:
            cs = min(left, MAX_GUIDE_CS)
            # Sent once: a pulse whose answer is lost has run, and must not run twice.
            await self._run(self.link.exchange, passthrough(dest, MC_GUIDE, bytes([rate, cs])), _hash, 0, True)
            await self.clock.sleep(cs / 100.0)
            for _ in range(20):
                if not await self._run(self._x, passthrough(dest, MC_GUIDE_ACTIVE, b"", 1), _byte):
                    break
                await self.clock.sleep(0.02)
            left -= cs

    async def park(self) -> None:
        """Goto the pole (azimuth 0/180, altitude = |latitude|) by Az/Alt, then tracking off."""
        lat = self.site[0]
        az = 0.0 if lat >= 0 else 180.0
        await self._run(self._x, b"b" + mp.format_pair(az, abs(lat)).encode(), _hash)
        await self._wait_slew()
        await self.set_tracking(False)


class SynScanMount(NexStarMount):
    """A SkyWatcher mount through its SynScan hand controller (firmware 3.37 or later)."""

    protocol = "synscan"
    MODELS = SYNSCAN_MODELS
    MAKER = "SkyWatcher"

    def _read_version(self) -> str:
        text = self._x(b"V", lambda link: link.read_until(b"#", 12)).decode("latin-1")[:-1]
        if len(text) != 6 or not all(c in "0123456789ABCDEFabcdef" for c in text):
            raise DeviceGarbage(f"version {text!r}")
        a, b, c = (int(text[i:i + 2], 16) for i in (0, 2, 4))
        return f"{a}.{b:02d}.{c:02d}"

    async def set_tracking_rate(self, rate: str) -> None:
        """The SynScan protocol tracks at the sidereal rate only."""
        if rate != "sidereal":
            raise DeviceError(f"a SynScan hand controller tracks at the sidereal rate only, not {rate}")
        self.tracking_rate = rate

    async def set_guide_rate(self, fraction: float) -> None:
        """Kept by the driver: SynScan pulses are moves at this speed."""
        await SerialMount.set_guide_rate(self, fraction)

    async def pulse(self, direction: Direction, ms: int) -> None:
        """A variable-rate move at the guide speed (pass-through 6/7), timed here, then stopped."""
        self._check_direction(direction, ms)
        if ms == 0:
            return
        dest = DEST_RA if direction in ("E", "W") else DEST_DEC
        cmd = MC_SET_POS_RATE if direction in ("N", "E") else MC_SET_NEG_RATE
        quarter = round(self.guide_rate * SIDEREAL_ARCSEC_PER_S * 4)
        await self._run(self._x, passthrough(dest, cmd, quarter.to_bytes(2, "big")), _hash)
        try:
            await self.clock.sleep(ms / 1000.0)
        finally:
            await asyncio.shield(self._run(self._x, passthrough(dest, cmd, b"\0\0"), _hash))
