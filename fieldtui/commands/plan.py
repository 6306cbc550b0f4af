"""``fieldtui plan``: write and check capture plans.

    fieldtui plan new M31 > m31.toml       # a commented plan with the field guide's defaults
    fieldtui plan check m31.toml           # validate; frames, duration and disk use
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = "Write a commented capture plan for a target, or check one."


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    n = sub.add_parser("new", help="print a commented plan for TARGET (a Messier/NGC/IC name)")
    n.add_argument("target", help="e.g. M31, NGC7000, IC434; any name with --ra/--dec")
    n.add_argument("--ra", type=float, metavar="DEG", help="J2000 right ascension (degrees)")
    n.add_argument("--dec", type=float, metavar="DEG", help="J2000 declination (degrees)")
    n.add_argument("--exposure", type=float, default=120.0, help="light exposure in seconds (120)")
    n.add_argument("--iso", type=int, default=800, help="ISO (800)")
    c = sub.add_parser("check", help="validate PLAN.toml; print frames, duration and disk use")
    c.add_argument("plan", help="the plan file")


def run(args: argparse.Namespace) -> int:
    from ..capture.plan import PlanError, estimate, parse_plan, resolve_target, template
    from ..config import load_config
    try:
        if args.action == "new":
            if (args.ra is None) != (args.dec is None):
                raise PlanError("give both --ra and --dec, or neither")
            ra, dec = (args.ra, args.dec) if args.ra is not None else resolve_target(args.target)
            sys.stdout.write(template(args.target, ra, dec, exposure=args.exposure, iso=args.iso))
            return 0
        try:
            text = Path(args.plan).read_text()
        except OSError as exc:
            raise PlanError(f"cannot read {args.plan}: {exc.strerror}") from None
        plan = parse_plan(text)
        cfg = load_config(args.config)
        m = cfg.main_camera
        est = estimate(plan, frame_bytes=m.width * m.height * 2 + 8640)
        for r in est["sequences"]:
            print(f"{r['target']:<12} {r['type']:<8} {r['count']:>4} × {r['exposure']:g} s"
                  f"   {r['seconds'] / 60:6.1f} min  {r['bytes'] / 1e9:6.2f} GB")
        print(f"{'total':<12} {'':<8} {est['frames']:>4} frames   {est['seconds'] / 3600:6.2f} h    "
              f"{est['bytes'] / 1e9:6.2f} GB")
        return 0
    except PlanError as exc:
        print(f"fieldtui plan: {exc}", file=sys.stderr)
        return 2
