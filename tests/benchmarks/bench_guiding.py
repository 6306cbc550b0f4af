"""Guiding benchmark: accuracy on the simulated rig and frame-to-pulse latency.

    .venv/bin/python tests/benchmarks/bench_guiding.py [--minutes 30]

Prints the figures and writes them to bench-results/guiding.json.
Targets: guided total RMS within 1.25x the seeing floor; frame-to-pulse
under 10 ms median on a 1280x960 frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from fieldtui.config import load_config
from fieldtui.guiding.cli import run_guide


def latency(n: int = 200) -> dict:
    """Median time from a 1280x960 frame to the pulse decision (engine only)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guiding"))
    from synth import SynthSky

    from fieldtui.guiding.engine import GuideEngine
    from fieldtui.guiding.settings import GuideSettings

    sky = SynthSky(width=1280, height=960, n_stars=30, jitter_arcsec=0.4, drift_arcsec_s=(0.1, 0.05))
    eng = GuideEngine(GuideSettings(), pixel_scale=sky.scale)
    eng.start_guiding()
    t = 0.0
    times = []
    while len(times) < n:
        img = sky.render()
        t0 = time.perf_counter()
        d = eng.on_frame(img, t)
        dt = (time.perf_counter() - t0) * 1000
        if eng.state.value == "guiding":
            times.append(dt)
        for p in d.pulses:
            sky.pulse(p.direction, p.ms)
        sky.advance(1.0)
        t += 1.0
    return {"frame_to_pulse_ms_median": statistics.median(times),
            "frame_to_pulse_ms_p95": sorted(times)[int(0.95 * len(times))]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    t0 = time.time()
    guided = asyncio.run(run_guide(load_config(user=False), minutes=args.minutes, fast=True))
    unguided = asyncio.run(run_guide(load_config(user=False), minutes=args.minutes, fast=True,
                                     corrections=False))
    lat = latency()
    floor = guided["seeing_floor_arcsec"]
    res = {
        "minutes": args.minutes,
        "guided_rms_total_arcsec": guided["rms_total_arcsec"],
        "guided_rms_ra_arcsec": guided["rms_ra_arcsec"],
        "guided_rms_dec_arcsec": guided["rms_dec_arcsec"],
        "guided_true_rms_total_arcsec": guided.get("true_rms_total_arcsec"),
        "unguided_rms_total_arcsec": unguided["rms_total_arcsec"],
        "seeing_floor_arcsec": floor,
        "guided_over_floor": guided["rms_total_arcsec"] / floor,
        "target_guided_over_floor": 1.25,
        **lat,
        "target_frame_to_pulse_ms": 10.0,
        "wall_s": time.time() - t0,
    }
    for k, v in res.items():
        print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "guiding.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
