"""The LX200 emulator driven the way independent clients drive a Meade: raw bytes over
the pty as a planetarium (SkySafari, Stellarium) and INDI's lx200generic send them."""

from __future__ import annotations

import asyncio

import pytest
import serial

from fieldtui.clock import RealClock
from fieldtui.devices import mountproto as mp
from fieldtui.devices.emulator import MountEmulator
from fieldtui.devices.sim import SimRig


@pytest.fixture
async def emu(cfg):
    cfg.sim.pe_amplitude_arcsec = cfg.sim.ra_drift_arcsec_min = cfg.sim.polar_error_arcmin = 0.0
    cfg.sim.gusts_per_hour = 0.0
    cfg.mount.slew_rate_deg_s = 30.0
    e = MountEmulator("lx200", SimRig(cfg, RealClock()).mount)
    await e.start()
    yield e
    await e.close()


async def talk(port: serial.Serial, data: bytes, answer: int | bytes | None) -> bytes:
    def go() -> bytes:
        port.write(data)
        if answer is None:
            return b""
        if isinstance(answer, int):
            return port.read(answer)
        return port.read_until(answer)
    return await asyncio.to_thread(go)


async def test_a_planetarium_session(emu):
    port = serial.Serial(emu.path, 9600, timeout=2)
    try:
        # Stellarium prefixes commands with '#' to clear the line; the short format first.
        ra = (await talk(port, b"#:GR#", b"#")).decode()
        assert ra.count(":") == 1 and "." in ra                              # HH:MM.T#
        dec = (await talk(port, b":GD#", b"#")).decode("latin-1")
        assert dec[0] in "+-" and dec[3] == "\xdf"                           # sDDßMM#
        # A goto in the short format with the optional space, the way SkySafari sends it.
        target_ra, target_dec = (mp.parse_ra(ra[:-1]) + 15.0) % 360, mp.parse_dec(dec[:-1]) - 5.0
        assert await talk(port, f":Sr {mp.format_ra(target_ra, False)}#".encode(), 1) == b"1"
        assert await talk(port, f":Sd {mp.format_dec(target_dec, False)}#".encode("latin-1"), 1) == b"1"
        assert await talk(port, b":MS#", 1) == b"0"
        assert (await talk(port, b":D#", b"#")) == b"\x7f#"                 # slewing
        for _ in range(100):
            if await talk(port, b":D#", b"#") == b"#":
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("slew never ended")
        # Sync there, then read it back in the long format (INDI switches with :U#).
        await talk(port, b":CM#", b"#")
        await talk(port, b":U#", None)
        got_ra = mp.parse_ra((await talk(port, b":GR#", b"#")).decode()[:-1])
        got_dec = mp.parse_dec((await talk(port, b":GD#", b"#")).decode("latin-1")[:-1])
        assert abs((got_ra - mp.parse_ra(mp.format_ra(target_ra, False)) + 180) % 360 - 180) < 1 / 240
        assert abs(got_dec - mp.parse_dec(mp.format_dec(target_dec, False))) < 1 / 3600
        # Manual moves and stops batched in one write, site queries a client makes on connect.
        await talk(port, b":RS#:Me#:Qe#:RG#", None)
        for cmd in (b":GC#", b":GL#", b":Gt#", b":Gg#", b":GG#", b":GM#", b":GT#", b":GVP#"):
            assert (await talk(port, cmd, b"#")).endswith(b"#")
        assert await talk(port, b"\x06", 1) == b"P"
        assert await talk(port, b":Sr 25:00:00#", 1) == b"0"                 # refused, not a crash
    finally:
        port.close()
