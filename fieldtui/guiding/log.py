"""The guide log, in PHD2's guide log format (version 2.5).

One file per night, ``PHD2_GuideLog_YYYY-MM-DD_HHMMSS.txt``, so PHD2 Log
Viewer and the other tools that read PHD2 logs open it.  The layout is
PHD2's: a version line, then for each calibration a header, the
``Direction,Step,dx,dy,x,y,Dist`` table and its results; for each guiding
session a header (pixel scale, camera, mount with its calibration,
algorithms, lock position) and the
``Frame,Time,mount,dx,dy,RARawDistance,…,SNR,ErrorCode`` table with
``INFO:`` lines for dithers, settling and alerts.  A blank line ends a
section, so none is written inside one.

:class:`GuideLogWriter` turns engine events into lines;
:func:`parse_guide_log` reads a log back (ours or PHD2's).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

try:
    from importlib.metadata import version as _pkg_version
    _version = _pkg_version("fieldtui")
except Exception:  # noqa: BLE001 - running from a source tree
    _version = "dev"
from .events import (
    Alert, CalibrationDone, CalibrationFailed, CalibrationStarted, CalibrationStep, DitherStarted,
    FrameDropped, GuideEvent, GuideState, GuideStep, GuidingStarted, GuidingStopped,
    LockPositionSet, SettleDone, StateChanged,
)

LOG_VERSION = "2.5"
GUIDE_HEADING = ("Frame,Time,mount,dx,dy,RARawDistance,DECRawDistance,RAGuideDistance,"
                 "DECGuideDistance,RADuration,RADirection,DECDuration,DECDirection,XStep,YStep,"
                 "StarMass,SNR,ErrorCode")
CAL_HEADING = "Direction,Step,dx,dy,x,y,Dist"


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def guide_log_name(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("PHD2_GuideLog_%Y-%m-%d_%H%M%S.txt")


class GuideLogWriter:
    """Write engine events as a PHD2 guide log.  Each line is flushed (and
    fsynced when ``fsync``), so a crash loses nothing already logged."""

    def __init__(self, target: str | Path | IO[str], t: float, *, camera: str = "",
                 mount: str = "ST4", exposure_s: float = 1.0, gain: int | None = None,
                 focal_mm: float | None = None, fsync: bool = False) -> None:
        if isinstance(target, (str, Path)):
            path = Path(target)
            if path.is_dir():
                path = path / guide_log_name(t)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.path: Path | None = path
            self._f: IO[str] = open(path, "a", encoding="utf-8")
            self._own = True
        else:
            self.path = None
            self._f = target
            self._own = False
        self.camera = camera or "Guide camera"
        self.mount = mount
        self.exposure_s = exposure_s
        self.gain = gain
        self.focal_mm = focal_mm
        self.fsync = fsync
        self._section: str | None = None  # "cal" or "guide"
        self._pending_cal: CalibrationDone | None = None
        self._write(f"PHD2 version fieldtui {_version}, Log version {LOG_VERSION}. "
                    f"Log enabled at {_stamp(t)}")

    # -------------------------------------------------------------- plumbing
    def _write(self, line: str) -> None:
        self._f.write(line + "\n")
        self._f.flush()
        if self.fsync and self._own:
            os.fsync(self._f.fileno())

    def close(self, t: float | None = None) -> None:
        if self._section == "guide" and t is not None:
            self._write(f"Guiding Ends at {_stamp(t)}")
        self._section = None
        if t is not None:
            self._write("")
            self._write(f"Log closed at {_stamp(t)}")
        if self._own:
            self._f.close()

    def _end_section(self, t: float) -> None:
        if self._section == "guide":
            self._write(f"Guiding Ends at {_stamp(t)}")
        elif self._section == "cal":
            self._write("")
        self._section = None

    # ---------------------------------------------------------------- events
    def handle(self, ev: GuideEvent) -> None:
        h = getattr(self, "_on_" + type(ev).__name__, None)
        if h is not None:
            h(ev)

    def _on_CalibrationStarted(self, ev: CalibrationStarted) -> None:
        self._end_section(ev.t)
        self._write("")
        self._write(f"Calibration Begins at {_stamp(ev.t)}")
        self._write("Equipment Profile = fieldtui")
        self._write(f"Camera = {self.camera}")
        self._write(f"Exposure = {self.exposure_s * 1000:.0f} ms")
        self._write(f"Mount = {self.mount}, Calibration Step = {ev.ra_step_ms} ms, "
                    f"Dec step = {ev.dec_step_ms} ms")
        self._write(f"Lock position = {ev.x:.3f}, {ev.y:.3f}, Star position = {ev.x:.3f}, "
                    f"{ev.y:.3f}, HFD = {ev.hfd:.2f} px")
        self._write(CAL_HEADING)
        self._section = "cal"

    def _on_CalibrationStep(self, ev: CalibrationStep) -> None:
        if self._section != "cal":
            return
        self._write(f"{ev.direction},{ev.step},{ev.dx:.3f},{ev.dy:.3f},{ev.x:.3f},{ev.y:.3f},"
                    f"{ev.dist:.3f}")

    def _on_CalibrationDone(self, ev: CalibrationDone) -> None:
        if ev.reused:
            return
        parity = "Odd" if ev.flipped else "Even"
        self._write(f"West calibration complete. Angle = {ev.ra_angle_deg:.1f} deg, "
                    f"Rate = {ev.ra_rate_px_s:.3f} px/sec, Parity = Even")
        self._write(f"North calibration complete. Angle = {ev.dec_angle_deg:.1f} deg, "
                    f"Rate = {ev.dec_rate_px_s:.3f} px/sec, Parity = {parity}")
        for w in ev.warnings:
            self._write(f"INFO: Calibration alert: {w}")

    def _on_CalibrationFailed(self, ev: CalibrationFailed) -> None:
        if self._section == "cal":
            self._write(f"Calibration failed: {ev.reason}")
            self._end_section(ev.t)

    def _on_StateChanged(self, ev: StateChanged) -> None:
        if ev.old == GuideState.CALIBRATING and ev.new != GuideState.STAR_LOST and self._section == "cal":
            if ev.new in (GuideState.GUIDING, GuideState.LOOPING) and "fail" not in ev.reason:
                self._write(f"Calibration complete, mount = {self.mount}.")
            self._end_section(ev.t)

    def _on_GuidingStarted(self, ev: GuidingStarted) -> None:
        self._end_section(ev.t)
        cal = ev.calibration
        s = ev.settings
        self._write("")
        self._write(f"Guiding Begins at {_stamp(ev.t)}")
        self._write(f"Dither = {'RA only' if s.get('dither_ra_only') else 'both axes'}, "
                    f"Dither scale = 1.000, Image noise reduction = none, "
                    f"Guide-frame time lapse = {s.get('cycle_time_s', 0) * 1000:.0f}")
        ps = ev.pixel_scale
        focal = f"{self.focal_mm:.0f} mm" if self.focal_mm else "Unknown"
        self._write(f"Pixel scale = {ps if ps else 1.0:.2f} arc-sec/px, Binning = 1, Focal length = {focal}")
        self._write(f"Search region = {s.get('box_px', 25) // 2} px, Star mass tolerance = "
                    f"{'disabled' if not s.get('mass_change') else s.get('mass_change')}")
        self._write("Equipment Profile = fieldtui")
        self._write(f"Camera = {self.camera}, gain = {self.gain if self.gain is not None else 'N/A'}")
        self._write(f"Exposure = {ev.exposure_s * 1000:.0f} ms")
        parity = "Odd" if cal.get("flipped") else "Even"
        self._write(f"Mount = {self.mount},  connected, guiding enabled, "
                    f"xAngle = {cal['ra_angle_deg']:.1f}, xRate = {cal['ra_rate_px_s']:.3f}, "
                    f"yAngle = {cal['dec_angle_deg']:.1f}, yRate = {cal['dec_rate_px_s']:.3f}, "
                    f"parity = Even/{parity}")
        self._write(f"X guide algorithm = {ev.ra_algorithm}")
        self._write(f"Y guide algorithm = {ev.dec_algorithm}")
        self._write(f"Max RA duration = {s.get('max_ra_pulse_ms')}, Max DEC duration = "
                    f"{s.get('max_dec_pulse_ms')}, DEC guide mode = {str(s.get('dec_mode', 'auto')).title()}")
        dec = f"{ev.dec_deg:.1f} deg" if ev.dec_deg is not None else "Unknown"
        self._write(f"Dec = {dec}, Hour angle = Unknown, Pier side = {ev.pier_side.title()}, "
                    f"Rotator pos = N/A")
        self._write(f"Lock position = {ev.lock_x:.3f}, {ev.lock_y:.3f}, Star position = "
                    f"{ev.star_x:.3f}, {ev.star_y:.3f}, HFD = {ev.hfd:.2f} px")
        self._write(GUIDE_HEADING)
        self._section = "guide"

    def _on_GuideStep(self, ev: GuideStep) -> None:
        if self._section != "guide":
            return
        self._write(f'{ev.frame},{ev.elapsed:.3f},"Mount",{ev.dx:.3f},{ev.dy:.3f},{ev.ra_px:.3f},'
                    f'{ev.dec_px:.3f},{ev.ra_guide_px:.3f},{ev.dec_guide_px:.3f},'
                    f'{ev.ra_ms},{ev.ra_dir if ev.ra_ms else ""},{ev.dec_ms},'
                    f'{ev.dec_dir if ev.dec_ms else ""},,,{ev.mass:.0f},{ev.snr:.2f},0')

    def _on_FrameDropped(self, ev: FrameDropped) -> None:
        if self._section != "guide":
            return
        reason = ev.reason.replace('"', "'")
        self._write(f'{ev.frame},{ev.elapsed:.3f},"DROP",,,,,,,,,,,,,{ev.mass:.0f},{ev.snr:.2f},'
                    f'{ev.error_code},"{reason}"')

    def _on_DitherStarted(self, ev: DitherStarted) -> None:
        if self._section != "guide":
            return
        self._write(f"INFO: DITHER by {ev.dx:.3f}, {ev.dy:.3f}, new lock pos = {ev.lock_x:.3f}, "
                    f"{ev.lock_y:.3f}")
        self._write("INFO: SETTLING STATE CHANGE, Settling started")

    def _on_SettleDone(self, ev: SettleDone) -> None:
        if self._section != "guide":
            return
        if ev.ok:
            self._write("INFO: SETTLING STATE CHANGE, Settling complete")
        else:
            self._write(f"INFO: SETTLING STATE CHANGE, Settling failed: {ev.reason}")

    def _on_LockPositionSet(self, ev: LockPositionSet) -> None:
        if self._section == "guide" and ev.reason not in ("dither", "guiding started"):
            self._write(f"INFO: SET LOCK POSITION, new lock pos = {ev.x:.3f}, {ev.y:.3f}")

    def _on_Alert(self, ev: Alert) -> None:
        if self._section == "guide":
            self._write(f"INFO: ALERT: {ev.message}")

    def _on_GuidingStopped(self, ev: GuidingStopped) -> None:
        if self._section == "guide":
            self._end_section(ev.t)
            self._write("")


# ---------------------------------------------------------------------------
# Reading logs back
# ---------------------------------------------------------------------------

@dataclass
class LogEntry:
    frame: int
    time: float
    mount: str  # "Mount", "AO" or "DROP"
    dx: float = 0.0
    dy: float = 0.0
    ra_raw: float = 0.0
    dec_raw: float = 0.0
    ra_guide: float = 0.0
    dec_guide: float = 0.0
    ra_ms: int = 0
    ra_dir: str = ""
    dec_ms: int = 0
    dec_dir: str = ""
    mass: float = 0.0
    snr: float = 0.0
    error: int = 0
    info: str = ""

    @property
    def included(self) -> bool:
        return self.mount != "DROP" and not (self.error and self.mass == 0)


@dataclass
class GuideSession:
    started: str
    header: list[str] = field(default_factory=list)
    entries: list[LogEntry] = field(default_factory=list)
    infos: list[tuple[int, str]] = field(default_factory=list)  # (entry index, text)
    pixel_scale: float = 1.0
    x_angle: float = 0.0
    x_rate: float = 1.0
    y_angle: float = 90.0
    y_rate: float = 1.0
    ended: str = ""

    def _axis(self, attr: str) -> tuple[float, float]:
        vals = [getattr(e, attr) for e in self.entries if e.included]
        if not vals:
            return 0.0, 0.0
        m = sum(vals) / len(vals)
        rms = math.sqrt(max(sum(v * v for v in vals) / len(vals) - m * m, 0.0))
        return rms, max(vals, key=abs)

    @property
    def rms_ra_px(self) -> float:
        return self._axis("ra_raw")[0]

    @property
    def rms_dec_px(self) -> float:
        return self._axis("dec_raw")[0]

    @property
    def rms_total_px(self) -> float:
        return math.hypot(self.rms_ra_px, self.rms_dec_px)

    @property
    def peak_ra_px(self) -> float:
        return abs(self._axis("ra_raw")[1])

    @property
    def peak_dec_px(self) -> float:
        return abs(self._axis("dec_raw")[1])

    @property
    def duration(self) -> float:
        return self.entries[-1].time if self.entries else 0.0


@dataclass
class CalibrationSection:
    started: str
    header: list[str] = field(default_factory=list)
    steps: list[tuple[str, int, float, float, float, float, float]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    complete: bool = False


@dataclass
class ParsedGuideLog:
    version: str = ""
    sessions: list[GuideSession] = field(default_factory=list)
    calibrations: list[CalibrationSection] = field(default_factory=list)


def _num(s: str, default: float = 0.0) -> float:
    try:
        return float(s) if s.strip() else default
    except ValueError:
        return default


def _after(line: str, key: str) -> float | None:
    i = line.find(key)
    if i < 0:
        return None
    rest = line[i + len(key):]
    j = 0
    while j < len(rest) and (rest[j].isdigit() or rest[j] in "+-.eE"):
        j += 1
    try:
        return float(rest[:j])
    except ValueError:
        return None


def _parse_entry(line: str) -> LogEntry | None:
    parts = line.rstrip("\r\n").split(",")
    if len(parts) < 18:
        parts += [""] * (18 - len(parts))
    try:
        frame = int(parts[0])
        t = float(parts[1])
    except ValueError:
        return None
    mount = parts[2].strip('"')
    e = LogEntry(frame, t, mount)
    if mount == "DROP":
        e.mass = _num(parts[15])
        e.snr = _num(parts[16])
        e.error = int(_num(parts[17]))
        e.info = ",".join(parts[18:]).strip('"') if len(parts) > 18 else ""
        return e
    e.dx, e.dy = _num(parts[3]), _num(parts[4])
    e.ra_raw, e.dec_raw = _num(parts[5]), _num(parts[6])
    e.ra_guide, e.dec_guide = _num(parts[7]), _num(parts[8])
    e.ra_ms, e.ra_dir = int(_num(parts[9])), parts[10]
    e.dec_ms, e.dec_dir = int(_num(parts[11])), parts[12]
    e.mass, e.snr, e.error = _num(parts[15]), _num(parts[16]), int(_num(parts[17]))
    return e


def parse_guide_log(source: str | Path | IO[str]) -> ParsedGuideLog:
    """Read a PHD2-format guide log (a path, a file or the text itself)."""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and os.path.exists(source)):
        text = Path(source).read_text(encoding="utf-8", errors="replace")
    elif isinstance(source, str):
        text = source
    else:
        text = source.read()
    log = ParsedGuideLog()
    state = "skip"
    sess: GuideSession | None = None
    cal: CalibrationSection | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if state == "skip":
            if line.startswith("PHD2 version "):
                rest = line[len("PHD2 version "):]
                log.version = rest.split(", Log version ")[0]
            elif line.startswith("Guiding Begins at "):
                sess = GuideSession(line[len("Guiding Begins at "):])
                log.sessions.append(sess)
                state = "guide_hdr"
            elif line.startswith("Calibration Begins at "):
                cal = CalibrationSection(line[len("Calibration Begins at "):])
                log.calibrations.append(cal)
                state = "cal_hdr"
            continue
        if state == "guide_hdr":
            assert sess is not None
            if line.startswith("Frame,Time,mount"):
                state = "guide"
                continue
            sess.header.append(line)
            if line.startswith("Pixel scale = "):
                sess.pixel_scale = _after(line, "Pixel scale = ") or 1.0
            elif line.startswith("Mount = "):
                for key, attr in ((", xAngle = ", "x_angle"), (", xRate = ", "x_rate"),
                                  (", yAngle = ", "y_angle"), (", yRate = ", "y_rate")):
                    v = _after(line, key)
                    if v is not None:
                        setattr(sess, attr, v)
            continue
        if state == "guide":
            assert sess is not None
            if not line.strip() or line.startswith("Guiding Ends"):
                if line.startswith("Guiding Ends at "):
                    sess.ended = line[len("Guiding Ends at "):]
                state = "skip"
                continue
            if line[:1].isdigit():
                e = _parse_entry(line)
                if e is not None:
                    sess.entries.append(e)
                    if e.mount == "DROP" and e.info:
                        sess.infos.append((len(sess.entries) - 1, e.info))
                continue
            if line.startswith("INFO: "):
                sess.infos.append((len(sess.entries), line[len("INFO: "):]))
            continue
        if state in ("cal_hdr", "cal"):
            assert cal is not None
            if state == "cal_hdr":
                if line.startswith("Direction,Step"):
                    state = "cal"
                else:
                    cal.header.append(line)
                continue
            if not line.strip():
                state = "skip"
                continue
            if line.startswith("Calibration complete"):
                cal.complete = True
                cal.results.append(line)
                state = "skip"
                continue
            parts = line.split(",")
            if len(parts) == 7 and parts[0] in ("West", "East", "Backlash", "North", "South", "Left", "Up"):
                try:
                    cal.steps.append((parts[0], int(parts[1]), float(parts[2]), float(parts[3]),
                                      float(parts[4]), float(parts[5]), float(parts[6])))
                except ValueError:
                    pass
            else:
                cal.results.append(line)
    return log


def session_summary(sess: GuideSession) -> dict[str, Any]:
    k = sess.pixel_scale
    return {
        "frames": len([e for e in sess.entries if e.included]),
        "dropped": len([e for e in sess.entries if not e.included]),
        "rms_ra_px": sess.rms_ra_px, "rms_dec_px": sess.rms_dec_px, "rms_total_px": sess.rms_total_px,
        "rms_ra_arcsec": sess.rms_ra_px * k, "rms_dec_arcsec": sess.rms_dec_px * k,
        "rms_total_arcsec": sess.rms_total_px * k,
        "peak_ra_px": sess.peak_ra_px, "peak_dec_px": sess.peak_dec_px,
    }
