"""`fieldtui check`: is everything there, answering, and ready for the night?"""

from __future__ import annotations

import asyncio
import glob
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from .. import astro
from ..capture import sky
from ..devices.base import DeviceError, DeviceTimeout
from ..devices.proxy import DeviceBusy

if TYPE_CHECKING:
    from .session import Session

GUIDE_TEST_EXPOSURE_S = 0.5
MAIN_TEST_EXPOSURE_S = 0.2


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def cpu_temperature() -> float | None:
    """The hottest CPU/SoC sensor in degC, where the machine lets us read one."""
    try:
        import psutil
        temps = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
        values = [t.current for entries in temps.values() for t in entries if t.current]
        if values:
            return float(max(values))
    except Exception:  # noqa: BLE001 - sensors are best effort
        pass
    values = []
    for zone in glob.glob("/sys/class/thermal/thermal_zone*/temp"):
        try:
            values.append(int(Path(zone).read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return max(values) if values else None


def frame_stats(data: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(data.mean()), 1), "median": float(np.median(data)),
            "std": round(float(data.std()), 1), "min": int(data.min()), "max": int(data.max())}


def plan_bytes(session: "Session") -> float:
    c = session.cfg
    raw = c.main_camera.width * c.main_camera.height * 2 + 65536
    frames = c.plan.light_count + 4 * c.plan.calibration_count
    return raw * frames


async def _in_use(session: "Session", name: str, lease: Any) -> Check:
    """A camera another activity holds: its holder and its last frame, without touching it."""
    slot = session.slots[name]
    detail = f"{slot.status.model}: {session.busy_message(lease)}"
    frame, t = slot.use.last_frame, slot.use.last_frame_t
    if frame is None:
        return Check(name, True, detail + "; no frame yet")
    s = await session.clock.run_blocking(frame_stats, frame.data)
    age = max(0.0, session.clock.now() - t)
    detail += (f"; last frame {age:.0f} s ago, {frame.width}x{frame.height} px, {frame.exposure:g} s: "
               f"median {s['median']:g}, std {s['std']:g}, max {s['max']}")
    if s["max"] == s["min"]:
        return Check(name, False, detail + " — every pixel the same",
                     "the camera sends flat frames: reconnect it, check gain and exposure")
    return Check(name, True, detail)


async def _device_check(session: "Session", name: str) -> Check:
    slot = session.slots.get(name)
    if slot is None:
        return Check(name, True, "not configured (manual)")
    st = slot.status
    label = name.replace("_", " ")
    if st.state != "connected":
        return Check(name, False, f"{label} {st.state}: {st.error}", st.fix)
    lease = session.holder(name)
    if lease is not None and name in ("guide_camera", "main_camera"):
        return await _in_use(session, name, lease)
    try:
        dev = session.device(name, owner="check")
        if name == "guide_camera":
            async with session.leased(name, "check") as dev:
                frame = await dev.expose(GUIDE_TEST_EXPOSURE_S)
            s = frame_stats(frame.data)
            detail = (f"{st.model}, {frame.width}x{frame.height} px, {dev.pixel_um:g} µm, {dev.bit_depth}-bit "  # type: ignore[attr-defined]
                      f"({session.cfg.guide_scale:.2f}\"/px); test frame {GUIDE_TEST_EXPOSURE_S:g} s: "
                      f"median {s['median']:g}, std {s['std']:g}, max {s['max']}")
            if s["max"] == s["min"]:
                return Check(name, False, detail + " — every pixel the same",
                             "the camera sends flat frames: reconnect it, check gain and exposure")
            return Check(name, True, detail)
        if name == "main_camera":
            with tempfile.TemporaryDirectory(prefix="fieldtui-check-") as tmp:
                async with session.leased(name, "check") as dev:
                    frame = await dev.expose(MAIN_TEST_EXPOSURE_S, path=Path(tmp) / "check.dng", kind="light")
            s = frame_stats(frame.data)
            detail = (f"{st.model}, {frame.width}x{frame.height} px, {dev.pixel_um:g} µm, "  # type: ignore[attr-defined]
                      f"{frame.bayer or 'mono'}, black {frame.black_level:g}, white {frame.white_level:g} "
                      f"({session.cfg.main_scale:.2f}\"/px); test frame {MAIN_TEST_EXPOSURE_S:g} s read back "
                      f"from raw: median {s['median']:g}, max {s['max']}")
            return Check(name, True, detail)
        if name == "mount":
            ms = await dev.state()
            return Check(name, True, f"{st.model}: RA {astro.format_hms(ms.ra_deg)} Dec {ms.dec_deg:+.3f}°, "
                                     f"tracking {'on' if ms.tracking else 'OFF'}, pier {ms.pier_side}",
                         "" if ms.tracking else "switch tracking on")
        if name == "focuser":
            pos = await dev.position()
            return Check(name, True, f"{st.model}: position {pos} of {dev.max_position}")  # type: ignore[attr-defined]
        if name == "guide_port":
            return Check(name, True, f"{st.model}, guide rate {session.cfg.mount.guide_rate:g}x sidereal")
    except (TimeoutError, DeviceTimeout):
        return Check(name, False, f"{label} stopped answering", FIXES_TIMEOUT)
    except DeviceBusy as exc:  # taken between the look and the lease
        return Check(name, True, str(exc))
    except DeviceError as exc:
        return Check(name, False, f"{label}: {exc}", session.slots[name].status.fix or "reconnect it")
    except Exception as exc:  # noqa: BLE001 - a driver bug is a failed check, not a crash
        return Check(name, False, f"{label}: unexpected error {type(exc).__name__}: {exc}",
                     "run the check again; if it repeats, report it with the message")
    return Check(name, True, st.model)


FIXES_TIMEOUT = "power-cycle the device, reconnect its cable, then run the check again"


def _disk_check(session: "Session") -> Check:
    need = plan_bytes(session) / 1e9 + session.cfg.storage.min_free_gb
    free = session.disk_free_gb()
    root = session.cfg.storage.root
    detail = (f"{free:.1f} GB free at {root}; tonight's plan needs about {need:.1f} GB "
              f"({session.cfg.plan.light_count} lights + {4 * session.cfg.plan.calibration_count} calibration frames "
              f"+ {session.cfg.storage.min_free_gb:g} GB reserve)")
    if free < need:
        return Check("disk", False, detail, "free some space or point storage.data_root at a bigger disk")
    return Check("disk", True, detail)


def _clock_check(session: "Session") -> Check:
    now = session.clock.now()
    utc = datetime.fromtimestamp(now, timezone.utc)
    local = utc.astimezone(ZoneInfo(session.cfg.site.timezone))
    detail = (f"{utc:%Y-%m-%d %H:%M:%S} UTC, {local:%H:%M} local ({session.cfg.site.timezone}), "
              f"night of {astro.night_of(now, session.cfg.site.timezone)}")
    if session.clock.virtual:
        detail += " (simulated clock)"
    if utc.year < 2024:
        return Check("clock", False, detail + " — the system clock is not set",
                     "set the time (sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS') or give the computer "
                     "network or GPS time; coordinates and file dates depend on it")
    return Check("clock", True, detail)


def site_detail(now: float, site: Any, plan: Any, tonight: dict[str, Any]) -> Check:
    """The site check from :func:`fieldtui.capture.sky.target_tonight`'s answer: ok when the target
    stands above the altitude limit (``tonight["min_alt"]``, the config's ``site.min_altitude_deg``)
    during tonight's astronomical darkness (times in the site's local time)."""
    tz = ZoneInfo(site.timezone)

    def hm(t: float | None) -> str:
        return "–" if t is None else datetime.fromtimestamp(t, tz).strftime("%H:%M")

    lst = astro.local_sidereal_deg(now, site.longitude)
    alt = tonight["alt_now"]
    where = f"{plan.target} at altitude {alt:.0f}° now" + (" (below the horizon)" if alt < 0 else "")
    if tonight["rise"] is None and tonight["set"] is None:
        path = ("never sets (circumpolar)" if tonight["transit_alt"] > 0 else "never rises here") + \
            f", highest {tonight['transit_alt']:.0f}° at {hm(tonight['transit'])}"
    else:
        path = (f"rises {hm(tonight['rise'])}, transits {hm(tonight['transit'])} at "
                f"{tonight['transit_alt']:.0f}°, sets {hm(tonight['set'])}")
    dark = tonight["dark"]
    dark_s = (f"astronomical darkness {hm(dark[0])}–{hm(dark[1])}" if dark
              else "no astronomical darkness tonight (the Sun stays above −18°)")
    up = tonight["up_in_dark"]
    lim = tonight["min_alt"]
    up_s = (f"above {lim:g}° in darkness {hm(up[0])}–{hm(up[1])}" if up
            else f"never above {lim:g}° in darkness")
    detail = (f"lat {site.latitude:+.4f}°, lon {site.longitude:+.4f}°, {site.elevation_m:g} m; local sidereal "
              f"time {astro.format_hms(lst)}; {where}; {path} ({site.timezone}); {dark_s}; {up_s}")
    if not up:
        return Check("site", False, detail,
                     f"{plan.target} is not up in darkness tonight: pick a target that is "
                     "(plan.target, plan.ra_deg, plan.dec_deg) or check site latitude/longitude")
    return Check("site", True, detail)


async def _site_check(session: "Session") -> Check:
    s, p = session.cfg.site, session.cfg.plan
    now = session.clock.now()
    try:
        tonight = await session.clock.run_blocking(sky.target_tonight, now, s, p.ra_deg, p.dec_deg,
                                                   s.min_altitude_deg)
    except Exception as exc:  # noqa: BLE001 - the check reports, it does not crash
        return Check("site", False, f"could not compute where {p.target} is: {exc}",
                     "check site and plan in the config")
    return site_detail(now, s, p, tonight)


def cpu_check(load: float, cpus: int, temp: float | None) -> Check:
    """The CPU line of the check from the 1-minute load average, the number of cores and
    the hottest sensor (degC, None when unreadable). Overheating (>= 85 degC) fails; a
    load above 4x the cores passes with a warning in the detail: a busy computer still
    guides, only later."""
    detail = f"load {load:.2f} on {cpus} cores" + (f", {temp:.0f} °C" if temp is not None else ", temperature not readable")
    if temp is not None and temp >= 85:
        return Check("cpu", False, detail, "the computer is overheating: give it air or a fan")
    if load > 4 * cpus:
        return Check("cpu", True, detail + " (busy: something else is using the CPU, stop it before guiding)")
    return Check("cpu", True, detail)


def _cpu_check() -> Check:
    return cpu_check(os.getloadavg()[0], os.cpu_count() or 1, cpu_temperature())


async def run_checks(session: "Session") -> dict[str, Any]:
    if not session.started:
        await session.start()
    else:
        await session.wait_connected()
    names = ["guide_camera", "main_camera", "mount", "guide_port", "focuser"]
    device_checks = await asyncio.gather(*(_device_check(session, n) for n in names))
    checks = [*device_checks, *await _indi_check(session), _disk_check(session), _clock_check(session),
              await _site_check(session), _cpu_check()]
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks],
            "attached": await _attached(session)}


async def _indi_check(session: "Session") -> list[Check]:
    """With INDI devices configured: the server's devices and their connection state, and a
    configured device the server does not have (its driver is not running)."""
    from ..devices.indi import IndiServer
    roles = [r for r in ("guide_camera", "main_camera", "mount", "focuser")
             if getattr(session.cfg, r).driver == "indi"]
    if not roles:
        return []
    server = None
    for slot in session.slots.values():
        server = getattr(slot.device, "server", None)
        if isinstance(server, IndiServer):
            break
    if not isinstance(server, IndiServer):
        return []
    try:
        await server.start()
    except DeviceError as exc:
        return [Check("indi", False, str(exc),
                      "on the mount computer: indiserver with the drivers of the rig, e.g. "
                      "`indiserver indi_eqmod_telescope indi_asi_ccd` (README, INDI)")]
    devices = server.devices()
    listed = ", ".join(f"{n} ({'connected' if on else 'not connected'})" for n, on in sorted(devices.items()))
    missing = [f"{r}.indi_device {getattr(session.cfg, r).indi_device!r}" for r in roles
               if getattr(session.cfg, r).indi_device not in devices]
    detail = f"INDI server {server.where}: {listed or 'no devices'}"
    if missing:
        return [Check("indi", False, detail + "; missing: " + ", ".join(missing),
                      "start the missing device's driver with indiserver, or set indi_device to one of "
                      "the names listed")]
    return [Check("indi", True, detail)]


async def _attached(session: "Session") -> list[dict[str, Any]]:
    """What is plugged in (ZWO cameras, serial ports with what answers, gphoto2 cameras); the
    configured mount's port is not probed (its driver owns the line)."""
    from ..devices.discover import discover
    m = session.cfg.mount
    skip = {m.port} if m.port and m.driver != "sim" else set()
    try:
        return await session.clock.run_blocking(discover, session.cfg, skip_ports=skip)
    except Exception as exc:  # noqa: BLE001 - discovery never fails the check
        return [{"kind": "-", "where": "-", "what": f"discovery failed: {exc}", "answers": ""}]
