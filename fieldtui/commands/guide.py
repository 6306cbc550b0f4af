"""``fieldtui guide``: guide the simulated rig headless and print statistics.

    fieldtui guide --minutes 30 --fast --json
    fieldtui guide --minutes 30 --fast --no-corrections   # the mount unguided

Calibrates first (the calibration pulses are sent even with
``--no-corrections``; only guide corrections are held back), then guides
for the given minutes and reports RMS and peak errors along RA and Dec, the
star-lost count and, on the simulated rig, the seeing floor: the RMS a
perfect mount would still show from the star's random motion alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..guiding.events import Alert, GuideEvent, GuideState, GuideStep
from ..guiding.settings import GuideSettings


DESCRIPTION = "Guide the simulated rig and print guiding statistics."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--minutes``, ``--fast``, ``--json``, ``--no-corrections``, ``--log-dir``, ``--dither-every``,
    ``--seed``."""
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of guiding (after calibration)")
    p.add_argument("--fast", action="store_true", help="run on a virtual clock, as fast as the CPU allows")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--no-corrections", action="store_true",
                   help="measure only: send no guide corrections (the unguided mount)")
    p.add_argument("--log-dir", metavar="DIR",
                   help="write a PHD2-format guide log, PHD2_GuideLog_<date>_<time>.txt, in this "
                        "folder (made if missing)")
    p.add_argument("--dither-every", type=float, default=0.0, metavar="MIN",
                   help="dither every MIN minutes (and settle)")
    p.add_argument("--seed", type=int, default=None, help="override the simulator seed")


async def run_guide(cfg: Any, *, minutes: float, fast: bool, corrections: bool = True,
                    log_dir: str | None = None, dither_every_min: float = 0.0,
                    on_event: Any = None) -> dict[str, Any]:
    from ..clock import RealClock, VirtualClock
    from ..devices.sim import SimRig
    from ..service.guide_worker import GuideWorker

    clock = VirtualClock() if fast else RealClock()
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    mount, guide_port = rig.mount, rig.guide_port
    if cfg.mount.emulate:   # the simulated mount through an emulated hand controller and its serial driver
        from ..devices.factory import serial_path_devices
        mount, guide_port = await serial_path_devices(cfg, clock, rig)
    settings = GuideSettings.from_config(cfg)
    if not corrections:
        # Measuring the bare mount: the drift-away watchdog would recalibrate.
        settings = replace(settings, drift_time_s=math.inf)
    alerts: list[Alert] = []
    # True pointing error at each guided frame's mid-exposure, as running sums
    # (n, Σx, Σy, Σx², Σy²): the sky keeps only the last hour of pulses, and a
    # long run must not keep a list per frame.
    truth = [0, 0.0, 0.0, 0.0, 0.0]

    def collect(ev: GuideEvent) -> None:
        if isinstance(ev, Alert):
            alerts.append(ev)
        if isinstance(ev, GuideStep) and worker.engine.state == GuideState.GUIDING:
            t_mono = ev.t - (clock.now() - clock.monotonic())  # the sky runs on monotonic time
            ex, ey = rig.sky.mount_error(t_mono - settings.exposure_s / 2)
            for i, v in enumerate((1.0, float(ex), float(ey), float(ex) ** 2, float(ey) ** 2)):
                truth[i] += v
        if on_event is not None:
            on_event(ev)

    worker = GuideWorker(rig.guide_camera, guide_port, clock, settings, mount=mount,
                         pixel_scale=cfg.guide_scale, log_dir=log_dir, on_event=collect,
                         focal_mm=cfg.guide_scope.focal_length_mm, seed=cfg.sim.seed)
    worker.corrections = corrections
    await worker.calibrate(then_guide=True)
    log_path = worker.log.path if worker.log is not None else None
    # Wait for guiding to start (calibration takes a few minutes of clock time).
    deadline = clock.now() + 1800.0
    while worker.state != GuideState.GUIDING and clock.now() < deadline:
        if worker.engine.state == GuideState.LOOPING and worker.engine._pending is None:
            break  # calibration failed; the alert says why
        await clock.sleep(1.0)
    result: dict[str, Any] = {"minutes": minutes, "corrections": corrections}
    if worker.state != GuideState.GUIDING:
        await worker.stop()
        result["error"] = next((a.message for a in reversed(alerts) if a.level == "critical"),
                               "guiding did not start")
        return result
    t_start = clock.now()
    end = t_start + minutes * 60.0
    next_dither = t_start + dither_every_min * 60.0 if dither_every_min > 0 else math.inf
    dithers = settled = 0
    while clock.now() < end:
        if clock.now() >= next_dither and worker.state == GuideState.GUIDING:
            dithers += 1
            done = await worker.dither_and_settle()
            settled += int(bool(done and done.ok))
            next_dither = clock.now() + dither_every_min * 60.0
            continue
        await clock.sleep(min(5.0, max(end - clock.now(), 0.01)))
    await worker.stop()
    # A finished virtual clock must not keep its driver spinning in a shared loop
    # (a second clock in the same loop would never see the loop idle).
    driver = getattr(clock, "_driver", None)
    if driver is not None:
        driver.cancel()

    st = worker.engine.stats.total()
    cal = worker.engine.calibration
    result.update({
        "frames": st.frames,
        "rms_ra_arcsec": st.rms_ra_arcsec, "rms_dec_arcsec": st.rms_dec_arcsec,
        "rms_total_arcsec": st.rms_total_arcsec,
        "peak_ra_arcsec": st.peak_ra_arcsec, "peak_dec_arcsec": st.peak_dec_arcsec,
        "rms_ra_px": st.rms_ra_px, "rms_dec_px": st.rms_dec_px, "rms_total_px": st.rms_total_px,
        "star_lost_events": st.star_lost_events, "dropped_frames": st.dropped_frames,
        "ra_pulses": st.ra_pulses, "dec_pulses": st.dec_pulses,
        "pixel_scale_arcsec": cfg.guide_scale, "exposure_s": settings.exposure_s,
        "seeing_floor_arcsec": rig.sky.seeing_floor(settings.exposure_s),
        "alerts": [a.message for a in alerts if a.level in ("warning", "critical")],
        "dithers": dithers, "settled": settled,
    })
    if truth[0]:
        # True pointing error (the mount alone, without seeing), RMS about its mean.
        n, sx, sy, sxx, syy = truth
        result["true_rms_total_arcsec"] = math.sqrt(
            max(sxx / n - (sx / n) ** 2, 0.0) + max(syy / n - (sy / n) ** 2, 0.0))
    if cal is not None:
        result["calibration"] = {
            "camera_angle_deg": cal.ra_angle_deg, "ra_rate_px_s": cal.ra_rate,
            "dec_rate_px_s": cal.dec_rate, "flipped": cal.flipped,
            "orthogonality_error_deg": cal.orthogonality_error_deg, "warnings": cal.warnings}
    if worker.latencies_ms:
        # Wall time from a frame in hand to its pulses decided (star detection
        # in its thread included), over the last frames the worker keeps.
        lat = sorted(worker.latencies_ms)
        result["frame_to_pulse_ms_median"] = lat[len(lat) // 2]
        result["frame_to_pulse_ms_p99"] = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        result["frame_to_pulse_ms_max"] = lat[-1]
        result["frame_to_pulse_frames"] = len(lat)
    if log_dir:
        result["log_dir"] = str(Path(log_dir))
        result["guide_log"] = str(log_path) if log_path else None
    return result


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main(argv: list[str]) -> int:
    """``fieldtui guide`` with ``argv`` after the subcommand (for tests and scripts)."""
    p = argparse.ArgumentParser(prog="fieldtui guide", description=DESCRIPTION)
    p.add_argument("--config", metavar="FILE")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Exit status 2 for a config error or a rig that is not simulated, 1 when guiding did not
    start."""
    from ..config import load_config

    try:
        overrides = {"sim": {"seed": args.seed}} if args.seed is not None else None
        cfg = load_config(args.config, overrides=overrides)
    except Exception as exc:  # noqa: BLE001 - config errors name file and key
        print(f"fieldtui guide: {exc}", file=sys.stderr)
        return 2
    if args.log_dir and Path(args.log_dir).exists() and not Path(args.log_dir).is_dir():
        print(f"fieldtui guide: --log-dir {args.log_dir} is a file; give a folder (made if "
              "missing) for the guide logs", file=sys.stderr)
        return 2
    if not cfg.uses_simulator or cfg.guide_camera.driver != "sim":
        print("fieldtui guide: headless guiding runs on the simulated rig (guide_camera.driver = "
              "\"sim\"); real devices are guided by the rig service", file=sys.stderr)
        return 2
    res = asyncio.run(run_guide(cfg, minutes=args.minutes, fast=args.fast,
                                corrections=not args.no_corrections, log_dir=args.log_dir,
                                dither_every_min=args.dither_every))
    if args.json:
        print(json.dumps(res, indent=2))
    elif "error" in res:
        print(f"Guiding did not start: {res['error']}")
    else:
        print(f"Guided {res['minutes']:g} min, {res['frames']} frames"
              f"{'' if res['corrections'] else ' (no corrections)'}")
        print(f"RMS   RA {_fmt(res['rms_ra_arcsec'])}″  Dec {_fmt(res['rms_dec_arcsec'])}″  "
              f"total {_fmt(res['rms_total_arcsec'])}″  ({res['rms_total_px']:.3f} px)")
        print(f"Peak  RA {_fmt(res['peak_ra_arcsec'])}″  Dec {_fmt(res['peak_dec_arcsec'])}″")
        print(f"Seeing floor {res['seeing_floor_arcsec']:.2f}″ total; star lost "
              f"{res['star_lost_events']}×; dropped frames {res['dropped_frames']}")
        if "frame_to_pulse_ms_median" in res:
            print(f"Frame to pulse {res['frame_to_pulse_ms_median']:.1f} ms median, "
                  f"{res['frame_to_pulse_ms_p99']:.1f} ms p99, {res['frame_to_pulse_ms_max']:.1f} ms max "
                  "(wall time)")
        for a in res["alerts"]:
            print(f"! {a}")
        if res.get("guide_log"):
            print(f"Guide log {res['guide_log']}")
    return 1 if "error" in res else 0


