"""Build the configured devices: the simulator or a vendor driver per device."""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import Clock
from ..config import Config
from .base import Device
from .sim import DEVICE_NAMES, SimGuideCamera, SimRig


@dataclass
class Rig:
    devices: dict[str, Device]
    sim: SimRig | None


def build_rig(cfg: Config, clock: Clock) -> Rig:
    sim = SimRig(cfg, clock) if cfg.uses_simulator else None
    devs: dict[str, Device] = {}
    if cfg.guide_camera.driver == "sim":
        devs["guide_camera"] = sim.guide_camera  # type: ignore[union-attr]
    else:
        from .zwo import ZwoGuideCamera
        devs["guide_camera"] = ZwoGuideCamera(cfg.guide_camera)
    devs["main_camera"] = sim.main_camera  # type: ignore[union-attr]
    devs["mount"] = sim.mount  # type: ignore[union-attr]
    gc = devs["guide_camera"]
    if cfg.guide_port.via == "camera" and not isinstance(gc, SimGuideCamera):
        devs["guide_port"] = gc.st4_port()  # type: ignore[attr-defined]
    else:
        devs["guide_port"] = sim.guide_port  # type: ignore[union-attr]
    if cfg.focuser.driver == "sim":  # "none": a manual focuser, nothing to drive
        devs["focuser"] = sim.focuser  # type: ignore[union-attr]
    assert set(devs) <= set(DEVICE_NAMES)
    return Rig(devs, sim)
