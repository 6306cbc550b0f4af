"""``fieldtui library``: the index of frames on disk, and the calibration checklist.

    fieldtui library scan ~/astro            # (re)index every frame under the folder
    fieldtui library scan ~/astro --rebuild  # start the index from the files alone
    fieldtui library check ~/astro           # the field guide's rules for every set of lights
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DESCRIPTION = "Index the frames under a folder (SQLite, rebuildable) and check their calibration."


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_ in (("scan", "index every frame under DIR (FITS headers, raw EXIF)"),
                        ("check", "the calibration rules for every set of lights under DIR")):
        a = sub.add_parser(name, help=help_)
        a.add_argument("dir", help="the data folder")
        a.add_argument("--db", metavar="FILE", help="the index (default DIR/.library.sqlite)")
        a.add_argument("--json", action="store_true", help="print JSON")
        if name == "scan":
            a.add_argument("--rebuild", action="store_true", help="drop the index of DIR first")
        else:
            a.add_argument("--temp-tolerance", type=float, default=None, metavar="C",
                           help="darks within this many °C of the lights match (default: the "
                                "config's [plan] dark_temp_tolerance_c, 2)")


def run(args: argparse.Namespace) -> int:
    from ..library import Library, default_db
    root = Path(args.dir).expanduser()
    if not root.is_dir():
        print(f"fieldtui library: {root} is not a folder", file=sys.stderr)
        return 2
    lib = Library(args.db or default_db(root))
    try:
        t0 = time.monotonic()
        res = lib.scan(root, rebuild=getattr(args, "rebuild", False))
        res["seconds"] = round(time.monotonic() - t0, 3)
        if args.action == "scan":
            print(json.dumps(res) if args.json else
                  f"{res['indexed']} indexed, {res['unchanged']} unchanged, {res['removed']} removed, "
                  f"{res['skipped']} not frames ({res['seconds']:.2f} s) → {lib.path}")
            return 0
        from ..capture.calibration import checklist
        out = []
        tol = args.temp_tolerance
        if tol is None:
            from ..config import load_config
            tol = load_config(getattr(args, "config", None)).plan.dark_temp_tolerance_c
        for s, rules in checklist(lib.frames(), tol):
            setting = f"gain {s.gain}" if s.gain is not None else f"ISO {s.iso}"
            temp = "?" if s.temperature is None else f"{s.temperature:g}"
            head = (f"{s.count} lights {setting} {s.exposure:g} s {temp} °C"
                    f"{' ' + s.filter if s.filter else ''} night {s.night} focus {s.focus}")
            out.append({"lights": s.__dict__, "rules": [r.__dict__ for r in rules], "title": head})
        if args.json:
            print(json.dumps(out, indent=1))
        else:
            for o in out:
                print(o["title"])
                for r in o["rules"]:
                    print(f"  {r['rule']:<10} {r['state']:<10} {r['have']}/{r['need']}  {r['reason']}")
        return 0 if all(r["state"] in ("done", "optional") for o in out for r in o["rules"]) else 1
    finally:
        lib.close()
