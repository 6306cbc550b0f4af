"""Calibrate the guide worker on the simulated rig, on a virtual clock."""

from __future__ import annotations

from fieldtui.clock import VirtualClock
from fieldtui.devices.sim import SimRig
from fieldtui.guiding.events import CalibrationDone
from fieldtui.guiding.settings import GuideSettings
from fieldtui.service.guide_worker import GuideWorker


async def calibrate_on_sim_rig(cfg, limit_s: float = 1800.0):
    """Run one calibration (no guiding) on a ``SimRig`` built from ``cfg``.

    Returns ``(worker, events)``: the stopped worker (its ``engine`` holds the
    calibration) and every event it sent.  Gives up after ``limit_s`` seconds
    of virtual time.
    """
    clock = VirtualClock(1_800_000_000.0)
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    events: list = []
    w = GuideWorker(rig.guide_camera, rig.guide_port, clock, GuideSettings.from_config(cfg),
                    mount=rig.mount, pixel_scale=cfg.guide_scale, on_event=events.append)
    await w.calibrate(then_guide=False)
    end = clock.now() + limit_s
    while not any(isinstance(e, CalibrationDone) for e in events) and clock.now() < end:
        await clock.sleep(1.0)
    await w.stop()
    clock.close()
    return w, events
