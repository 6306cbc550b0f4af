"""Core figures: `fieldtui check` wall time, and how fast the virtual clock runs
with both simulated cameras exposing.

    .venv/bin/python -m pytest tests/benchmarks/bench_core.py -s -n 0
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.service.session import Session

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def record(name: str, figures: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=1))
    print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_check_wall_time(tmp_path):
    cfgf = tmp_path / "c.toml"
    cfgf.write_text(f'[storage]\ndata_root = "{tmp_path}"\n')
    times = []
    for _ in range(3):
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "fieldtui", "check", "--json", "--config", str(cfgf)],
                           capture_output=True, text=True, env={**os.environ, "FIELDTUI_USER_CONFIG": "/nonexistent"})
        times.append(time.monotonic() - t)
        assert r.returncode == 0, r.stderr
    record("check", {"wall_s_median": round(sorted(times)[1], 2), "wall_s_all": [round(x, 2) for x in times]})


def test_virtual_clock_speed_with_both_cameras(tmp_path):
    cfg = load_config(overrides={"storage": {"data_root": str(tmp_path)}})
    clock = VirtualClock(1_800_000_000.0)

    async def run() -> tuple[float, float, int, int]:
        session = Session(cfg, clock)
        await session.start()
        guide, main = session.device("guide_camera"), session.device("main_camera")
        counts = [0, 0]
        end = clock.now() + 1800.0

        async def guide_loop():
            while clock.now() < end:
                await guide.expose(1.0)
                counts[0] += 1

        async def main_loop():
            i = 0
            while clock.now() < end:
                i += 1
                await main.expose(120.0, path=tmp_path / f"l{i:04d}.dng")
                counts[1] += 1

        t_sim, t_real = clock.now(), time.monotonic()
        await asyncio.gather(guide_loop(), main_loop())
        sim, real = clock.now() - t_sim, time.monotonic() - t_real
        await session.stop()
        return sim, real, counts[0], counts[1]

    sim, real, ng, nm = asyncio.run(run())
    record("virtual_clock", {"simulated_s": round(sim), "real_s": round(real, 2),
                             "sim_s_per_real_s": round(sim / real, 1), "guide_frames": ng, "dslr_frames": nm})
