"""``fieldtui analyze FILE... [--json] [--kind K]`` and ``fieldtui analyze --simulated KIND``:
star metrics, histogram and exposure advice per frame file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import load_config

if TYPE_CHECKING:
    from ..config import Config
    from ..imaging.advice import RigLimits

DESCRIPTION = "Measure stars, histogram and exposure of FITS or camera raw files."
EPILOG = ("fieldtui analyze --simulated light|flat|dark|bias [--exposure S] [--iso N] [--keep DIR] "
          "takes a frame with the simulated DSLR and analyses its raw file.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Files, ``--json``, ``--ra-angle``, ``--kind`` and the ``--simulated`` options."""
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON array, an object per file")
    p.add_argument("--ra-angle", type=float, default=None, metavar="DEG",
                   help="angle of the RA axis on the sensor (from guider calibration), for trailing advice")
    p.add_argument("--kind", choices=["light", "flat", "dark", "bias", "darkflat"],
                   help="what the frames are, for the advice (raw files do not say)")
    p.add_argument("--bias", metavar="FILE",
                   help="a bias frame from the same camera and settings: its median is the black level "
                        "of files that record none")
    p.add_argument("--unguided", action="store_true",
                   help="advise for subs on tracking alone (the config's exposure.longest_unguided_s), "
                        "whatever exposure.guided says")
    p.add_argument("--simulated", choices=["light", "flat", "dark", "bias"],
                   help="analyse a frame taken now with the simulated DSLR (its raw file)")
    p.add_argument("--exposure", type=float, metavar="S", help="with --simulated: exposure in seconds")
    p.add_argument("--iso", type=int, metavar="N", help="with --simulated: ISO")
    p.add_argument("--keep", metavar="DIR", help="with --simulated: keep the raw file in DIR")


def analyze_files(files: list[str], *, as_json: bool = False, ra_angle: float | None = None,
                  kind: str | None = None, limits: "RigLimits | None" = None,
                  bias: tuple[float, str] | None = None) -> int:
    """Analyse each file and print the report (text or one JSON array). A file that cannot be
    read is reported (its error, on stderr in text mode) and the others are still analysed.
    ``limits``: what the rig can do (the longest sub), for the advice; ``bias``: the black
    level (ADU, from which file) for files that record none.
    Returns 1 when any file failed, else 0."""
    from ..imaging.analyze import analyze_file, format_human
    results = []
    failed = False
    for f in files:
        r = analyze_file(f, ra_axis_angle=ra_angle, kind=kind, limits=limits, bias=bias)
        results.append(r)
        if "error" in r:
            failed = True
            if not as_json:
                print(f"{r['file']}: {r['error']}", file=sys.stderr)
        elif not as_json:
            print(format_human(r))
            print()
    if as_json:
        json.dump(results, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    """``fieldtui analyze`` with ``argv`` after the subcommand (for tests and scripts)."""
    p = argparse.ArgumentParser(prog="fieldtui analyze", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--config", metavar="FILE")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Exit status 1 when a file could not be read, 2 for wrong arguments."""
    if args.simulated is None and not args.files:
        print("fieldtui analyze: name at least one FILE (or --simulated KIND)", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    limits = _limits(cfg, unguided=args.unguided)
    bias = None
    if args.bias:
        from ..imaging.analyze import bias_level
        from ..imaging.io import FrameReadError
        try:
            bias = (bias_level(args.bias), Path(args.bias).name)
        except FrameReadError as exc:
            print(f"fieldtui analyze: --bias {exc}", file=sys.stderr)
            return 1
    if args.simulated is None:
        return analyze_files(args.files, as_json=args.json, ra_angle=args.ra_angle, kind=args.kind,
                             limits=limits, bias=bias)
    kind = args.simulated
    exposure = args.exposure if args.exposure is not None else (
        cfg.plan.light_exposure_s if kind in ("light", "dark") else 1.0)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fieldtui-sim-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sim_{kind}_{exposure:g}s_ISO{args.iso or cfg.main_camera.iso}.dng"
    asyncio.run(_simulated_frame(cfg, kind, exposure, args.iso, path))
    try:
        return analyze_files([*args.files, str(path)], as_json=args.json, ra_angle=args.ra_angle,
                             kind=args.kind or (None if kind == "light" else kind), limits=limits, bias=bias)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            folder.rmdir()


def _limits(cfg: "Config", *, unguided: bool) -> "RigLimits":
    """The rig's exposure limits from the config's [exposure] table."""
    import dataclasses

    from ..imaging.advice import RigLimits
    lim = RigLimits.from_config(cfg)
    return dataclasses.replace(lim, guided=False) if unguided else lim


async def _simulated_frame(cfg: "Config", kind: str, exposure: float, iso: int | None, path: Path) -> None:
    from ..clock import VirtualClock
    from ..devices.sim import SimRig
    clock = VirtualClock()
    rig = SimRig(cfg, clock)
    try:
        await rig.main_camera.connect()
        await rig.main_camera.expose(exposure, iso, path=path, kind=kind)
    finally:
        clock.close()
