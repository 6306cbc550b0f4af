"""``fieldtui plan``: write and check capture plans.

    fieldtui plan new M31 > m31.toml       # a commented plan with the field guide's defaults
    fieldtui plan check m31.toml           # validate; frames, duration and disk use
    fieldtui plan show m31.toml --start 21:30   # the night: schedule, altitude plot, warnings
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

DESCRIPTION = ("Write a commented capture plan for a target, check one, or show it through the night "
               "(schedule, altitudes, meridian, twilight, warnings).")


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
    s = sub.add_parser("show", help="the plan through the night: schedule, altitude plot with meridian "
                       "and twilight, warnings (below the altitude limit, into dawn)")
    s.add_argument("plan", help="the plan file")
    s.add_argument("--start", metavar="HH:MM", help="local start time at the site (default: now, or dusk "
                   "with --night); the next such time from an hour ago on")
    s.add_argument("--night", metavar="YYYY-MM-DD", help="plan that night (the evening's date) instead of "
                   "tonight")
    s.add_argument("--json", action="store_true", help="print the schedule and warnings as JSON, no plot")


def run(args: argparse.Namespace) -> int:
    from ..capture.plan import PlanError, estimate, parse_plan, resolve_target, template
    from ..config import load_config
    try:
        if args.action == "new":
            if (args.ra is None) != (args.dec is None):
                raise PlanError("give both --ra and --dec, or neither")
            from ..capture.sky import SkyError, body_name
            try:
                body = args.ra is None and body_name(args.target)
            except SkyError as exc:
                raise PlanError(str(exc)) from None
            ra, dec = ((args.ra, args.dec) if args.ra is not None else
                       (None, None) if body else resolve_target(args.target))
            sys.stdout.write(template(args.target, ra, dec, exposure=args.exposure, iso=args.iso))
            return 0
        try:
            text = Path(args.plan).read_text()
        except OSError as exc:
            raise PlanError(f"cannot read {args.plan}: {exc.strerror}") from None
        cfg = load_config(args.config)
        if args.action == "show":
            return _show(args, text, cfg)
        plan = parse_plan(text)
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


def frame_bytes(cfg) -> int:
    """One main-camera frame on disk (16-bit FITS and its header), bytes."""
    m = cfg.main_camera
    return m.width * m.height * 2 + 8640


def start_time(now: float, tz: str, hhmm: str | None, night_date: str | None, dusk) -> float:
    """The plan's start (unix s): ``hhmm`` local on the night ``night_date`` (HH:MM before noon
    is the next morning), else the next ``hhmm`` from an hour before ``now``; no ``hhmm``:
    ``now``, or the night's dusk (``dusk()``, called only then) with a ``night_date``.
    Raises ValueError with one line for a bad time or date."""
    zone = ZoneInfo(tz)
    hm = None
    if hhmm is not None:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", hhmm.strip())
        if not m or int(m[1]) > 23 or int(m[2]) > 59:
            raise ValueError(f"--start {hhmm!r}: expected a local time HH:MM")
        hm = int(m[1]), int(m[2])
    if night_date is not None:
        try:
            day = datetime.strptime(night_date, "%Y-%m-%d").replace(tzinfo=zone)
        except ValueError:
            raise ValueError(f"--night {night_date!r}: expected a date YYYY-MM-DD") from None
        if hm is None:
            t = dusk()
            if t is None:
                raise ValueError(f"no astronomical darkness on the night of {night_date}: give --start HH:MM")
            return t
        d = day + timedelta(days=1) if hm[0] < 12 else day
        return d.replace(hour=hm[0], minute=hm[1]).timestamp()
    if hm is None:
        return now
    local = datetime.fromtimestamp(now - 3600, zone)
    t = local.replace(hour=hm[0], minute=hm[1], second=0, microsecond=0)
    if t < local:
        t += timedelta(days=1)
    return t.timestamp()


def _show(args: argparse.Namespace, text: str, cfg) -> int:
    from ..capture import sky
    from ..capture.plan import PlanError, parse_plan
    site = cfg.site
    night = None
    try:
        if args.night is not None:
            night = sky.night_for(site, args.night)
        start = start_time(time.time(), site.timezone, args.start, args.night,
                           lambda: night.dusk if night is not None else None)
        if night is None:
            night = sky.night_for(site, start)
        plan = parse_plan(text, when=start, site=site)
        tl = sky.plan_timeline(plan, site, start, min_alt_deg=site.min_altitude_deg, night=night,
                               frame_bytes=frame_bytes(cfg))
    except (ValueError, sky.SkyError) as exc:
        if isinstance(exc, PlanError):
            raise
        print(f"fieldtui plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = sky.timeline_dict(tl)
        out["plan"] = plan.name
        out["site"] = {"latitude": site.latitude, "longitude": site.longitude, "elevation_m": site.elevation_m}
        out["targets"] = [dict(d or {}, ra_deg=t.ra_deg, dec_deg=t.dec_deg, name=t.name)
                          for d, t in zip(out["targets"], plan.targets)]
        print(json.dumps(out, indent=1))
        return 0
    tz = site.timezone
    print(f"{plan.name}: night of {night.date} at {site.latitude:+.2f}°, {site.longitude:+.2f}° ({tz}); "
          f"astronomical darkness {sky.hm(night.dusk, tz)}–{sky.hm(night.dawn, tz)}; "
          f"altitude limit {tl.min_alt_deg:g}°")
    for t, tn in zip(plan.targets, tl.targets):
        where = f"  {t.name}: " + ("Solar System body, at the start " if t.body else "")
        if t.ra_deg is not None:
            where += f"RA {t.ra_deg:.3f}° Dec {t.dec_deg:+.3f}°"
        if tn is not None:
            where += (f"; meridian {sky.hm(tn.transit, tz)} at {tn.transit_alt:.0f}°" if tn.transit is not None
                      else "; no meridian transit tonight")
            where += f"; above {tl.min_alt_deg:g}° {sky.hm(tn.rise, tz)}–{sky.hm(tn.set, tz)}" \
                if (tn.rise or tn.set) else (f"; always above {tl.min_alt_deg:g}°" if tn.alt.min() >= tl.min_alt_deg
                                              else f"; never above {tl.min_alt_deg:g}°")
        print(where)
    for r in tl.sequences:
        mark = "  !" if r.warnings else "   "
        print(f"{mark} {sky.hm(r.start, tz)}–{sky.hm(r.end, tz)}  {r.target:<12} {r.type:<8} {r.count:>4} × "
              f"{r.exposure:g} s   {r.seconds / 60:6.1f} min  {r.bytes / 1e9:6.2f} GB"
              + (f"  meridian {sky.hm(r.meridian, tz)}" if r.meridian is not None else ""))
    est = tl.estimate
    print(f"    {sky.hm(tl.start, tz)}–{sky.hm(tl.end, tz)}  {'total':<12} {'':<8} {est['frames']:>4} frames   "
          f"{est['seconds'] / 3600:6.2f} h    {est['bytes'] / 1e9:6.2f} GB")
    cols, rows = shutil.get_terminal_size((100, 30))
    print(sky.render_plot(tl, max(60, min(cols, 160)), max(16, min(rows - 8, 26)), colour=sys.stdout.isatty()))
    if tl.warnings:
        print(f"{len(tl.warnings)} warning{'s' if len(tl.warnings) > 1 else ''}:")
        for w in tl.warnings:
            print(f"  ! {w}")
    else:
        print(f"no warnings: every light sequence runs above {tl.min_alt_deg:g}° in astronomical darkness")
    return 0
