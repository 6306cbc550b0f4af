"""Guiding benchmark: accuracy on the simulated rig and frame-to-pulse latency.

    .venv/bin/python tests/benchmarks/bench_guiding.py [--minutes 30] [--jitters 0.1 0.3]

Guides the simulated rig with each algorithm pair (hysteresis + resist
switch, predictive + predictive Dec) and unguided, on the default config and
at other seeing jitters, and writes the figures to bench-results/guiding.json.
Targets: guided total RMS within 1.25x the seeing floor with the default
algorithm; frame-to-pulse under 10 ms median on a 1280x960 frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from fieldtui.config import load_config
from fieldtui.commands.guide import run_guide


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


ALGORITHMS = {
    "hysteresis": {"ra_algorithm": "hysteresis", "dec_algorithm": "resist_switch"},
    "predictive": {"ra_algorithm": "predictive", "dec_algorithm": "predictive"},
}


def accuracy(minutes: float, jitter: float | None) -> dict:
    """Guided (each algorithm) and unguided RMS against the seeing floor."""
    sim = {"seeing_jitter": jitter} if jitter is not None else {}
    out: dict = {"seeing_jitter": jitter if jitter is not None else load_config(user=False).sim.seeing_jitter}
    for name, algos in ALGORITHMS.items():
        cfg = load_config(user=False, overrides={"sim": sim, "guiding": algos})
        r = asyncio.run(run_guide(cfg, minutes=minutes, fast=True))
        floor = r["seeing_floor_arcsec"]
        out["seeing_floor_arcsec"] = floor
        out[name] = {
            "guided_rms_total_arcsec": r["rms_total_arcsec"],
            "guided_rms_ra_arcsec": r["rms_ra_arcsec"],
            "guided_rms_dec_arcsec": r["rms_dec_arcsec"],
            "guided_true_rms_total_arcsec": r.get("true_rms_total_arcsec"),
            "guided_over_floor": r["rms_total_arcsec"] / floor,
        }
    cfg = load_config(user=False, overrides={"sim": sim} if sim else None)
    un = asyncio.run(run_guide(cfg, minutes=minutes, fast=True, corrections=False))
    out["unguided_rms_total_arcsec"] = un["rms_total_arcsec"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--jitters", type=float, nargs="*", default=[0.1, 0.3],
                    help="extra sim.seeing_jitter values to run besides the default")
    args = ap.parse_args()
    t0 = time.time()
    default = accuracy(args.minutes, None)
    others = [accuracy(args.minutes, j) for j in args.jitters]
    lat = latency()
    chosen = load_config(user=False).guiding.ra_algorithm
    res = {
        "minutes": args.minutes,
        "default_algorithm": chosen,
        "guided_rms_total_arcsec": default[chosen]["guided_rms_total_arcsec"],
        "guided_over_floor": default[chosen]["guided_over_floor"],
        "seeing_floor_arcsec": default["seeing_floor_arcsec"],
        "unguided_rms_total_arcsec": default["unguided_rms_total_arcsec"],
        "target_guided_over_floor": 1.25,
        "default_config": default,
        "other_seeing": others,
        **lat,
        "target_frame_to_pulse_ms": 10.0,
        "wall_s": time.time() - t0,
    }
    for run in [default, *others]:
        print(f"seeing_jitter {run['seeing_jitter']:.2f}: floor {run['seeing_floor_arcsec']:.3f}\u2033, "
              f"unguided {run['unguided_rms_total_arcsec']:.3f}\u2033")
        for name in ALGORITHMS:
            r = run[name]
            print(f"  {name:11s} guided {r['guided_rms_total_arcsec']:.3f}\u2033 "
                  f"(RA {r['guided_rms_ra_arcsec']:.3f}, Dec {r['guided_rms_dec_arcsec']:.3f}, "
                  f"true {r['guided_true_rms_total_arcsec']:.3f})  {r['guided_over_floor']:.3f}x floor")
    for k in ("default_algorithm", "guided_over_floor", "target_guided_over_floor",
              "frame_to_pulse_ms_median", "frame_to_pulse_ms_p95", "wall_s"):
        v = res[k]
        print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "guiding.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
