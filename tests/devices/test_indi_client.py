"""INDI's own LX200 driver (``indi_lx200generic``, an independent client) drives the
emulator as it drives a Meade: connect, position, goto, sync, timed guiding. Skipped
where INDI is not installed (``apt-get install indi-bin``; CI installs it).

indiserver listens on every interface, so the test runs in a network namespace of its
own (``unshare --net``): nothing it starts is reachable from beyond this process's
loopback."""

from __future__ import annotations

import asyncio
import socket
import subprocess

import pytest

from fieldtui.clock import RealClock
from fieldtui.devices.emulator import MountEmulator
from fieldtui.devices.sim import SimRig

from .conftest import QUIET_SKY
from .netns import INSIDE_ONLY, OUTSIDE_ONLY, require_indi, run_inside

pytestmark = require_indi("indi_lx200generic")


@OUTSIDE_ONLY
def test_indi_runs_in_a_private_network_namespace():
    r = run_inside(f"{__file__}::test_indi_lx200generic_drives_the_emulator", timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout


DEV = "Standard LX200"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def indi(*args: str, port: int) -> str:
    p = await asyncio.create_subprocess_exec(args[0], "-p", str(port), *args[1:], stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.STDOUT)
    out, _ = await p.communicate()
    return out.decode()


async def get(prop: str, port: int) -> float:
    out = await indi("indi_getprop", "-t", "3", "-1", f"{DEV}.{prop}", port=port)
    return float(out.strip())


async def wait_for(cond, seconds: float) -> None:
    for _ in range(int(seconds * 4)):
        if await cond():
            return
        await asyncio.sleep(0.25)
    pytest.fail("INDI did not get there in time")


@INSIDE_ONLY
async def test_indi_lx200generic_drives_the_emulator(cfg):
    for k, v in QUIET_SKY.items():
        setattr(cfg.sim, k, v)
    cfg.mount.slew_rate_deg_s = 5.0
    rig = SimRig(cfg, RealClock())
    emu = MountEmulator("lx200", rig.mount)
    path = await emu.start()
    port = free_port()
    server = subprocess.Popen(["indiserver", "-p", str(port), "indi_lx200generic"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(2.0)
        await indi("indi_setprop", f"{DEV}.DEVICE_PORT.PORT={path}", port=port)
        await indi("indi_setprop", f"{DEV}.CONNECTION.CONNECT=On", port=port)

        async def connected() -> bool:
            return "CONNECT=On" in await indi("indi_getprop", "-t", "2", f"{DEV}.CONNECTION.CONNECT", port=port)
        await wait_for(connected, 20)
        truth = await rig.mount.state()

        async def reads_position() -> bool:
            try:
                return abs(await get("EQUATORIAL_EOD_COORD.DEC", port) - truth.dec_deg) < 1 / 3600
            except ValueError:
                return False
        await wait_for(reads_position, 10)
        # Goto (INDI works in hours), then sync on the target.
        ra_h, dec = (truth.ra_deg / 15.0 + 0.3) % 24, truth.dec_deg + 3.0
        await indi("indi_setprop", f"{DEV}.EQUATORIAL_EOD_COORD.RA;DEC={ra_h};{dec}", port=port)

        async def arrived() -> bool:
            st = await rig.mount.state()
            return not st.slewing and abs(st.dec_deg - dec) < 0.1
        await wait_for(arrived, 30)
        await indi("indi_setprop", f"{DEV}.ON_COORD_SET.SYNC=On", port=port)
        await indi("indi_setprop", f"{DEV}.EQUATORIAL_EOD_COORD.RA;DEC={ra_h};{dec}", port=port)

        async def synced() -> bool:
            return abs((await rig.mount.state()).dec_deg - dec) < 1 / 3600
        await wait_for(synced, 10)
        # A timed guide pulse north (:Mgn# or :Mn# ... :Qn# at the guide rate) moves the pointing,
        # once INDI has seen the slew end (it refuses to guide while slewing).
        async def idle() -> bool:
            out = await indi("indi_getprop", "-t", "2", "-1", f"{DEV}.EQUATORIAL_EOD_COORD._STATE", port=port)
            return out.strip() == "Ok"
        await wait_for(idle, 10)
        before = (await rig.mount.state()).dec_deg
        # INDI guides only at the guide speed (slew rate "1x", :RG#); a goto left it at the maximum.
        await indi("indi_setprop", f"{DEV}.TELESCOPE_SLEW_RATE.1x=On", port=port)
        await asyncio.sleep(1.5)    # INDI applies the rate before it accepts a guide pulse
        await indi("indi_setprop", f"{DEV}.TELESCOPE_TIMED_GUIDE_NS.TIMED_GUIDE_N=2000", port=port)
        await asyncio.sleep(3.0)
        moved = ((await rig.mount.state()).dec_deg - before) * 3600
        assert moved == pytest.approx(0.5 * 15.041 * 2.0, rel=0.25)   # INDI times the pulse itself
    finally:
        server.terminate()
        server.wait(10)
        await emu.close()
