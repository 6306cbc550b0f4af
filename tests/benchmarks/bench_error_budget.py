"""Where a guided run's error comes from, against the simulator's ground truth.

    .venv/bin/python tests/benchmarks/bench_error_budget.py [--seeds 0,1,2,3,7]
        [--exposure 4] [--size 640x480] [--minutes 30] [--no-gusts]

Each seed calibrates and guides the real engine on the simulator's sky
(tests/guiding/skyloop.py, as the tests do) and splits every guided frame's measured
offset along the mount axes into the true pointing error (the mount's error averaged
over the exposure, which is what a frame can show) and the rest (seeing jitter plus the
centroid's noise).  The guided RMS² (the statistics' RA² + Dec², about their means) is
then about

    noise² (RA + Dec)  +  true error² (RA + Dec)

and the true error² is split by moments: the 40 s after each gust's start, the first
worm cycle (480 s; the periodic model cannot know it yet) and the steady state after
it.  The seeing floor² is 2 × jitter²; a ratio of 1.25 leaves 0.56 floor² for all the
rest.  Figures are arcsec² per frame of the whole run (they add up).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guiding"))

from skyloop import SkyLoop, small_config  # noqa: E402

from fieldtui.guiding.events import GuideState, GuideStep  # noqa: E402
from fieldtui.guiding.settings import GuideSettings  # noqa: E402


def budget(seed: int, exposure: float, width: int, height: int, minutes: float,
           gusts: bool = True) -> dict:
    """One run's error budget (arcsec², per frame of the run) and its ratio."""
    sim = {"seed": seed} | ({} if gusts else {"gusts_per_hour": 0.0})
    cfg = small_config(width, height, sim=sim, guiding={"exposure_s": exposure})
    loop = SkyLoop(cfg, replace(GuideSettings.from_config(cfg), min_stars=1))
    loop.start()
    eng, sky, t0 = loop.engine, loop.sky, loop.t
    rows = []
    while loop.t < t0 + minutes * 60.0:
        start = loop.t
        exp = eng.next_exposure_s
        data, truth = loop.frame(exp)
        d = eng.on_frame(data, loop.t, exposure_s=exp)
        step = next((e for e in d.events if isinstance(e, GuideStep)), None)
        if step is not None and eng.state == GuideState.GUIDING:
            ex, ey = truth["mount_error"]
            rows.append((start + exp / 2.0 - t0, step.ra_px, step.dec_px, ex, ey))
        longest = 0.0
        for p in d.pulses:
            sky.apply_pulse(p.direction, p.ms, loop.t)
            longest = max(longest, p.ms / 1000.0)
        loop.t += longest + loop.settings.cycle_time_s
    a = np.asarray(rows)
    t, scale = a[:, 0], cfg.guide_scale
    ra, dec = a[:, 1] * scale, a[:, 2] * scale
    # The camera may be mirrored and rotated: the sign that makes each axis follow the truth.
    tra = np.sign(np.corrcoef(ra, a[:, 3])[0, 1]) * a[:, 3]
    tdec = np.sign(np.corrcoef(dec, a[:, 4])[0, 1]) * a[:, 4]
    tra, tdec = tra - tra.mean(), tdec - tdec.mean()
    n = len(t)
    near = np.zeros(n, bool)
    for g in sky._gusts[:, 0] - t0:
        near |= (t >= g) & (t < g + 40.0)
    first = t < 480.0

    def part(m: np.ndarray) -> list[float]:
        return [round(float(np.sum(tra[m] ** 2) / n), 4), round(float(np.sum(tdec[m] ** 2) / n), 4)]

    floor = sky.seeing_floor(exposure)
    guided = float(np.sqrt(np.var(ra) + np.var(dec)))
    return {
        "seed": seed, "frames": n, "snr": round(float(eng.star.snr)), "floor2": round(floor ** 2, 4),
        "ratio": round(guided / floor, 3),
        "noise2": round(float(np.var(ra - tra) + np.var(dec - tdec)), 4),
        "true2 gusts RA/Dec": part(near), "true2 first cycle RA/Dec": part(first & ~near),
        "true2 steady RA/Dec": part(~first & ~near),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,7")
    ap.add_argument("--exposure", type=float, default=4.0)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--no-gusts", action="store_true")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    ratios = []
    for s in (int(v) for v in args.seeds.split(",")):
        b = budget(s, args.exposure, w, h, args.minutes, gusts=not args.no_gusts)
        ratios.append(b["ratio"])
        print(json.dumps(b, ensure_ascii=False), flush=True)
    print(f"mean ratio {np.mean(ratios):.3f}, max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
