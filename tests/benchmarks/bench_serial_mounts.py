"""Serial mount figures over a real pseudo-terminal (pyserial, emulator answering from
the simulated mount): command round trip per protocol, and how long the driver takes
to recover from each injected fault at the default 1 s answer timeout.

    .venv/bin/python -m pytest tests/benchmarks/bench_serial_mounts.py -s -n 0
"""

from __future__ import annotations

import statistics
import time

import pytest

from fieldtui.clock import RealClock
from fieldtui.config import load_config
from fieldtui.devices.emulator import MountEmulator, driver_class
from fieldtui.devices.sim import SimRig

from .bench_core import record

POSITION = {"lx200": ":GR#", "nexstar": b"e", "synscan": b"e"}
N = 200


async def _bench(tmp_path, protocol: str, timeout_s: float = 1.0):
    cfg = load_config(overrides={"storage": {"data_root": str(tmp_path)}})
    clock = RealClock()
    rig = SimRig(cfg, clock)
    emu = MountEmulator(protocol, rig.mount)
    drv = driver_class(protocol)(await emu.start(), timeout_s=timeout_s, clock=clock,
                                 site=(cfg.site.latitude, cfg.site.longitude))
    await drv.connect()
    return emu, drv


@pytest.mark.parametrize("protocol", ["lx200", "nexstar", "synscan"])
async def test_round_trip(tmp_path, protocol):
    emu, drv = await _bench(tmp_path, protocol)
    from fieldtui.devices.lx200 import _ra
    from fieldtui.devices.nexstar import _pair
    answer = _ra if protocol == "lx200" else _pair
    one, state = [], []
    for _ in range(N):
        t = time.perf_counter()
        await drv._run(drv._x, POSITION[protocol], answer)
        one.append(time.perf_counter() - t)
    for _ in range(N // 4):
        t = time.perf_counter()
        await drv.state()
        state.append(time.perf_counter() - t)
    record(f"serial_round_trip_{protocol}", {
        "position_command_median_ms": round(statistics.median(one) * 1000, 3),
        "position_command_p95_ms": round(sorted(one)[int(0.95 * N)] * 1000, 3),
        "state_median_ms": round(statistics.median(state) * 1000, 3),
        "commands_per_state": {"lx200": 4, "nexstar": 3, "synscan": 3}[protocol]})
    await drv.disconnect()
    await emu.close()


@pytest.mark.parametrize("protocol", ["lx200", "nexstar", "synscan"])
async def test_fault_recovery(tmp_path, protocol):
    emu, drv = await _bench(tmp_path, protocol)
    from fieldtui.devices.lx200 import _ra
    from fieldtui.devices.nexstar import _pair
    answer = _ra if protocol == "lx200" else _pair
    figures = {}
    for fault, setup in [("garbage", dict(garbage=1)), ("drop", dict(drop=1)),
                         ("slow_0.5s", dict(slow=1, slow_s=0.5)), ("slow_2s", dict(slow=1, slow_s=2.0))]:
        times = []
        for _ in range(5):
            for k, v in setup.items():
                setattr(emu.faults, k, v)
            t = time.perf_counter()
            await drv._run(drv._x, POSITION[protocol], answer)
            times.append(time.perf_counter() - t)
            await drv.state()   # in step again
        figures[f"{fault}_median_s"] = round(statistics.median(times), 3)
    record(f"serial_fault_recovery_{protocol}", figures)
    await drv.disconnect()
    await emu.close()
