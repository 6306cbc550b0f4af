"""The guide loop is not slowed while the stacking worker runs: guide frame-to-pulse
p99 (wall time, measured by the guide worker) while a set is stacked, against idle.

    .venv/bin/python -m pytest tests/benchmarks/bench_stacking_worker.py -s -n 0

Target (issue 12): p99 while stacking within 1.2× of idle. The stacking child
runs at nice +10 and, while guiding, on every core but one (the worker's
choice; ``STACK_THREADS=N`` forces N); the service (and its guide loop) at the
normal priority. On a machine shared with other work one idle/busy pair
decides nothing (the others' load moves between them): ``ROUNDS`` (3) pairs
of ``GUIDE_FRAMES`` (400) idle frames then one stacking run are interleaved,
and the median of the rounds' p99 ratios is the figure. Figures go to
bench-results/stacking_worker.json.

Measured on this 2-core machine shared with other work (load average 12–21),
child at nice +10 on one thread (the worker's choice while guiding), 10 lights
of 1600×1200 + 4 each of darks, flats, biases, 400 idle frames a round:

=====  ===========  ===========  =====  ==============  =======
round  idle p99 ms  busy p99 ms  ratio  busy frames >50  stack s
=====  ===========  ===========  =====  ==============  =======
1      5.06         4.43         0.88   1 of 2633       100
2      16.96        8.97         0.53   1 of 1880       282
3      4.74         3.93         0.83   0 of 2573       168
=====  ===========  ===========  =====  ==============  =======

Median ratio 0.83: within the 1.2× target (p50 0.59–0.67 ms idle and busy alike).
The earlier runs with both cores (ratios 0.6–58 between runs) had one idle/busy pair each.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.events import Command
from fieldtui.service.session import Session
from fieldtui.stacking import synth
from tests.stacking.conftest import random_mats, write_set

from .bench_core import record

pytestmark = pytest.mark.timeout(3 * 3600)

FRAMES = int(os.environ.get("GUIDE_FRAMES", "400"))
#: idle / stacking rounds, interleaved (the machine's other load moves between them)
ROUNDS = int(os.environ.get("ROUNDS", "3"))
#: the stacking child's threads; default: the worker's choice (cores - 1 while guiding)
THREADS = os.environ.get("STACK_THREADS")


def _p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def test_guide_frame_to_pulse_p99_while_stacking(tmp_path):
    cam = synth.Camera(width=1600, height=1200, seed=51)
    write_set(tmp_path / "set", cam, synth.Field.random(cam, n=200, seed=52), random_mats(cam, 10, seed=53), n_cal=4)
    cfg = load_config(overrides={"storage": {"data_root": str(tmp_path / "astro")}})

    async def run() -> dict:
        session = Session(cfg, VirtualClock(1_800_000_000.0), record_path=tmp_path / "service-state.json")
        await session.start()
        rounds = []
        try:
            await session.command(Command("guide.start", {}))
            while session.guider.state != "guiding":
                await session.clock.sleep(1.0)
            lat = session.guider.worker.latencies_ms
            w = session.registry["stacking"]
            for r in range(ROUNDS):
                lat.clear()
                load0 = os.getloadavg()[0]
                while len(lat) < FRAMES:
                    await session.clock.sleep(1.0)
                idle = list(lat)
                lat.clear()
                t0 = time.monotonic()
                n_results = len(w.results)
                opts = {"threads": int(THREADS)} if THREADS else {}
                await session.command(Command("stack.add", {"night": str(tmp_path / "set"), "name": f"bench{r}",
                                                               "options": opts, "out": str(tmp_path / f"b{r}.fits")}))
                busy: list[float] = []
                threads = None
                while len(w.results) == n_results:
                    await asyncio.sleep(0.05)
                    if w.current is not None and w.current.get("stage"):
                        busy.extend(lat)  # only frames guided while the child was working
                    lat.clear()
                stack_s = time.monotonic() - t0
                res = w.results[-1]
                assert "error" not in res, res
                threads = THREADS or w.threads()
                rounds.append({"idle_frames": len(idle), "busy_frames": len(busy),
                               "idle_p50_ms": round(statistics.median(idle), 2),
                               "idle_p99_ms": round(_p(idle, 0.99), 2),
                               "busy_p50_ms": round(statistics.median(busy), 2),
                               "busy_p99_ms": round(_p(busy, 0.99), 2),
                               "p99_ratio": round(_p(busy, 0.99) / _p(idle, 0.99), 2),
                               "idle_over_50ms": sum(x > 50 for x in idle),
                               "busy_over_50ms": sum(x > 50 for x in busy),
                               "stack_wall_s": round(stack_s, 1), "threads": threads,
                               "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]})
                print(json.dumps(rounds[-1]))
            return {"rounds": rounds, "p99_ratio_median": statistics.median(r["p99_ratio"] for r in rounds),
                    "guider_state": session.guider.state,
                    "frames_stacked": w.results[-1]["frames_used"]}
        finally:
            await session.stop()

    figures = asyncio.run(run())
    record("stacking_worker", figures)
    print(json.dumps(figures))
    assert figures["guider_state"] == "guiding"
    assert all(r["busy_frames"] >= 30 for r in figures["rounds"])
    assert figures["p99_ratio_median"] <= 1.2, figures
