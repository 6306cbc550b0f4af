"""The night's sky for plans: cost of each step and what the default sampling costs in accuracy.

    .venv/bin/python -m pytest tests/benchmarks/bench_sky.py -s -n 0    (or run it as a script)

Wall times (median of 5, after one warm-up call) of night_for (the Sun), target_night for a
fixed target and for the Moon, plan_timeline for a three-target plan, and the text plot;
then the largest difference in dusk, dawn, transit, rise and set between the default
sampling (sky.STEP_S) and 10-s sampling.
"""

import json
import statistics
import time
from types import SimpleNamespace

from fieldtui.capture import sky
from fieldtui.capture.plan import parse_plan

SITE = SimpleNamespace(latitude=31.78, longitude=78.96, elevation_m=4500.0, timezone="Asia/Kolkata")
PLAN = """
[[target]]
name = "M31"
ra_deg = 10.6847
dec_deg = 41.2690
[[target.sequence]]
type = "light"
count = 40
exposure = 300
[[target]]
name = "Moon"
[[target.sequence]]
type = "light"
count = 10
exposure = 0.01
[[target]]
name = "M42"
ra_deg = 83.8221
dec_deg = -5.3911
[[target.sequence]]
type = "light"
count = 40
exposure = 300
"""


def timed(fn, n=5):
    fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return round(statistics.median(out), 4)


def figures() -> dict:
    t = time.perf_counter()
    night = sky.night_for(SITE, "2026-11-29")
    first = round(time.perf_counter() - t, 3)
    plan = parse_plan(PLAN)
    tl = sky.plan_timeline(plan, SITE, night.dusk, night=night)
    res = {
        "first_night_for_s": first,
        "night_for_s": timed(lambda: sky.night_for(SITE, "2026-11-29")),
        "target_night_fixed_s": timed(lambda: sky.target_night((10.6847, 41.269), night)),
        "target_night_moon_s": timed(lambda: sky.target_night("Moon", night)),
        "plan_timeline_3_targets_s": timed(lambda: sky.plan_timeline(plan, SITE, night.dusk, night=night)),
        "render_plot_100x22_s": timed(lambda: sky.render_plot(tl, 100, 22)),
    }
    fine = sky.night_for(SITE, "2026-11-29", step_s=10.0)
    worst = {"dusk_dawn_s": max(abs(night.dusk - fine.dusk), abs(night.dawn - fine.dawn))}
    for tgt in ((10.6847, 41.269), (83.8221, -5.3911), "Moon"):
        a, b = sky.target_night(tgt, night), sky.target_night(tgt, fine)
        for k in ("transit", "rise", "set"):
            if getattr(a, k) is not None and getattr(b, k) is not None:
                key = f"{k}_s"
                worst[key] = max(worst.get(key, 0.0), abs(getattr(a, k) - getattr(b, k)))
    res[f"step_{sky.STEP_S:g}s_vs_10s_worst"] = {k: round(v, 2) for k, v in worst.items()}
    return res


def test_sky_costs_and_sampling(tmp_path):
    """Recorded to bench-results/sky.json; the sampling must stay within a second of 10-s sampling."""
    from .bench_core import record
    res = figures()
    record("sky", res)
    assert max(res[f"step_{sky.STEP_S:g}s_vs_10s_worst"].values()) < 1.0


if __name__ == "__main__":
    print(json.dumps(figures(), indent=1))
