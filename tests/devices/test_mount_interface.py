"""The Mount interface's park, tracking rate, guide rate and Alt/Az: a driver that lacks them
says so (DeviceUnsupported), and the simulated mount against hand-computed values."""

from __future__ import annotations

import asyncio

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.devices.base import DeviceError, DeviceInfo, DeviceUnsupported, Mount, MountState
from fieldtui.devices.sim import SimRig

T0 = 1_800_000_000.0
QUIET = {"seeing_jitter": 0.0, "gusts_per_hour": 0.0, "pe_amplitude_arcsec": 0.0,
         "polar_error_arcmin": 0.0, "ra_drift_arcsec_min": 0.0, "backlash_arcsec": 0.0}


class BareMount(Mount):
    driver = "bare"

    async def connect(self) -> DeviceInfo:
        return DeviceInfo(self.kind, self.driver, "bare")

    async def state(self) -> MountState:
        return MountState(0.0, 0.0, True)

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        return None


@pytest.mark.parametrize("call, says", [
    (lambda m: m.park(), "bare mount cannot park"),
    (lambda m: m.set_tracking_rate("lunar"), "bare mount cannot change its tracking rate"),
    (lambda m: m.set_guide_rate(0.5), "bare mount cannot change its guide rate"),
    (lambda m: m.altaz(), "bare mount does not report altitude and azimuth"),
])
def test_a_driver_without_it_says_so(call, says):
    with pytest.raises(DeviceUnsupported, match=says) as err:
        asyncio.run(call(BareMount()))
    assert isinstance(err.value, DeviceError)  # the service maps it like any device error


def rig(tmp_path, latitude=45.0):
    cfg = load_config(overrides={"storage": {"data_root": str(tmp_path)}, "sim": QUIET,
                                 "site": {"latitude": latitude}, "mount": {"slew_rate_deg_s": 2.0}})
    return SimRig(cfg, VirtualClock(T0))


@pytest.mark.parametrize("latitude", [45.0, -33.0])
def test_sim_park_slews_to_the_pole_taking_slew_time_and_stops_tracking(tmp_path, latitude):
    r = rig(tmp_path, latitude)
    m = r.mount

    async def go():
        await m.connect()
        await m.sync(r.lst_deg(), 40.0 if latitude > 0 else -40.0)   # on the meridian
        t0 = r.clock.now()
        await m.park()
        return r.clock.now() - t0, await m.state(), await m.altaz()

    took, st, (alt, az) = asyncio.run(go())
    assert took == pytest.approx(50.0 / 2.0, rel=0.01)   # 50° along the meridian at 2°/s
    # A goto lands within the simulator's pointing error (about 1' rms), as a real one does.
    assert st.dec_deg == pytest.approx(90.0 if latitude > 0 else -90.0, abs=0.1) and not st.tracking
    assert alt == pytest.approx(abs(latitude), abs=0.1)   # the pole stands at the latitude
    assert abs((az - (0.0 if latitude > 0 else 180.0) + 180.0) % 360.0 - 180.0) < 0.2


def test_sim_altaz_on_the_meridian(tmp_path):
    r = rig(tmp_path, 45.0)
    m = r.mount

    async def go():
        await m.connect()
        await m.sync(r.lst_deg(), 20.0)           # south of the zenith
        south = await m.altaz()
        await m.sync(r.lst_deg() + 180.0, 80.0)   # below the pole, to the north
        return south, await m.altaz()

    (alt_s, az_s), (alt_n, az_n) = asyncio.run(go())
    assert (alt_s, az_s) == (pytest.approx(90.0 - 45.0 + 20.0, abs=1e-6), pytest.approx(180.0, abs=1e-6))
    assert (alt_n, az_n % 360.0) == (pytest.approx(45.0 - 10.0, abs=1e-6), pytest.approx(0.0, abs=1e-6))


def test_sim_guide_rate_sets_how_far_a_pulse_moves(tmp_path):
    r = rig(tmp_path)

    async def go():
        await r.connect_all()
        await r.mount.set_guide_rate(0.9)
        await r.guide_port.pulse("N", 2000)
        _, ey = r.sky.mount_error(r.clock.now())
        return float(ey)

    assert asyncio.run(go()) == pytest.approx(0.9 * 15.041 * 2.0, rel=1e-6)
    for bad in (0.0, 1.5):
        with pytest.raises(DeviceError, match="outside 0.05–1"):
            asyncio.run(r.mount.set_guide_rate(bad))
    assert r.sky.guide_rate == 0.9


def test_sim_tracking_rate_is_sidereal_only(tmp_path):
    m = rig(tmp_path).mount
    asyncio.run(m.connect())
    asyncio.run(m.set_tracking_rate("sidereal"))
    with pytest.raises(DeviceUnsupported, match="sidereal rate only"):
        asyncio.run(m.set_tracking_rate("lunar"))
    with pytest.raises(DeviceError, match="one of sidereal, lunar, solar"):
        asyncio.run(m.set_tracking_rate("king"))
