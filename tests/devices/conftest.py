"""A simulated mount behind an emulated hand controller on a real pseudo-terminal,
driven by the real serial driver through pyserial."""

from __future__ import annotations

import pytest

from fieldtui.clock import RealClock
from fieldtui.config import load_config
from fieldtui.devices.emulator import MountEmulator, driver_class
from fieldtui.devices.sim import SimRig

# No periodic error, drift, gusts or backlash: the pointing moves only when told to.
QUIET_SKY = {"pe_amplitude_arcsec": 0.0, "polar_error_arcmin": 0.0, "ra_drift_arcsec_min": 0.0,
             "gusts_per_hour": 0.0, "backlash_arcsec": 0.0}
TIMEOUT_S = 0.3


class Bench:
    def __init__(self, protocol: str, rig: SimRig, emu: MountEmulator, driver) -> None:
        self.protocol, self.rig, self.emu, self.driver = protocol, rig, emu, driver


@pytest.fixture(params=["lx200", "nexstar", "synscan"])
async def bench(request, data_root):
    protocol = request.param
    cfg = load_config(overrides={"storage": {"data_root": str(data_root)}, "sim": QUIET_SKY,
                                 "mount": {"slew_rate_deg_s": 3.0}})
    clock = RealClock()
    rig = SimRig(cfg, clock)
    emu = MountEmulator(protocol, rig.mount)
    path = await emu.start()
    drv = driver_class(protocol)(path, timeout_s=TIMEOUT_S, clock=clock, guide_rate=cfg.mount.guide_rate,
                                 site=(cfg.site.latitude, cfg.site.longitude))
    await drv.connect()
    yield Bench(protocol, rig, emu, drv)
    await drv.disconnect()
    await emu.close()
