"""``fieldtui guidelog FILE... [--json]``: what a PHD2-format guide log says, per guiding run.

Reads the logs PHD2 writes, and those KStars/Ekos, ASIAIR and fieldtui
write in its format.  For each guiding run: the date, camera and mount,
pixel scale, frames used and dropped, RMS and peak errors along RA and Dec
in pixels and, where the log gives the pixel scale, arc-seconds; dithers,
star-lost events, alerts, and the result of each calibration made before
it.  Damaged rows and runs are listed with their line numbers; the rest of
the file still reads.  A file that is missing, unreadable or not a guide
log is an error naming it (exit status 1) and the other files still read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DESCRIPTION = ("Summarise PHD2-format guide logs (PHD2's own, KStars/Ekos's, ASIAIR's, fieldtui's): "
               "per guiding run the date, camera and mount, pixel scale, frames, RMS and peak errors "
               "in px and arc-seconds, dithers, star-lost events and each calibration's result.")
EPILOG = ("Arc-seconds are shown only where the log gives the pixel scale. RMS is the standard "
          "deviation about the mean along each axis, as PHD2 and its Log Viewer compute it, over "
          "every frame that is not dropped, settling after dithers included as PHD2 Log Viewer "
          "does; the RMS without the settling frames (what fieldtui's guider reports) is shown "
          "too. Exit status 1 when a file could not be read.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``FILE...`` and ``--json``."""
    p.add_argument("files", nargs="+", metavar="FILE", help="guide log files (PHD2_GuideLog_*.txt …)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of runs (each with its file, run number and calibrations)")


def _px(v: float | None) -> str:
    return "?" if v is None else f"{v:.3f} px"


def _as(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}″ "


def _pair(arcsec: float | None, px: float) -> str:
    return f"{_as(arcsec)}({px:.3f} px)" if arcsec is not None else f"{px:.3f} px"


def _cal_line(c: dict[str, Any]) -> str:
    parts = [f"Calibration {c['started']}: {c['status']}"]
    if c["failure"] and c["failure"] != "Calibration complete (Failed)":
        parts[0] += f" ({c['failure']})"
    parts.append(f"{c['steps']} steps" + (f", star lost {c['star_lost']}×" if c["star_lost"] else ""))
    for label, axis in (("RA", c["ra"]), ("Dec", c["dec"])):
        if axis is not None:
            rate = f", {axis['rate_px_s']:.3f} px/s" if axis["rate_px_s"] is not None else ""
            parts.append(f"{label} angle {axis['angle_deg']:.1f}°{rate}")
    return "; ".join(parts)


def format_run(r: dict[str, Any], n_runs: int) -> list[str]:
    """The text lines for one run of :func:`fieldtui.guiding.log.log_runs` (with ``file``)."""
    out: list[str] = []
    head = f"{r['file']}: run {r['run']} of {n_runs}"
    if not r["guided"]:
        out.append(f"{head}: calibration only, no guiding")
    else:
        span = f"{r['started']} to {r['ended'] or '(no end recorded)'}, {r['duration_s']:.0f} s"
        what = "guiding" if r.get("guiding_enabled", True) else "unguided (guiding disabled)"
        out.append(f"{head}: {what} {span}" + (f" [{r['program']}]" if r.get("program") else ""))
        out.append(f"  Camera {r['camera'] or 'not given'}; mount {r['mount'] or 'not given'}"
                   + (f"; exposure {r['exposure_ms']:g} ms" if r["exposure_ms"] else ""))
        k = r["pixel_scale_arcsec_px"]
        if k:
            extra = []
            if r["binning"]:
                extra.append(f"binning {r['binning']}")
            if r["focal_length_mm"]:
                extra.append(f"focal length {r['focal_length_mm']:g} mm")
            out.append(f"  Pixel scale {k:g}″/px" + (f" ({', '.join(extra)})" if extra else ""))
        else:
            out.append("  Pixel scale not in the log: errors in pixels only")
        out.append(f"  Frames {r['frames']} used, {r['dropped']} dropped; star lost "
                   f"{r['star_lost_events']}×; dithers {r['dithers']}"
                   + (f" (settled {r['settled']}, failed {r['settle_failed']})" if r["dithers"] else ""))
        if r["frames"]:
            rms = "RMS  " if r.get("guiding_enabled", True) else "unguided RMS"
            out.append(f"  {rms} RA {_pair(r['rms_ra_arcsec'], r['rms_ra_px'])}  "
                       f"Dec {_pair(r['rms_dec_arcsec'], r['rms_dec_px'])}  "
                       f"total {_pair(r['rms_total_arcsec'], r['rms_total_px'])}")
            out.append(f"  Peak  RA {_pair(r['peak_ra_arcsec'], r['peak_ra_px'])}  "
                       f"Dec {_pair(r['peak_dec_arcsec'], r['peak_dec_px'])}")
            x = r["excluding_settling"]
            if r["dithers"] and x["frames"] and x["frames"] < r["frames"]:
                out.append(f"  Without the {r['frames'] - x['frames']} settling frames: RMS total "
                           f"{_pair(x['rms_total_arcsec'], x['rms_total_px'])}")
        for a in r["alerts"]:
            out.append(f"  ! Alert: {a}")
    for c in r["calibrations"]:
        out.append("  " + _cal_line(c))
        for a in c["alerts"]:
            out.append(f"    ! {a}")
        for p in c["problems"]:
            out.append(f"    ! damaged: {p}")
    for p in r["problems"]:
        out.append(f"  ! damaged: {p}")
    return out


def run(args: argparse.Namespace) -> int:
    """Exit status 1 when a file could not be read (the others are still shown)."""
    from ..guiding.log import GuideLogError, log_runs, read_guide_log

    failed = 0
    everything: list[dict[str, Any]] = []
    for name in args.files:
        try:
            log = read_guide_log(name)
        except (OSError, GuideLogError) as exc:
            failed += 1
            if isinstance(exc, OSError) and exc.filename is not None:
                msg = f"{exc.filename}: {exc.strerror}"
            else:
                msg = str(exc)
            print(f"fieldtui guidelog: {msg}", file=sys.stderr)
            continue
        runs = [{"file": name, **r} for r in log_runs(log)]
        everything += runs
        if not args.json:
            for r in runs:
                print("\n".join(format_run(r, len(runs))))
                print()
    if args.json:
        print(json.dumps(everything, indent=2, ensure_ascii=False))
    return 1 if failed else 0
