"""``[mount] emulate``: the simulated rig's mount through an emulated hand controller
and the real serial driver, inside the rig service on the virtual clock."""

from __future__ import annotations

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import ConfigError, load_config
from fieldtui.devices.base import SIDEREAL_ARCSEC_PER_S, DeviceError
from fieldtui.devices.serialmount import MountGuidePort, SerialMount
from fieldtui.service.session import Session

from .conftest import QUIET_SKY

T0 = 1_800_000_000.0


@pytest.mark.parametrize("protocol", ["lx200", "nexstar", "synscan"])
async def test_the_night_drives_the_simulated_mount_over_the_serial_path(data_root, protocol):
    cfg = load_config(overrides={"storage": {"data_root": str(data_root)}, "sim": QUIET_SKY,
                                 "mount": {"emulate": protocol}, "guide_port": {"via": "mount"}})
    clock = VirtualClock(T0)
    session = Session(cfg, clock)
    mount, port = session.rig.devices["mount"], session.rig.devices["guide_port"]
    assert isinstance(mount, SerialMount) and isinstance(port, MountGuidePort)
    await session.start()
    try:
        st = session.slots["mount"].status
        assert st.state == "connected", st.error
        assert st.details["emulated"] and st.details["protocol"] == protocol
        assert session.slots["guide_port"].status.state == "connected"
        sim = session.rig.sim
        truth = await sim.mount.state()
        read = await mount.state()
        assert abs(read.dec_deg - truth.dec_deg) * 3600 <= 0.5 + 1e-6
        # A guide pulse through the serial line moves the simulated pointing, timed on the
        # virtual clock (a 1 s pulse costs one virtual second).
        t = clock.now()
        await port.pulse("S", 1000)
        assert clock.now() - t == pytest.approx(1.0, abs=0.3)
        await clock.sleep(0.1)
        moved = ((await sim.mount.state()).dec_deg - truth.dec_deg) * 3600
        assert moved == pytest.approx(-cfg.mount.guide_rate * SIDEREAL_ARCSEC_PER_S, rel=0.05)
        # The simulated rig's faults reach the driver as a device error, not a hang.
        sim.faults.disconnected.add("mount")
        with pytest.raises(DeviceError):
            await clock.wait_for(mount.state(), 60)
        sim.faults.clear()
        assert (await mount.state()).tracking
    finally:
        await session.stop()


def test_serial_mount_config_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"mount\.port: expected the serial port of the lx200 mount"):
        load_config(overrides={"mount": {"driver": "lx200"}})
    with pytest.raises(ConfigError, match=r"mount\.baud: expected one of 1200"):
        load_config(overrides={"mount": {"driver": "nexstar", "port": "/dev/ttyUSB0", "baud": 9601}})
    with pytest.raises(ConfigError, match=r"mount\.emulate"):
        load_config(overrides={"mount": {"driver": "synscan", "port": "/dev/ttyUSB0", "emulate": "lx200"}})
    with pytest.raises(ConfigError, match=r"mount\.driver: expected one of 'sim', 'lx200'"):
        load_config(overrides={"mount": {"driver": "meade"}})
    cfg = load_config(overrides={"mount": {"driver": "synscan", "port": "/dev/ttyUSB0", "baud": 115200}})
    assert (cfg.mount.driver, cfg.mount.port, cfg.mount.baud) == ("synscan", "/dev/ttyUSB0", 115200)


async def test_a_missing_serial_port_is_a_clear_message(data_root):
    cfg = load_config(overrides={"storage": {"data_root": str(data_root)},
                                 "mount": {"driver": "lx200", "port": "/dev/ttyNOSUCH9"}})
    session = Session(cfg, VirtualClock(T0))
    await session.start()
    try:
        st = session.slots["mount"].status
        assert st.state == "failed"
        assert "/dev/ttyNOSUCH9 cannot be opened" in st.error and "fieldtui check" in st.error
    finally:
        await session.stop()


async def test_headless_guiding_through_the_emulated_serial_mount(data_root):
    from fieldtui.commands.guide import run_guide
    cfg = load_config(overrides={"storage": {"data_root": str(data_root)},
                                 "mount": {"emulate": "nexstar"}, "guide_port": {"via": "mount"}})
    out = await run_guide(cfg, minutes=2.0, fast=True)
    # Calibration measured the guide rate through the serial pulses: 0.5 x 15.04"/s on the
    # sky in Dec, divided by the pixel scale.
    expected_dec = 0.5 * SIDEREAL_ARCSEC_PER_S / cfg.guide_scale
    assert out["calibration"]["dec_rate_px_s"] == pytest.approx(expected_dec, rel=0.1)
    assert out["ra_pulses"] > 20 and out["true_rms_total_arcsec"] < 1.0
