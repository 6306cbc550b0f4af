"""``fieldtui stack``: calibrate, register and stack a night's frames headless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = ("Calibrate lights with master darks, flats, biases and dark flats, measure and select them, "
               "register them on their stars and stack them into a 32-bit float FITS (with a stretched PNG "
               "preview beside it). Mono FITS, colour (Bayer) FITS and DSLR raw files.")
EPILOG = ("Give --lights (and calibration sets), or one night's folder whose Light/Dark/Flat/Bias/DarkFlat "
          "folders say what each frame is. A frame that cannot be read or registered is left out with its "
          "reason; the stack goes on.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Frame sets, output, rejection and selection options."""
    p.add_argument("night", nargs="?", metavar="NIGHT_FOLDER",
                   help="a night's folder (its Light, Dark, Flat, Bias, DarkFlat folders)")
    for name, what in (("lights", "light frames"), ("darks", "darks (the lights' exposure, ISO/gain, temperature)"),
                       ("flats", "flats"), ("biases", "biases (shortest exposure)"),
                       ("dark-flats", "dark flats (the flats' exposure, covered)")):
        p.add_argument(f"--{name}", nargs="+", default=[], metavar="PATH", help=f"{what}: folders or files")
    for name, what in (("bias", "a master bias"), ("dark", "a master dark (with its bias, the lights' exposure)"),
                       ("flat", "a master flat (bias removed)")):
        p.add_argument(f"--master-{name}", metavar="FILE", help=f"{what} made before, instead of --{name}s")
    p.add_argument("--save-masters", metavar="DIR", help="write the masters of this run to DIR for reuse")
    p.add_argument("--library", metavar="DB",
                   help="the frame library whose masters are reused where the rules allow (bias and darks "
                        "from any night, flats only from the lights' night) and where new masters are kept "
                        "(default: the data root's library, DATA/.library.sqlite, for lights under the data root)")
    p.add_argument("--no-library", action="store_true", help="neither reuse nor keep masters in a library")
    p.add_argument("--queue", action="store_true",
                   help="do not stack here: queue the set in the running rig service's stacking worker "
                        "(the Stacking screen shows it); prints the set's id")
    p.add_argument("--out", metavar="FILE.fits", help="the stacked image (default: stack.fits in the current folder)")
    p.add_argument("--no-preview", action="store_true", help="do not write the PNG preview beside --out")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--method", choices=["mean", "median"], default="mean", help="combination (default mean with rejection)")
    p.add_argument("--rejection", choices=["sigma", "winsorized", "linear", "none"], default="winsorized",
                   help="pixel rejection for the lights (default winsorized)")
    p.add_argument("--sigma-low", type=float, metavar="K",
                   help="rejection threshold below (σ; default 3, 5 for linear)")
    p.add_argument("--sigma-high", type=float, metavar="K",
                   help="rejection threshold above (σ; default 3, 5 for linear)")
    p.add_argument("--no-normalise", action="store_true", help="no additive-with-scaling normalisation")
    p.add_argument("--weights", choices=["noise", "none"], default="noise", help="frame weighting (default noise)")
    p.add_argument("--master-method", choices=["mean", "median"], default="mean",
                   help="masters: average with winsorized rejection (default) or median")
    p.add_argument("--dark-scaling", choices=["none", "exposure", "optimise"], default="none",
                   help="scale the dark's thermal signal (needs biases)")
    p.add_argument("--no-cosmetic", action="store_true", help="no hot/cold pixel correction")
    p.add_argument("--max-fwhm", type=float, metavar="PX",
                   help="leave out frames with a larger FWHM (sensor pixels, as analyze gives it)")
    p.add_argument("--fwhm-sigma", type=float, metavar="K", help="leave out frames whose FWHM is K σ above the median")
    p.add_argument("--min-roundness", type=float, metavar="R", help="leave out frames with rounder-than-R stars only (0–1)")
    p.add_argument("--keep-best", type=float, metavar="PCT", help="stack only the best PCT %% of the frames by FWHM")
    p.add_argument("--reference", metavar="FILE", help="the light whose grid the stack is on (default: the best)")
    p.add_argument("--affine", action="store_true", help="affine registration instead of similarity")
    p.add_argument("--no-crop", action="store_true", help="keep the partly covered borders")
    p.add_argument("--debayer", choices=["rcd", "malvar", "bilinear"], default="rcd",
                   help="debayer method (rcd: ratio corrected, Siril's default; malvar: linear 5x5; "
                        "bilinear: smoother, wider stars)")
    p.add_argument("--interpolation", choices=["linear", "cubic", "lanczos"], default="linear",
                   help="resampling kernel (linear: Siril's noise and star size; lanczos: stars 4 %% "
                        "narrower, 36 %% more noise per pixel; cubic between)")


def options_from(args: argparse.Namespace):
    """The :class:`StackOptions` the arguments ask for."""
    from ..stacking import Rejection, StackOptions
    k = 5.0 if args.rejection == "linear" else 3.0
    return StackOptions(
        rejection=Rejection(args.rejection, args.sigma_low or k, args.sigma_high or k),
        method=args.method, normalise=not args.no_normalise, weighting=args.weights,
        master_method=args.master_method, dark_scaling=args.dark_scaling, cosmetic=not args.no_cosmetic,
        debayer=args.debayer, kernel=args.interpolation, model="affine" if args.affine else "similarity", max_fwhm=args.max_fwhm,
        fwhm_sigma=args.fwhm_sigma, min_roundness=args.min_roundness, reference=args.reference,
        master_bias=args.master_bias, master_dark=args.master_dark, master_flat=args.master_flat,
        save_masters=args.save_masters, library=getattr(args, "library_db", None),
        keep_best=None if args.keep_best is None else args.keep_best / 100.0, crop=not args.no_crop)


def main(argv: list[str]) -> int:
    """``fieldtui stack`` with ``argv`` after the subcommand (for tests and scripts)."""
    p = argparse.ArgumentParser(prog="fieldtui stack", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--config", metavar="FILE")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Exit status 0 with a stack, 1 when no stack could be made, 2 for wrong arguments."""
    from ..stacking import StackError, stack, write_preview, write_stack
    from ..stacking.pipeline import night_folder

    sets = {"lights": args.lights, "darks": args.darks, "flats": args.flats, "biases": args.biases,
            "dark_flats": args.dark_flats}
    if args.night:
        if not Path(args.night).is_dir():
            print(f"fieldtui stack: {args.night}: not a folder", file=sys.stderr)
            return 2
        found = night_folder(args.night)
        for k, v in found.items():
            if not sets[k]:
                sets[k] = [str(x) for x in v]
    for x in (args.master_bias, args.master_dark, args.master_flat):
        if x and not Path(x).is_file():
            print(f"fieldtui stack: {x}: no such file", file=sys.stderr)
            return 2
    if not sets["lights"]:
        print("fieldtui stack: no light frames (give --lights or a night's folder with a Light folder)", file=sys.stderr)
        return 2
    for k, v in sets.items():
        for x in v:
            if not Path(x).exists():
                print(f"fieldtui stack: {x}: no such file or folder", file=sys.stderr)
                return 2
    if args.keep_best is not None and not 0 < args.keep_best <= 100:
        print("fieldtui stack: --keep-best takes a percentage between 0 and 100", file=sys.stderr)
        return 2
    if args.queue:
        return _queue(args, sets)
    args.library_db = None if args.no_library else _library_for(args, sets["lights"])
    out = Path(args.out or "stack.fits")
    try:
        opts = options_from(args)
    except ValueError as exc:
        print(f"fieldtui stack: {exc}", file=sys.stderr)
        return 2

    def progress(stage: str, done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

    try:
        res = stack(sets["lights"], darks=sets["darks"], flats=sets["flats"], biases=sets["biases"],
                    dark_flats=sets["dark_flats"], options=opts, progress=progress)
    except StackError as exc:
        if args.json:
            json.dump({"output": None, "error": str(exc), "frames_used": 0, "frames_rejected": []}, sys.stdout)
            sys.stdout.write("\n")
        else:
            print(f"\nfieldtui stack: {exc}", file=sys.stderr)
        return 1
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    try:
        write_stack(res, out)
        preview = None
        if not args.no_preview:
            preview = write_preview(res, out.with_suffix(".png"))
    except OSError as exc:
        print(f"fieldtui stack: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    report = {
        "output": str(out),
        "preview": str(preview) if preview else None,
        "frames_used": len(res.used),
        "frames_rejected": res.rejected,
        "seconds": round(res.seconds, 2),
        "reference": res.reference,
        "crop": list(res.crop),
        "shape": list(res.image.shape),
        "warnings": res.warnings,
        "masters": res.masters,
        "frames": res.quality,
    }
    if args.json:
        json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        h, w = res.image.shape[:2]
        print(f"{out}: {len(res.used)} frames stacked, {w}×{h} px, in {res.seconds:.1f} s")
        if preview:
            print(f"preview: {preview}")
        for r in res.rejected:
            print(f"left out {Path(r['file']).name}: {r['reason']}")
        for kind, m in res.masters.items():
            if m.get("reused"):
                print(f"master {kind}: {m['path']} (reused)")
        for wmsg in res.warnings:
            print(f"warning: {wmsg}")
    return 0


def _library_for(args: argparse.Namespace, lights: list[str]) -> str | None:
    """``--library``, else the data root's library when the lights are under the data root."""
    if args.library:
        return args.library
    from ..config import ConfigError, load_config
    from ..library import default_db
    try:
        root = load_config(getattr(args, "config", None)).storage.root.resolve()
    except (ConfigError, OSError):
        return None
    if lights and all(Path(x).resolve().is_relative_to(root) for x in lights):
        return str(default_db(root))
    return None


def _queue(args: argparse.Namespace, sets: dict[str, list[str]]) -> int:
    """``--queue``: send the set to the running service (``stack.add``); 0 when queued,
    1 when no service answers or it refuses the set."""
    import asyncio

    from ..service.client import CommandFailed, RigClient, ServiceUnavailable
    from ..service.stack_worker import options_to_json
    try:
        opts = options_to_json(options_from(args))
    except ValueError as exc:
        print(f"fieldtui stack: {exc}", file=sys.stderr)
        return 2
    call = {k: [str(Path(x).resolve()) for x in v] for k, v in sets.items()}
    call["options"] = opts
    if args.out:
        call["out"] = str(Path(args.out).resolve())

    async def go():
        client = RigClient()
        await client.connect(timeout=5.0)
        try:
            return await client.command("stack.add", timeout=30.0, **call)
        finally:
            await client.close()

    try:
        jid = asyncio.run(go())
    except ServiceUnavailable:
        print("fieldtui stack: no rig service is running (start it: fieldtui service start), "
              "or stack here without --queue", file=sys.stderr)
        return 1
    except (CommandFailed, asyncio.TimeoutError) as exc:
        print(f"fieldtui stack: the service refused the set: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump({"queued": jid}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"set {jid} queued in the rig service's stacking worker (Stacking screen, or "
              "fieldtui service status)")
    return 0
