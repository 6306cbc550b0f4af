"""``fieldtui capture PLAN.toml``: run a capture plan headless.

    fieldtui capture m31.toml --fast --json --data /tmp/astro   # the simulated rig, virtual clock
    fieldtui capture m31.toml                                   # the configured rig, real time

Run again after an interruption (Ctrl-C, kill, power loss), it resumes where
the plan stopped: the journal is DATA/.capture/<plan name>.jsonl.
Exit status: 0 when the plan is complete, 1 when it stopped or failed,
2 for a bad plan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

DESCRIPTION = "Run a capture plan headless; run it again to resume after an interruption."
EPILOG = "The JSON summary has planned, done, failed, resumed, files (and state, reason, outliers, adopted)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="the plan file (fieldtui plan new TARGET writes one)")
    p.add_argument("--fast", action="store_true", help="run on a virtual clock, as fast as the CPU allows")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--data", metavar="DIR", help="the data root (overrides [storage] data_root)")
    p.add_argument("--guide", action="store_true",
                   help="calibrate and start guiding first (needed for dithering)")


async def run_capture(cfg: Any, plan: str, *, fast: bool, data: str | None = None,
                      guide: bool = False, on_event: Any = None) -> dict[str, Any]:
    """Run ``plan`` on a Session of its own (guider and sequencer); the summary dict."""
    from ..clock import make_clock
    from ..service.session import Session
    clock = make_clock(fast)
    session = Session(cfg, clock, activities=("fieldtui.service.guiding:Guider",
                                              "fieldtui.service.capture:Capture"))
    q = session.subscribe() if on_event is not None else None
    pump = None
    if q is not None:
        async def _pump() -> None:
            while True:
                on_event(await q.get())
        pump = asyncio.ensure_future(_pump())
    await session.start()
    t_wall = time.monotonic()
    t_clock = clock.now()
    try:
        if guide:
            await session.commands["guide.start"]()  # selects a star and calibrates first
            end = clock.now() + 1800
            while session.guider.state != "guiding" and clock.now() < end:
                await clock.sleep(1.0)
        result = await session.capture.run_plan(plan, data)
    finally:
        await session.stop()
        if pump is not None:
            pump.cancel()
        close = getattr(clock, "close", None)
        if close is not None:
            close()
    result["wall_s"] = round(time.monotonic() - t_wall, 3)
    result["clock_s"] = round(clock.now() - t_clock, 3)
    return result


def run(args: argparse.Namespace) -> int:
    from ..capture.plan import PlanError, parse_plan
    from ..config import load_config
    overrides = {"storage": {"data_root": args.data}} if args.data else None
    cfg = load_config(args.config, overrides=overrides)
    try:
        with open(args.plan) as fh:
            parse_plan(fh.read())
    except OSError as exc:
        print(f"fieldtui capture: cannot read {args.plan}: {exc.strerror}", file=sys.stderr)
        return 2
    except PlanError as exc:
        print(f"fieldtui capture: {args.plan}: {exc}", file=sys.stderr)
        return 2

    def show(ev: Any) -> None:
        from ..events import CaptureFrame
        if isinstance(ev, CaptureFrame) and not args.json:
            f = ev.figures
            fig = (f" HFR {f['hfr']:.2f} px, {f['stars']} stars" if f.get("hfr") else
                   f" mean {100 * f['mean_frac']:.0f} %" if f.get("mean_frac") is not None else "")
            mark = f"  OUTLIER: {'; '.join(ev.outlier)}" if ev.outlier else ""
            print(f"{ev.target} {ev.type} {ev.index}/{ev.count} {ev.path}{fig}{mark}", flush=True)

    result = asyncio.run(run_capture(cfg, args.plan, fast=args.fast, data=args.data,
                                     guide=args.guide, on_event=show))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['plan']}: {result['state']}{' (' + result['reason'] + ')' if result['reason'] else ''}; "
              f"{result['done']} of {result['planned']} frames"
              f"{', resumed' if result['resumed'] else ''}; outliers {len(result['outliers'])}")
    return 0 if result["state"] == "done" else 1
