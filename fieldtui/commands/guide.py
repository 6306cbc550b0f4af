"""``fieldtui guide``: guide headless and print statistics.

    fieldtui guide --minutes 30 --fast --json
    fieldtui guide --minutes 30 --fast --no-corrections   # the mount unguided
    fieldtui guide --minutes 10 --goto --json             # an INDI rig, in real time

On the simulated rig (``guide_camera.driver = "sim"``) the rig is built in-process
(``--fast``: on the virtual clock). On an INDI rig (``guide_camera.driver = "indi"``) the
guide camera, guide port and mount are the configured INDI devices, in real time; the
statistics then also give the frame latency through INDI (exposure end to frame in hand).
``--goto`` first unparks the mount and slews to the config's ``[plan]`` target.

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


DESCRIPTION = ("Guide the simulated rig (or, in real time, an INDI rig) and print guiding statistics.")


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
    p.add_argument("--goto", action="store_true",
                   help="first unpark the mount and slew to the [plan] target (ra_deg, dec_deg)")
    p.add_argument("--assistant", action="store_true",
                   help="guiding assistant: calibrate, watch the star unguided for --minutes, measure "
                        "Dec backlash; print seeing, drift, polar error, periodic error, backlash and "
                        "recommended settings (also written to the guide log with --log-dir)")
    p.add_argument("--build-darks", action="store_true",
                   help="build the guide camera's dark library (darks and hot-pixel map per "
                        "exposure at the guiding gain; the simulated guide scope caps itself) and exit")
    p.add_argument("--dark-exposures", default="0.5,1,2,4", metavar="S,S,...",
                   help="exposures for --build-darks (seconds, comma-separated)")
    p.add_argument("--dark-frames", type=int, default=10, metavar="N",
                   help="darks per exposure for --build-darks (median of N)")
    p.add_argument("--darks", action="store_true",
                   help="guide with the dark library: subtract the closest dark, map out hot pixels")
    p.add_argument("--dark-dir", metavar="DIR",
                   help="the dark library's folder (default: guide_darks/ in the state folder)")



async def goto_target(mount: Any, cfg: Any) -> dict[str, Any]:
    """Unpark ``mount`` (when its driver can), slew to ``cfg.plan``'s RA/Dec (degrees) and make
    sure it tracks. Returns where the mount says it points after the slew. Raises DeviceError."""
    from ..devices.base import DeviceError
    unpark = getattr(mount, "unpark", None)
    if unpark is not None:
        await unpark()
    await mount.slew_to(cfg.plan.ra_deg, cfg.plan.dec_deg)
    st = await mount.state()
    if not st.tracking:
        try:
            await mount.set_tracking(True)
        except DeviceError:
            pass
        st = await mount.state()
    return {"target": cfg.plan.target, "ra_deg": cfg.plan.ra_deg, "dec_deg": cfg.plan.dec_deg,
            "mount_ra_deg": round(st.ra_deg, 5), "mount_dec_deg": round(st.dec_deg, 5),
            "tracking": st.tracking, "pier_side": st.pier_side}


class _LatencyCamera:
    """A guide camera that keeps the INDI frame latency of its frames (wall seconds from the
    exposure's end to the frame in hand, ``frame.meta["indi_latency_s"]``); everything else
    passes through."""

    def __init__(self, camera: Any) -> None:
        self._camera = camera
        self.latencies_s: list[float] = []

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._camera, attr)

    async def expose(self, *args: Any, **kw: Any) -> Any:
        frame = await self._camera.expose(*args, **kw)
        lat = frame.meta.get("indi_latency_s")
        if lat is not None:
            self.latencies_s = (self.latencies_s + [float(lat)])[-10000:]
        return frame


async def _real_rig(cfg: Any, clock: Any) -> tuple[Any, Any, Any, Any]:
    """(guide camera, guide port, mount, the INDI server or None) of a rig that is not simulated,
    connected; the mount is why it did not connect (a str) when it did not (guiding through the
    camera's ST4 port needs none). Raises DeviceError saying which device failed."""
    from ..devices.base import DeviceError
    from ..devices.factory import build_rig
    rig = build_rig(cfg, clock)
    d = rig.devices
    server = getattr(d["guide_camera"], "server", None)
    mount = d.get("mount")
    mount_error = ""
    for role in ("mount", "guide_camera", "guide_port"):
        if role not in d:
            continue
        try:
            await clock.wait_for(d[role].connect(), cfg.service.connect_timeout_s + 30.0)
        except TimeoutError:
            raise DeviceError(f"{role.replace('_', ' ')}: no answer while connecting") from None
        except DeviceError as exc:
            if role == "mount":   # guiding through the camera's ST4 port needs no mount
                mount = None
                mount_error = str(exc)
                continue
            raise DeviceError(f"{role.replace('_', ' ')}: {exc}") from None
    return _LatencyCamera(d["guide_camera"]), d["guide_port"], mount or mount_error, server


async def run_build_darks(cfg: Any, *, fast: bool, exposures: tuple[float, ...], frames: int,
                          dark_dir: str | None = None) -> dict[str, Any]:
    """Build the guide dark library on the simulated rig; a summary per exposure."""
    from ..clock import RealClock, VirtualClock
    from ..devices.sim import SimRig
    from ..service.guide_darks import DarkLibrary, build_dark_library

    clock = VirtualClock() if fast else RealClock()
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    lib = DarkLibrary(dark_dir)
    gain = cfg.guiding.gain if cfg.guiding.gain is not None else cfg.guide_camera.gain

    def cover(on: bool) -> None:
        rig.guide_covered = on

    darks = await build_dark_library(rig.guide_camera, clock, lib, gain=gain, exposures=exposures,
                                     frames=frames, cover=cover)
    driver = getattr(clock, "_driver", None)
    if driver is not None:
        driver.cancel()
    return {"folder": str(lib.folder), "gain": gain,
            "darks": [{"exposure_s": d.exposure_s, "frames": d.frames, "hot_pixels": d.hot_pixels,
                       "file": lib.file_name(d.exposure_s, d.gain)} for d in darks]}


async def run_assistant_cli(cfg: Any, *, minutes: float, fast: bool, log_dir: str | None = None,
                            darks: Any = None) -> dict[str, Any]:
    """The guiding assistant on the simulated rig: its findings, and the simulator's settings
    to compare them with."""
    from ..clock import RealClock, VirtualClock
    from ..devices.sim import SimRig
    from ..service.assistant import AssistantError, run_assistant
    from ..service.guide_worker import GuideWorker

    clock = VirtualClock() if fast else RealClock()
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    worker = GuideWorker(rig.guide_camera, rig.guide_port, clock, GuideSettings.from_config(cfg),
                         mount=rig.mount, pixel_scale=cfg.guide_scale, log_dir=log_dir,
                         focal_mm=cfg.guide_scope.focal_length_mm, seed=cfg.sim.seed, darks=darks)
    try:
        f = await run_assistant(worker, clock, minutes=minutes, pixel_scale=cfg.guide_scale,
                                dec_deg=cfg.plan.dec_deg)
        out: dict[str, Any] = {"findings": f.to_dict(), "lines": f.lines()}
    except AssistantError as exc:
        out = {"error": str(exc)}
    finally:
        driver = getattr(clock, "_driver", None)
        if driver is not None:
            driver.cancel()
    s = cfg.sim
    out["simulator"] = {"pe_amplitude_arcsec": s.pe_amplitude_arcsec, "pe_period_s": s.pe_period_s,
                        "polar_error_arcmin": s.polar_error_arcmin,
                        "ra_drift_arcsec_min": s.ra_drift_arcsec_min,
                        "dec_drift_arcsec_min": rig.sky.dec_drift_per_s * 60.0,
                        "backlash_arcsec": s.backlash_arcsec,
                        "seeing_jitter_arcsec": rig.sky.seeing_jitter_sigma(cfg.guiding.exposure_s)}
    if log_dir:
        logs = sorted(Path(log_dir).glob("PHD2_GuideLog_*.txt"), key=lambda p: p.stat().st_mtime)
        out["guide_log"] = str(logs[-1]) if logs else None
    return out


async def run_guide(cfg: Any, *, minutes: float, fast: bool, corrections: bool = True,
                    log_dir: str | None = None, dither_every_min: float = 0.0,
                    on_event: Any = None, goto: bool = False, darks: Any = None) -> dict[str, Any]:
    """Calibrate, guide ``minutes`` and return the statistics (see the module docstring).
    ``fast``: the simulated rig on the virtual clock. A real (INDI) rig that fails to connect
    or to go to the target gives ``{"error": ...}``."""
    from ..clock import RealClock, VirtualClock
    from ..devices.base import DeviceError
    from ..devices.sim import SimRig
    from ..service.guide_worker import GuideWorker

    clock = VirtualClock() if fast else RealClock()
    result: dict[str, Any] = {"minutes": minutes, "corrections": corrections}
    server = None
    if cfg.guide_camera.driver == "sim":
        rig = SimRig(cfg, clock)
        sky = rig.sky
        await rig.connect_all()
        camera, mount, guide_port = rig.guide_camera, rig.mount, rig.guide_port
        if cfg.mount.emulate:   # the simulated mount through an emulated hand controller and its serial driver
            from ..devices.factory import serial_path_devices
            mount, guide_port = await serial_path_devices(cfg, clock, rig)
    else:
        sky = None
        try:
            camera, guide_port, mount, server = await _real_rig(cfg, clock)
        except DeviceError as exc:
            result["error"] = str(exc)
            return result
    try:
        return await _guide(cfg, clock, result, camera, guide_port, mount, sky, minutes=minutes,
                            corrections=corrections, log_dir=log_dir, dither_every_min=dither_every_min,
                            on_event=on_event, goto=goto, server=server, darks=darks)
    finally:
        if server is not None:
            await server.close()
        # A virtual clock's driver left running (guiding that did not start returns early)
        # keeps the loop busy, and the next virtual clock in the same loop never sees it idle.
        driver = getattr(clock, "_driver", None)
        if driver is not None:
            driver.cancel()


async def _guide(cfg: Any, clock: Any, result: dict[str, Any], camera: Any, guide_port: Any, mount: Any,
                 sky: Any, *, minutes: float, corrections: bool, log_dir: str | None, dither_every_min: float,
                 on_event: Any, goto: bool, server: Any, darks: Any = None) -> dict[str, Any]:
    from ..devices.base import DeviceError
    from ..service.guide_worker import GuideWorker

    if isinstance(mount, str):
        result["mount_error"] = mount
        mount = None
    if goto:
        if mount is None:
            result["error"] = ("--goto needs a mount: the configured mount did not connect"
                               + (f" ({result['mount_error']})" if result.get("mount_error") else ""))
            return result
        t0 = clock.now()
        try:
            result["goto"] = await goto_target(mount, cfg)
            result["goto"]["seconds"] = round(clock.now() - t0, 1)
        except (DeviceError, ValueError) as exc:
            result["error"] = f"goto {cfg.plan.target}: {exc}"
            return result
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
        if isinstance(ev, GuideStep) and worker.engine.state == GuideState.GUIDING and sky is not None:
            t_mono = ev.t - (clock.now() - clock.monotonic())  # the sky runs on monotonic time
            ex, ey = sky.mount_error(t_mono - settings.exposure_s / 2)
            for i, v in enumerate((1.0, float(ex), float(ey), float(ex) ** 2, float(ey) ** 2)):
                truth[i] += v
        if on_event is not None:
            on_event(ev)

    # A real camera says its pixel size (INDI: CCD_INFO) when it connects
    scale = 206.265 * camera.pixel_um / cfg.guide_scope.focal_length_mm if sky is None else cfg.guide_scale
    worker = GuideWorker(camera, guide_port, clock, settings, mount=mount,
                         pixel_scale=scale, log_dir=log_dir, on_event=collect,
                         focal_mm=cfg.guide_scope.focal_length_mm, seed=cfg.sim.seed,
                         darks=darks)
    worker.corrections = corrections
    t_cal = clock.now()
    await worker.calibrate(then_guide=True)
    log_path = worker.log.path if worker.log is not None else None
    # Wait for guiding to start (calibration takes a few minutes of clock time).
    deadline = clock.now() + 1800.0
    while worker.state != GuideState.GUIDING and clock.now() < deadline:
        if worker.engine.state == GuideState.LOOPING and worker.engine._pending is None:
            break  # calibration failed; the alert says why
        if worker.failure is not None:
            break
        await clock.sleep(1.0)
    if worker.state != GuideState.GUIDING or worker.failure is not None:
        failure = worker.failure
        state = worker.state.value
        await worker.stop()
        if failure is not None:
            result["error"] = _loop_error(failure)
        else:
            result["error"] = next((a.message for a in reversed(alerts) if a.level == "critical"),
                                   f"the guider was still {state} after 30 minutes")
        return result
    t_start = clock.now()
    result["calibration_s"] = round(t_start - t_cal, 1)
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
        if worker.failure is not None:
            break
        await clock.sleep(min(5.0, max(end - clock.now(), 0.01)))
    failure = worker.failure
    await worker.stop()
    if failure is not None:
        result["error"] = _loop_error(failure)
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
        "pixel_scale_arcsec": scale, "exposure_s": settings.exposure_s,
        "seeing_floor_arcsec": sky.seeing_floor(settings.exposure_s) if sky is not None else None,
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
            "dec_rate_px_s": cal.dec_rate, "flipped": cal.flipped, "mirrored": cal.mirrored,
            "dec_reversed": cal.dec_reversed,
            "orthogonality_error_deg": cal.orthogonality_error_deg, "warnings": cal.warnings}
    if worker.latencies_ms:
        # Wall time from a frame in hand to its pulses decided (star detection
        # in its thread included), over the last frames the worker keeps.
        lat = sorted(worker.latencies_ms)
        result["frame_to_pulse_ms_median"] = lat[len(lat) // 2]
        result["frame_to_pulse_ms_p99"] = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        result["frame_to_pulse_ms_max"] = lat[-1]
        result["frame_to_pulse_frames"] = len(lat)
    lat_s = sorted(getattr(camera, "latencies_s", []))
    if lat_s:
        # Through INDI: exposure end to frame in hand (the driver's readout, the BLOB's
        # transfer and the FITS decoding), wall seconds.
        result["frame_latency_s_median"] = round(lat_s[len(lat_s) // 2], 3)
        result["frame_latency_s_max"] = round(lat_s[-1], 3)
        result["frame_latency_frames"] = len(lat_s)
    if server is not None:
        result["rig"] = f"INDI server {server.where}"
        result["server_notices"] = [text for _, text in server.notices]
    if darks is not None:
        # With --darks: the dark the frames had subtracted (None: none fitted the frames,
        # and an alert says so), so a run shows it used the library.
        gd = worker.dark_in_use
        result["guide_dark"] = None if gd is None else {
            "exposure_s": gd.exposure_s, "gain": gd.gain, "hot_pixels": gd.hot_pixels,
            "file": str(Path(darks.folder) / darks.file_name(gd.exposure_s, gd.gain))}
    if log_dir:
        result["log_dir"] = str(Path(log_dir))
        result["guide_log"] = str(log_path) if log_path else None
    return result


def _loop_error(exc: BaseException) -> str:
    """The exception that ended the guide loop, as the user reads it."""
    return f"the guide loop stopped on an error: {type(exc).__name__}: {exc}"


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main(argv: list[str]) -> int:
    """``fieldtui guide`` with ``argv`` after the subcommand (for tests and scripts)."""
    p = argparse.ArgumentParser(prog="fieldtui guide", description=DESCRIPTION)
    p.add_argument("--config", metavar="FILE")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Exit status 2 for a config error, a guide camera that is neither simulated nor INDI, or
    ``--fast`` on a real rig; 1 when guiding did not start."""
    from ..config import load_config

    try:
        overrides = {"sim": {"seed": args.seed}} if args.seed is not None else None
        cfg = load_config(args.config, overrides=overrides)
    except Exception as exc:  # noqa: BLE001 - config errors name file and key
        print(f"fieldtui guide: {exc}", file=sys.stderr)
        return 2
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        print(f"fieldtui guide: --minutes {args.minutes:g}: give a positive number of minutes to "
              "guide for", file=sys.stderr)
        return 2
    if not (math.isfinite(args.dither_every) and args.dither_every >= 0):
        print(f"fieldtui guide: --dither-every {args.dither_every:g}: give the minutes between "
              "dithers (0 = no dithering)", file=sys.stderr)
        return 2
    if args.log_dir and Path(args.log_dir).exists() and not Path(args.log_dir).is_dir():
        print(f"fieldtui guide: --log-dir {args.log_dir} is a file; give a folder (made if "
              "missing) for the guide logs", file=sys.stderr)
        return 2
    if cfg.guide_camera.driver not in ("sim", "indi"):
        print("fieldtui guide: headless guiding runs on the simulated rig or an INDI rig "
              "(guide_camera.driver = \"sim\" or \"indi\"); other real devices are guided by the rig "
              "service", file=sys.stderr)
        return 2
    if cfg.guide_camera.driver != "sim":
        if args.fast:
            print("fieldtui guide: --fast runs the simulated rig on a virtual clock; a real rig guides "
                  "in real time (leave out --fast)", file=sys.stderr)
            return 2
        from .running import service_status
        status = asyncio.run(service_status())
        if status is not None:
            print(f"fieldtui guide: the rig service (pid {status.get('pid')}) owns the devices: guide from "
                  "the client, or stop the service (fieldtui service stop) first", file=sys.stderr)
            return 2
    if args.build_darks:
        if cfg.guide_camera.driver != "sim":
            print("fieldtui guide: --build-darks runs on the simulated rig; build a real guide "
                  "camera's darks from the client's Guiding screen (D)", file=sys.stderr)
            return 2
        try:
            exposures = tuple(float(v) for v in args.dark_exposures.split(",") if v.strip())
            if not exposures or any(e <= 0 for e in exposures):
                raise ValueError
        except ValueError:
            print(f"fieldtui guide: --dark-exposures {args.dark_exposures!r}: give positive "
                  "seconds separated by commas, e.g. 0.5,1,2,4", file=sys.stderr)
            return 2
        if args.dark_frames < 3:
            print(f"fieldtui guide: --dark-frames {args.dark_frames}: take at least 3 darks per "
                  "exposure (their median is the master dark)", file=sys.stderr)
            return 2
        out = asyncio.run(run_build_darks(cfg, fast=args.fast, exposures=exposures,
                                          frames=args.dark_frames, dark_dir=args.dark_dir))
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            for d in out["darks"]:
                print(f"Dark {d['exposure_s']:g} s, gain {out['gain']}: median of {d['frames']}, "
                      f"{d['hot_pixels']} hot pixels mapped")
            print(f"Dark library {out['folder']}")
        return 0
    library = None
    if args.darks:
        from ..service.guide_darks import DarkLibrary
        library = DarkLibrary(args.dark_dir)
        if not library.load_all():
            print(f"fieldtui guide: no guide darks in {library.folder}: build them first with "
                  "fieldtui guide --build-darks", file=sys.stderr)
            return 2
    if args.assistant:
        if cfg.guide_camera.driver != "sim":
            print("fieldtui guide: --assistant runs on the simulated rig; on a real rig run the "
                  "guiding assistant from the client's Guiding screen (A)", file=sys.stderr)
            return 2
        if not args.minutes > 0:
            print(f"fieldtui guide: --minutes {args.minutes:g}: the assistant needs a positive "
                  "time to watch the star (10 is a good start)", file=sys.stderr)
            return 2
        out = asyncio.run(run_assistant_cli(cfg, minutes=args.minutes, fast=args.fast,
                                            log_dir=args.log_dir, darks=library))
        if args.json:
            print(json.dumps(out, indent=2))
        elif "error" in out:
            print(out["error"])
        else:
            print("\n".join(out["lines"]))
        return 1 if "error" in out else 0
    res = asyncio.run(run_guide(cfg, minutes=args.minutes, fast=args.fast,
                                corrections=not args.no_corrections, log_dir=args.log_dir,
                                dither_every_min=args.dither_every, goto=args.goto, darks=library))
    if args.json:
        print(json.dumps(res, indent=2))
    elif "error" in res:
        print(f"Guiding {'stopped' if 'frames' in res else 'did not start'}: {res['error']}")
    else:
        print(f"Guided {res['minutes']:g} min, {res['frames']} frames"
              f"{'' if res['corrections'] else ' (no corrections)'}")
        print(f"RMS   RA {_fmt(res['rms_ra_arcsec'])}″  Dec {_fmt(res['rms_dec_arcsec'])}″  "
              f"total {_fmt(res['rms_total_arcsec'])}″  ({res['rms_total_px']:.3f} px)")
        print(f"Peak  RA {_fmt(res['peak_ra_arcsec'])}″  Dec {_fmt(res['peak_dec_arcsec'])}″")
        if res.get("goto"):
            g = res["goto"]
            print(f"Went to {g['target']}: mount at RA {g['mount_ra_deg']:.4f}° Dec {g['mount_dec_deg']:+.4f}°, "
                  f"tracking {'on' if g['tracking'] else 'OFF'}")
        floor = res["seeing_floor_arcsec"]
        print(f"{f'Seeing floor {floor:.2f}″ total; ' if floor is not None else ''}star lost "
              f"{res['star_lost_events']}×; dropped frames {res['dropped_frames']}")
        if "frame_latency_s_median" in res:
            print(f"Frame latency through INDI {res['frame_latency_s_median']:.2f} s median, "
                  f"{res['frame_latency_s_max']:.2f} s max (exposure end to frame in hand)")
        if "frame_to_pulse_ms_median" in res:
            print(f"Frame to pulse {res['frame_to_pulse_ms_median']:.1f} ms median, "
                  f"{res['frame_to_pulse_ms_p99']:.1f} ms p99, {res['frame_to_pulse_ms_max']:.1f} ms max "
                  "(wall time)")
        if res.get("guide_dark"):
            d = res["guide_dark"]
            print(f"Guide dark of {d['exposure_s']:g} s at gain {d['gain']} subtracted, "
                  f"{d['hot_pixels']} hot pixels mapped out ({d['file']})")
        for a in res["alerts"]:
            print(f"! {a}")
        if res.get("guide_log"):
            print(f"Guide log {res['guide_log']}")
    return 1 if "error" in res else 0


