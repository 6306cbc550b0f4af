"""Meade LX200 serial protocol (also OnStep, Gemini, and most LX200-compatible mounts).

Commands are ``:XX...#``; answers end with ``#`` except the one-character
ones (``1``/``0`` for set commands, ``0`` for an accepted goto, the
alignment letter for ACK 0x06). The driver switches the mount to the long
(high-precision) format on connect and still reads the short one (a mount
power-cycled mid-night comes back in it). Source: Meade "Telescope Serial
Command Protocol" (rev. 2010.10); INDI ``lx200driver.cpp`` read for how
clones answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import mountproto as mp
from .base import (SIDEREAL_ARCSEC_PER_S, DeviceError, DeviceGarbage, DeviceTimeout, Direction,
                   MountState)
from .serialmount import TRACK_RATES, SerialLink, SerialMount

ALIGNMENT_LETTERS = b"APGLD"      # answers to ACK: Alt-az, Polar, German polar, Land, (D)ownload
MAX_PULSE_MS = 9999               # :MgDdddd# takes four digits


# Bytes an LX200 answer can hold: printable ASCII, the degree sign 0xDF, the slew bar 0x7F.
TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\x7f\xdf"
SEXA_BYTES = b"0123456789:.+-*'\xdf"


def _text(link: SerialLink) -> str:
    return link.read_until(b"#", alphabet=TEXT_BYTES).decode("latin-1")[:-1]


def _sexa(link: SerialLink) -> str:
    return link.read_until(b"#", 16, alphabet=SEXA_BYTES).decode("latin-1")[:-1]


def _one_of(chars: bytes):
    def read(link: SerialLink) -> bytes:
        c = link.read_n(1)
        if c not in [bytes([x]) for x in chars]:
            raise DeviceGarbage(f"{link.what} sent {c!r} where one of {chars!r} was expected")
        return c
    return read


def _ra(link: SerialLink) -> float:
    return mp.parse_ra(_sexa(link))


def _dec(link: SerialLink) -> float:
    return mp.parse_dec(_sexa(link))


def _slewing(link: SerialLink) -> bool:
    # :D# answers a bar string (0x7F or '|') while slewing, '#' alone when done.
    body = _text(link)
    if body.strip(" |\x7f\xff") != "":
        raise DeviceGarbage(f"distance bars {body!r}")
    return bool(body.strip())


def _goto_answer(link: SerialLink) -> str:
    c = link.read_n(1)
    if c == b"0":
        return ""
    if c in (b"1", b"2"):
        return _text(link).strip() or "refused"
    raise DeviceGarbage(f"goto answer {c!r}")


def _status(link: SerialLink) -> str:
    body = _text(link)
    if len(body) < 2 or body[0] not in "APGL" or body[1] not in "TN":
        raise DeviceGarbage(f"status {body!r}")
    return body


class Lx200Mount(SerialMount):
    """A Meade LX200 (or compatible) mount on a serial port."""

    protocol = "lx200"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.long_format = True
        self.has_status = False     # answers :GW# (LX200 GPS, Autostar II, OnStep)

    # ----- blocking protocol calls --------------------------------------------------
    def _probe(self, link: SerialLink) -> bool:
        link.write(b"\x06")
        return link.read_n(1) in [bytes([c]) for c in ALIGNMENT_LETTERS]

    def _x(self, cmd: str, answer=None, retries: int | None = None):
        return self.link.exchange(cmd.encode("latin-1"), answer, retries)

    def _sync_identify(self) -> dict[str, Any]:
        mode = self._x("\x06", _one_of(ALIGNMENT_LETTERS)).decode()
        try:
            product = self._x(":GVP#", _text, retries=1).strip()
            firmware = self._x(":GVN#", _text, retries=1).strip()
        except (DeviceTimeout, DeviceGarbage):
            product, firmware = "LX200-compatible", ""
        self.model = product or "LX200-compatible"
        self._ensure_long()
        try:
            self._tracking = self._x(":GW#", _status, retries=1)[1] == "T"
            self.has_status = True
        except (DeviceTimeout, DeviceGarbage):
            self.has_status = False
        return {"alignment": {"A": "alt-az", "P": "polar", "G": "german polar", "L": "land"}.get(mode, mode),
                "firmware": firmware, "format": "long" if self.long_format else "short"}

    def _ensure_long(self) -> None:
        """Switch to the high-precision format (``:U#`` toggles it)."""
        for _ in range(2):
            text = self._x(":GR#", _text)
            mp.parse_ra(text)
            if text.count(":") == 2:
                self.long_format = True
                return
            self._x(":U#")
        self.long_format = False   # a mount that only has the short format

    def _sync_position(self) -> tuple[float, float]:
        return self._x(":GR#", _ra), self._x(":GD#", _dec)

    def _sync_state(self) -> MountState:
        ra, dec = self._sync_position()
        slewing = self._x(":D#", _slewing)
        if self.has_status:
            self._tracking = self._x(":GW#", _status)[1] == "T"
        return MountState(ra, dec, self._tracking, "unknown", slewing)  # type: ignore[arg-type]

    def _sync_altaz(self) -> tuple[float, float]:
        return self._x(":GA#", _dec), self._x(":GZ#", _dec)

    def _sync_target(self, ra_deg: float, dec_deg: float) -> None:
        ra = mp.format_ra(ra_deg, self.long_format)
        dec = mp.format_dec(dec_deg, self.long_format, sec_sep=":")
        ok_ra = self._x(f":Sr{ra}#", _one_of(b"01"))
        ok_dec = self._x(f":Sd{dec}#", _one_of(b"01"))
        if ok_ra != b"1" or ok_dec != b"1":
            raise DeviceError(f"mount refused the coordinates RA {ra} Dec {dec}")

    def _sync_goto(self, ra_deg: float, dec_deg: float) -> None:
        self._sync_target(ra_deg, dec_deg)
        err = self._x(":MS#", _goto_answer)
        if err:
            raise DeviceError(f"mount refused the goto: {err}")

    def _sync_sync(self, ra_deg: float, dec_deg: float) -> None:
        self._sync_target(ra_deg, dec_deg)
        self._x(":CM#", _text)

    # ----- the Mount interface ------------------------------------------------------
    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Goto; returns when the mount reports the slew finished. Cancelled: the slew is aborted."""
        self._check_target(ra_deg, dec_deg)
        await self._run(self._sync_goto, ra_deg, dec_deg)
        await self._wait_slew()

    async def _wait_slew(self, limit_s: float = 600.0) -> None:
        t0 = self.clock.monotonic()
        try:
            while await self._run(self._x, ":D#", _slewing):
                if self.clock.monotonic() - t0 > limit_s:
                    await self.abort()
                    raise DeviceError(f"slew did not finish within {limit_s:g} s; aborted")
                await self.clock.sleep(0.25)
        except asyncio.CancelledError:
            await asyncio.shield(self.abort())
            raise

    async def sync(self, ra_deg: float, dec_deg: float) -> None:
        self._check_target(ra_deg, dec_deg)
        await self._run(self._sync_sync, ra_deg, dec_deg)

    async def abort(self) -> None:
        await self._run(self._x, ":Q#")

    async def set_tracking(self, on: bool) -> None:
        await self._run(self._x, ":AP#" if on else ":AL#")
        self._tracking = on

    async def set_tracking_rate(self, rate: str) -> None:
        """``sidereal``, ``lunar`` or ``solar`` (``:TQ#``, ``:TL#``, ``:TS#``)."""
        if rate not in TRACK_RATES:
            raise DeviceError(f"tracking rate {rate!r}: one of {', '.join(TRACK_RATES)}")
        await self._run(self._x, {"sidereal": ":TQ#", "lunar": ":TL#", "solar": ":TS#"}[rate])
        self.tracking_rate = rate

    async def set_guide_rate(self, fraction: float) -> None:
        """``:RgSS.S#``: guide speed in arcsec/s (LX200 GPS, Autostar II, OnStep)."""
        await super().set_guide_rate(fraction)
        await self._run(self._x, f":Rg{fraction * SIDEREAL_ARCSEC_PER_S:04.1f}#")

    async def pulse(self, direction: Direction, ms: int) -> None:
        """``:MgDdddd#`` (pulses over 9999 ms go as several); returns when it has finished."""
        self._check_direction(direction, ms)
        left = int(ms)
        while left > 0:
            part = min(left, MAX_PULSE_MS)
            await self._run(self._x, f":Mg{direction.lower()}{part:04d}#")
            await self.clock.sleep(part / 1000.0)
            left -= part

    async def park(self) -> None:
        """``:hP#``: the mount slews to its park position and stops tracking."""
        await self._run(self._x, ":hP#")
        await self._wait_slew()
        self._tracking = False
