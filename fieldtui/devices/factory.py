"""Build the configured devices: the simulator or a vendor driver per device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..config import Config
from .base import Device
from .sim import DEVICE_NAMES, SimGuideCamera, SimRig


@dataclass
class Rig:
    devices: dict[str, Device]
    sim: SimRig | None
    indi: Any = None   # the IndiServer connection when a role uses driver = "indi"


def build_rig(cfg: Config, clock: Clock) -> Rig:
    sim = SimRig(cfg, clock) if cfg.uses_simulator else None
    devs: dict[str, Device] = {}
    indi = _indi_server(cfg)
    if cfg.guide_camera.driver == "sim":
        devs["guide_camera"] = sim.guide_camera  # type: ignore[union-attr]
    elif cfg.guide_camera.driver == "indi":
        from .indi import IndiGuideCamera
        devs["guide_camera"] = IndiGuideCamera(indi, cfg.guide_camera, clock)  # type: ignore[arg-type]
    else:
        from .zwo import ZwoGuideCamera
        devs["guide_camera"] = ZwoGuideCamera(cfg.guide_camera, clock)
    if cfg.main_camera.driver == "sim":
        devs["main_camera"] = sim.main_camera  # type: ignore[union-attr]
    elif cfg.main_camera.driver == "indi":
        from .indi import IndiMainCamera
        devs["main_camera"] = IndiMainCamera(indi, cfg.main_camera, clock)  # type: ignore[arg-type]
    else:
        from .gphoto import GphotoCamera
        devs["main_camera"] = GphotoCamera(cfg.main_camera, clock)
    devs["mount"] = _mount(cfg, clock, sim) if cfg.mount.driver != "indi" else _indi_mount(cfg, clock, indi)
    gc = devs["guide_camera"]
    if _indi_guide_port(cfg, devs, indi, clock):
        pass
    elif cfg.guide_port.via == "camera" and not isinstance(gc, SimGuideCamera):
        devs["guide_port"] = gc.st4_port()  # type: ignore[attr-defined]
    elif cfg.guide_port.via == "mount" and devs["mount"] is not getattr(sim, "mount", None):
        from .serialmount import MountGuidePort
        devs["guide_port"] = MountGuidePort(devs["mount"])  # type: ignore[arg-type]
    else:
        devs["guide_port"] = sim.guide_port  # type: ignore[union-attr]
    if cfg.focuser.driver == "sim":  # "none": a manual focuser, nothing to drive
        devs["focuser"] = sim.focuser  # type: ignore[union-attr]
    elif cfg.focuser.driver == "indi":
        from .indi import IndiFocuser
        devs["focuser"] = IndiFocuser(indi, cfg.focuser, clock)  # type: ignore[arg-type]
    assert set(devs) <= set(DEVICE_NAMES)
    return Rig(devs, sim, indi)


def _indi_server(cfg: Config):
    """The one INDI server connection of the rig, when any device uses ``driver = "indi"``."""
    roles = (cfg.guide_camera, cfg.main_camera, cfg.mount, cfg.focuser)
    if not any(r.driver == "indi" for r in roles):
        return None
    from .indi import IndiServer
    return IndiServer(cfg.indi.host, cfg.indi.port, cfg.indi.timeout_s)


def _indi_mount(cfg: Config, clock: Clock, indi) -> Device:
    from .indi import IndiMount
    return IndiMount(indi, cfg.mount, clock)


def _indi_guide_port(cfg: Config, devs: dict[str, Device], indi, clock: Clock) -> bool:
    """Put an INDI timed-guide port in ``devs`` when the device ``[guide_port] via`` names
    is an INDI one (the guide camera's ST4 port or the mount); False otherwise."""
    from .indi import IndiGuidePort, IndiMount
    mount = devs["mount"]
    if cfg.guide_port.via == "camera" and cfg.guide_camera.driver == "indi":
        devs["guide_port"] = IndiGuidePort(indi, cfg.guide_camera.indi_device, clock, cfg.mount.guide_rate,
                                           mount if isinstance(mount, IndiMount) else None)
        return True
    if cfg.guide_port.via == "mount" and isinstance(mount, IndiMount):
        devs["guide_port"] = IndiGuidePort(indi, cfg.mount.indi_device, clock, cfg.mount.guide_rate, mount)
        return True
    return False


def _mount(cfg: Config, clock: Clock, sim: SimRig | None) -> Device:
    """The simulated mount, a serial driver on ``[mount] port``, or (``[mount] emulate``)
    the serial driver talking to the simulated mount through an emulated hand controller."""
    m = cfg.mount
    if m.driver == "sim" and not m.emulate:
        return sim.mount  # type: ignore[union-attr]
    from .emulator import MountEmulator, driver_class
    protocol = m.emulate or m.driver
    emulator = MountEmulator(protocol, sim.mount) if m.emulate else None  # type: ignore[union-attr]
    return driver_class(protocol)(m.port or "(emulated)", m.baud, timeout_s=m.timeout_s, clock=clock,  # type: ignore[return-value]
                                  guide_rate=m.guide_rate, site=(cfg.site.latitude, cfg.site.longitude),
                                  emulator=emulator)


async def serial_path_devices(cfg: Config, clock: Clock, sim: SimRig) -> tuple[Device, Device]:
    """(mount, guide port) of ``[mount] emulate``, connected: the serial driver on an emulated
    hand controller over ``sim``'s mount, and guide pulses through it (``via = "mount"``) or
    the simulated ST4 port."""
    mount = _mount(cfg, clock, sim)
    await mount.connect()
    if cfg.guide_port.via != "mount":
        return mount, sim.guide_port
    from .serialmount import MountGuidePort
    port = MountGuidePort(mount)  # type: ignore[arg-type]
    await port.connect()
    return mount, port
