"""Frame latency through INDI: a 1280x1024 16-bit frame of INDI's CCD simulator, from
the exposure request to a Frame in hand, minus the exposure (simulator drawing, FITS
BLOB in base64 over TCP, decoding, FITS reading). indiserver runs in a private network
namespace (tests/devices/netns.py).

    .venv/bin/python -m pytest tests/benchmarks/bench_indi.py -s -n 0
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time

import pytest

from tests.devices.netns import INSIDE_ONLY, OUTSIDE_ONLY, have, run_inside

from .bench_core import record

pytestmark = pytest.mark.skipif(not have("indiserver", "indi_simulator_ccd", "indi_simulator_telescope"),
                                reason="needs INDI (apt-get install indi-bin)")
EXPOSURE_S = 0.1
FRAMES = 20


@OUTSIDE_ONLY
@pytest.mark.timeout(600)
def test_indi_frame_latency():
    r = run_inside(f"{__file__}::test_latency_inside", "-s", timeout=500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("LATENCY "))
    record("indi_frame_latency", json.loads(line[len("LATENCY "):]))


@INSIDE_ONLY
async def test_latency_inside(tmp_path):
    from fieldtui.clock import RealClock
    from fieldtui.devices.factory import build_rig
    from tests.devices.test_indi_backend import GSC_DIR, TARGET, free_port, indi_config

    port = free_port()
    env = {**os.environ, "PATH": f"{GSC_DIR}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(["indiserver", "-p", str(port), "indi_simulator_telescope", "indi_simulator_ccd"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.5)
        rig = build_rig(indi_config(port, tmp_path, focuser={"driver": "none"}), RealClock())
        cam, mount = rig.devices["guide_camera"], rig.devices["mount"]
        await mount.connect()
        await cam.connect()
        await mount.slew_to(*TARGET)
        await cam.expose(EXPOSURE_S)
        lat = []
        for _ in range(FRAMES):
            t = time.monotonic()
            f = await cam.expose(EXPOSURE_S)
            lat.append(time.monotonic() - t - EXPOSURE_S)
            assert f.data.shape == (1024, 1280)
        await mount.server.close()
    finally:
        server.terminate()
        server.wait(10)
    lat.sort()
    print("LATENCY " + json.dumps({"frames": FRAMES, "exposure_s": EXPOSURE_S,
                                   "median_ms": round(statistics.median(lat) * 1000, 1),
                                   "p90_ms": round(lat[int(0.9 * len(lat))] * 1000, 1),
                                   "max_ms": round(lat[-1] * 1000, 1)}))
