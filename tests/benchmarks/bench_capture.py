"""Capture overhead between frames on the simulated rig (full-size DSLR frames).

    .venv/bin/python tests/benchmarks/bench_capture.py [--small] [--dither]

Overhead = end of one exposure to the start of the next, from the journal:
simulated (clock) seconds and wall seconds (download/render, star
measurement, FITS write with fsync, journal fsyncs).
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from fieldtui.commands.capture import run_capture
from fieldtui.config import load_config

PLAN = """
[plan]
name = "bench"
[[target]]
name = "M31"
[[target.sequence]]
type = "light"
count = {n}
exposure = 60
iso = 800
dither_every = {dither}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="640 × 480 frames instead of 5184 × 3456")
    ap.add_argument("--dither", action="store_true", help="guide, and dither after every frame")
    ap.add_argument("-n", type=int, default=6)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    over = {"storage": {"data_root": str(tmp / "data"), "min_free_gb": 0.0}}
    if a.small:
        over["main_camera"] = {"width": 640, "height": 480}
    cfg = load_config(overrides=over)
    plan = tmp / "plan.toml"
    plan.write_text(PLAN.format(n=a.n, dither=1 if a.dither else 0))
    res = asyncio.run(run_capture(cfg, str(plan), fast=True, guide=a.dither))
    recs = [json.loads(x) for x in Path(res["journal"]).read_text().splitlines()]
    fin = [r for r in recs if r["ev"] == "finished"]
    sta = [r for r in recs if r["ev"] == "started"]
    clock = [s["t"] - f["exposed"] for f, s in zip(fin, sta[1:])]
    wall = [s["wall"] - f["exposed_wall"] for f, s in zip(fin, sta[1:])]
    save = [f["wall"] - f["exposed_wall"] for f in fin]
    print(json.dumps({"state": res["state"], "frames": len(fin), "size": "640x480" if a.small else "5184x3456",
                      "dither": a.dither,
                      "overhead_clock_s_median": statistics.median(clock) if clock else None,
                      "overhead_wall_s_median": round(statistics.median(wall), 3) if wall else None,
                      "measure_and_save_wall_s_median": round(statistics.median(save), 3) if save else None},
                     indent=1))


if __name__ == "__main__":
    sys.exit(main())


def test_capture_overhead(tmp_path):
    """Overhead between frames (640 × 480, no dither), recorded to bench-results/."""
    from .bench_core import record
    over = {"storage": {"data_root": str(tmp_path / "data"), "min_free_gb": 0.0},
            "main_camera": {"width": 640, "height": 480}}
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(n=6, dither=0))
    res = asyncio.run(run_capture(load_config(overrides=over), str(plan), fast=True))
    recs = [json.loads(x) for x in Path(res["journal"]).read_text().splitlines()]
    fin = [r for r in recs if r["ev"] == "finished"]
    sta = [r for r in recs if r["ev"] == "started"]
    record("capture_overhead", {
        "overhead_clock_s_median": statistics.median(s["t"] - f["exposed"] for f, s in zip(fin, sta[1:])),
        "overhead_wall_s_median": round(statistics.median(s["wall"] - f["exposed_wall"]
                                                          for f, s in zip(fin, sta[1:])), 3)})
