"""Frame sets on disk for the stacking tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from fieldtui.frame import Frame
from fieldtui.imaging.io import write_fits
from fieldtui.stacking import synth


def write_set(folder: Path, cam: synth.Camera, fld: synth.Field, mats, *, exposure=60.0, n_cal=6, seed=5,
              trails=(), cosmic_rays=0, kinds=("dark", "flat", "bias")) -> dict:
    """Lights (one per matrix) and calibration frames as FITS in ``folder/<kind>/``."""
    rng = np.random.default_rng(seed)
    bayer = cam.bayer or None

    def save(kind, i, a, exp):
        write_fits(folder / kind / f"{kind}_{i:03d}.fits", Frame(data=a, exposure=exp, kind=kind, bayer=bayer))

    for i, m in enumerate(mats):
        save("light", i, synth.light(cam, fld, exposure, m, rng, trail=trails[i] if i < len(trails) else None,
                                     cosmic_rays=cosmic_rays), exposure)
    for i in range(n_cal):
        if "dark" in kinds:
            save("dark", i, synth.dark(cam, exposure, rng), exposure)
        if "bias" in kinds:
            save("bias", i, synth.dark(cam, 1 / 4000, rng), 0.00025)
        if "flat" in kinds:
            save("flat", i, synth.flat(cam, rng), 1.0)
    return {k: [folder / k] for k in ("light", *kinds)}


def random_mats(cam, n, seed=1, shift=12.0, rot=1.5):
    rng = np.random.default_rng(seed)
    c = (cam.width / 2, cam.height / 2)
    return [synth.transform((0, 0))] + [
        synth.transform(tuple(rng.uniform(-shift, shift, 2)), float(rng.uniform(-rot, rot)), c) for _ in range(n - 1)]


def dslr_set(folder: Path, *, lights=8, cal=5, seed=7) -> None:
    """Raw DNG files from the simulated DSLR (small sensor) in Light/Dark/Flat/Bias folders."""
    from fieldtui.clock import VirtualClock
    from fieldtui.config import load_config
    from fieldtui.devices.sim import SimRig

    cfg = load_config(user=False, overrides={
        "main_camera": {"width": 640, "height": 480},
        "telescope": {"focal_length_mm": 600},
        "sim": {"seed": seed, "gusts_per_hour": 0.0}})

    async def run():
        clock = VirtualClock()
        rig = SimRig(cfg, clock)
        try:
            cam = rig.main_camera
            await cam.connect()
            for i in range(lights):
                await cam.expose(30.0, 800, path=folder / "Light" / f"L_{i:03d}.dng", kind="light")
            for i in range(cal):
                await cam.expose(30.0, 800, path=folder / "Dark" / f"D_{i:03d}.dng", kind="dark")
                await cam.expose(1.0, 800, path=folder / "Flat" / f"F_{i:03d}.dng", kind="flat")
                await cam.expose(0.0, 800, path=folder / "Bias" / f"B_{i:03d}.dng", kind="bias")
        finally:
            clock.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def dslr_night(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dslr_night")
    dslr_set(folder)
    return folder
