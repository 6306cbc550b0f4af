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

import csv
import errno
import math
import os
import re
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
    fsynced when ``fsync``), so a crash loses nothing already logged.

    ``target`` is a folder (created if missing; the log is
    ``PHD2_GuideLog_<date>_<time>.txt`` inside it, the name PHD2 Log Viewer
    looks for, appended to if it exists) or an open text file.  Raises
    ``NotADirectoryError`` naming a folder path that is a file, and
    ``OSError`` when the folder cannot be made.
    """

    def __init__(self, target: str | Path | IO[str], t: float, *, camera: str = "",
                 mount: str = "ST4", exposure_s: float = 1.0, gain: int | None = None,
                 focal_mm: float | None = None, fsync: bool = False) -> None:
        if isinstance(target, (str, Path)):
            folder = Path(target)
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "the guide-log folder is a file", str(folder))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / guide_log_name(t)
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

    def info(self, text: str) -> None:
        """An ``INFO:`` line (the guiding assistant's findings, notes), as PHD2 writes them."""
        self._write(f"INFO: {text}")

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
        scale = f"{ps:.3f} arc-sec/px" if ps else "unspecified"  # PHD2's word when it does not know
        self._write(f"Pixel scale = {scale}, Binning = 1, Focal length = {focal}")
        self._write(f"Search region = {s.get('box_px', 25) // 2} px, Star mass tolerance = "
                    f"{'disabled' if not s.get('mass_change') else s.get('mass_change')}")
        self._write("Equipment Profile = fieldtui")
        self._write(f"Camera = {self.camera}, gain = {self.gain if self.gain is not None else 'N/A'}")
        self._write(f"Exposure = {ev.exposure_s * 1000:.0f} ms")
        parity = "Odd" if cal.get("flipped") else "Even"
        enabled = "enabled" if ev.guiding_enabled else "disabled"  # PHD2's words
        self._write(f"Mount = {self.mount},  connected, guiding {enabled}, "
                    f"xAngle = {cal['ra_angle_deg']:.1f}, xRate = {cal['ra_rate_px_s']:.3f}, "
                    f"yAngle = {cal['dec_angle_deg']:.1f}, yRate = {cal['dec_rate_px_s']:.3f}, "
                    f"parity = Even/{parity}")
        self._write(f"X guide algorithm = {ev.ra_algorithm}")
        self._write(f"Y guide algorithm = {ev.dec_algorithm}")
        self._write(f"Max RA duration = {s.get('max_ra_pulse_ms')}, Max DEC duration = "
                    f"{s.get('max_dec_pulse_ms')}, DEC guide mode = {str(s.get('dec_mode', 'auto')).title()}")
        bl = cal.get("backlash_ms")
        comp = (bool(s.get("dec_backlash_comp")) and bl is not None and bl >= 100.0
                and not cal.get("backlash_lower_bound"))
        self._write(f"Backlash comp = {'enabled' if comp else 'disabled'}, pulse = "
                    f"{int(round(bl)) if comp else 0} ms")
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
#
# Written to read what the programs that write this format really write:
# PHD2 2.x (Windows line endings, "Pixel scale = unspecified", DROP rows
# with a quoted reason, AO rows, Backlash calibration steps, INFO lines),
# KStars/Ekos (a "KStars version …" first line, a two-line guiding header,
# "Mount = mount, xAngle = …", "… calibration complete. Angle = … deg"
# without a rate, "Calibration complete (Failed)"), ASIAIR (no pixel scale
# line, an empty version) and logs cut short by a crash.  The columns of
# the guiding table are taken from its heading line.  Nothing damaged is
# counted: each run lists its problems and the rest of the file still reads.

class GuideLogError(ValueError):
    """The text is not a guide log at all (no calibration or guiding section)."""


_SECTION_STARTS = ("Guiding Begins at ", "Calibration Begins at ", "PHD2 version ", "KStars version ")
_CAL_DIRECTIONS = {"West": "West", "Left": "West", "East": "East", "Backlash": "Backlash",
                   "North": "North", "Up": "North", "South": "South", "Down": "South",
                   "NudgeSouth": "South"}
_RESULT_RE = re.compile(r"^(West|East|North|South|Left|Up|Down|Right) calibration complete\. "
                        r"Angle = ([-+\d.eE]+) deg(?:, Rate = ([-+\d.eE]+) px/sec)?"
                        r"(?:, Parity = ([^,\s]+))?")
_NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _after(line: str, key: str) -> float | None:
    """The number right after ``key`` in ``line`` (``None`` if absent or not a number)."""
    m = re.search(re.escape(key) + _NUM, line)
    return _float(m.group(1)) if m else None


def _name(line: str, key: str) -> str:
    """``Camera = ZWO ASI Camera (1), gain = 60`` → ``ZWO ASI Camera (1)``."""
    return line[len(key):].split(", ")[0].strip().rstrip(".")


@dataclass
class LogEntry:
    """One row of a guiding table.  Distances in guide-camera pixels, pulses in ms."""

    frame: int
    time: float  # seconds since guiding began
    mount: str  # "Mount", "AO" or "DROP" (older PHD2 logs: the mount's name)
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
    line: int = 0  # line number in the file (1-based)

    @property
    def included(self) -> bool:
        """Counted in the statistics: not a dropped frame (PHD2 Log Viewer's rule
        for rows with an error code and no star mass, and every DROP row)."""
        return self.mount != "DROP" and not (self.error and self.mass == 0)


@dataclass
class CalibrationSection:
    """One calibration: its header, its steps and its result."""

    started: str
    line: int = 0
    program: str = ""
    header: list[str] = field(default_factory=list)
    # (direction, step, dx, dy, x, y, dist); px
    steps: list[tuple[str, int, float, float, float, float, float]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    mount: str | None = None
    camera: str | None = None
    # "West"/"North" → (angle in degrees, rate in px/s or None, parity or None)
    axes: dict[str, tuple[float, float | None, str | None]] = field(default_factory=dict)
    complete: bool = False
    failed: bool = False
    failure: str = ""
    alerts: list[str] = field(default_factory=list)
    star_lost: int = 0  # frames without the star during the calibration
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``complete``, ``failed`` or ``incomplete`` (stopped or cut short)."""
        return "failed" if self.failed else "complete" if self.complete else "incomplete"


@dataclass
class GuideSession:
    """One guiding run ("Guiding Begins at" to "Guiding Ends at"), with its own
    header.  Values the header does not give are ``None``."""

    started: str
    line: int = 0
    program: str = ""
    header: list[str] = field(default_factory=list)
    entries: list[LogEntry] = field(default_factory=list)
    infos: list[tuple[int, str]] = field(default_factory=list)  # (entry index, text)
    problems: list[str] = field(default_factory=list)
    ended: str = ""
    camera: str | None = None
    mount: str | None = None
    exposure_ms: float | None = None
    pixel_scale: float | None = None  # ″/px; None: the log does not say
    binning: int | None = None
    focal_length_mm: float | None = None
    x_angle: float | None = None  # degrees
    x_rate: float | None = None  # px/s
    y_angle: float | None = None
    y_rate: float | None = None
    ra_algorithm: str | None = None
    dec_algorithm: str | None = None
    dec_deg: float | None = None
    pier_side: str | None = None
    columns: list[str] = field(default_factory=list)
    # False: the header says "guiding disabled" (PHD2's guide output off; ours: the guiding
    # assistant's unguided watch): the rows are the unguided mount, not guiding.
    guiding_enabled: bool = True

    # ---------------------------------------------------------- statistics
    def settling_mask(self) -> list[bool]:
        """Per entry: taken while settling after a dither (between PHD2's
        "Settling started" and "Settling complete"/"Settling failed" lines)."""
        mask = [False] * len(self.entries)
        start: int | None = None
        for idx, text in self.infos:
            if "Settling started" in text:
                start = idx if start is None else start
            elif ("Settling complete" in text or "Settling failed" in text) and start is not None:
                for i in range(start, min(idx, len(mask))):
                    mask[i] = True
                start = None
        if start is not None:  # still settling when the run ended
            for i in range(start, len(mask)):
                mask[i] = True
        return mask

    def _axis(self, attr: str, settled_only: bool = False) -> tuple[float, float]:
        skip = self.settling_mask() if settled_only else [False] * len(self.entries)
        vals = [getattr(e, attr) for e, sk in zip(self.entries, skip) if e.included and not sk]
        if not vals:
            return 0.0, 0.0
        m = sum(vals) / len(vals)
        rms = math.sqrt(max(sum((v - m) ** 2 for v in vals) / len(vals), 0.0))
        return rms, max(vals, key=abs)

    @property
    def frames(self) -> int:
        """Frames counted in the statistics."""
        return sum(1 for e in self.entries if e.included)

    @property
    def dropped(self) -> int:
        return sum(1 for e in self.entries if not e.included)

    @property
    def rms_ra_px(self) -> float:
        """RMS along RA (px): the standard deviation about the mean, as PHD2."""
        return self._axis("ra_raw")[0]

    @property
    def rms_dec_px(self) -> float:
        return self._axis("dec_raw")[0]

    @property
    def rms_total_px(self) -> float:
        return math.hypot(self.rms_ra_px, self.rms_dec_px)

    @property
    def peak_ra_px(self) -> float:
        """Largest RA error (px, absolute)."""
        return abs(self._axis("ra_raw")[1])

    @property
    def peak_dec_px(self) -> float:
        return abs(self._axis("dec_raw")[1])

    def settled_stats(self) -> tuple[int, float, float]:
        """(frames, RMS RA px, RMS Dec px) leaving out the frames taken while
        settling after dithers, as fieldtui's guider counts its RMS."""
        n = sum(1 for e, sk in zip(self.entries, self.settling_mask()) if e.included and not sk)
        return n, self._axis("ra_raw", True)[0], self._axis("dec_raw", True)[0]

    @property
    def duration(self) -> float:
        """Seconds from the start of guiding to the last row."""
        return self.entries[-1].time if self.entries else 0.0

    @property
    def dithers(self) -> int:
        return sum(1 for _, text in self.infos if text.startswith("DITHER"))

    @property
    def settling(self) -> tuple[int, int]:
        """(settled, failed) after dithers."""
        done = sum(1 for _, t in self.infos if "Settling complete" in t)
        failed = sum(1 for _, t in self.infos if "Settling failed" in t)
        return done, failed

    @property
    def star_lost_events(self) -> int:
        """Spells of consecutive dropped frames (a star lost for ten frames is one event)."""
        n, prev = 0, True
        for e in self.entries:
            if not e.included and prev:
                n += 1
            prev = e.included
        return n

    @property
    def alerts(self) -> list[str]:
        return [t[len("ALERT: "):] for _, t in self.infos if t.startswith("ALERT: ")]


@dataclass
class ParsedGuideLog:
    """A whole log file: its runs and calibrations in file order."""

    version: str = ""
    sessions: list[GuideSession] = field(default_factory=list)
    calibrations: list[CalibrationSection] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # outside any section

    @property
    def empty(self) -> bool:
        return not self.sessions and not self.calibrations


def _split_glued(line: str) -> list[str]:
    """A row cut by a crash, with the next run's first line appended to it."""
    out = []
    while True:
        cut = min((i for k in _SECTION_STARTS if (i := line.find(k, 1)) > 0), default=-1)
        if cut < 0:
            out.append(line)
            return out
        out.append(line[:cut])
        line = line[cut:]


def _fields(line: str) -> list[str]:
    if line.count('"') > 2:
        return next(csv.reader([line]))
    return [f.strip('"') for f in line.split(",")]


def _parse_row(line: str, cols: dict[str, int], ncols: int, no: int) -> tuple[LogEntry | None, str]:
    """A guiding row → (entry, "") or (None, what is wrong with it)."""
    f = _fields(line)

    def get(name: str) -> str:
        i = cols.get(name)
        return f[i].strip() if i is not None and i < len(f) else ""

    try:
        frame = int(f[0])
    except ValueError:
        return None, "not a guiding row"
    t = _float(get("Time")) if len(f) > 1 else None
    if t is None:
        return None, "no time"
    mount = get("mount").strip('"') or "Mount"
    e = LogEntry(frame, t, mount, line=no)
    last = get("ErrorCode") if "ErrorCode" in cols else f[-1]
    if len(f) < ncols or last == "":
        return None, "cut row"
    mass, snr = _float(get("StarMass") or "0"), _float(get("SNR") or "0")
    err = _float(get("ErrorCode") or "0")
    if mass is None or snr is None or err is None:
        return None, "star mass, SNR or error code is not a number"
    e.mass, e.snr, e.error = mass, snr, int(err)
    if len(f) > ncols:
        e.info = ",".join(f[ncols:]).strip().strip('"')
    if mount == "DROP" or (e.error and e.mass == 0):
        return e, ""
    vals = {}
    for name in ("dx", "dy", "RARawDistance", "DECRawDistance"):
        v = _float(get(name))
        if v is None:
            return None, f"{name} is {get(name)!r}, not a number"
        vals[name] = v
    e.dx, e.dy = vals["dx"], vals["dy"]
    e.ra_raw, e.dec_raw = vals["RARawDistance"], vals["DECRawDistance"]
    e.ra_guide = _float(get("RAGuideDistance")) or 0.0
    e.dec_guide = _float(get("DECGuideDistance")) or 0.0
    e.ra_ms = int(_float(get("RADuration")) or 0)
    e.ra_dir = get("RADirection")
    e.dec_ms = int(_float(get("DECDuration")) or 0)
    e.dec_dir = get("DECDirection")
    if mount == "AO":  # step counts for an AO
        e.ra_ms = int(_float(get("XStep")) or 0)
        e.dec_ms = int(_float(get("YStep")) or 0)
    return e, ""


def _guide_header(sess: GuideSession, line: str) -> None:
    if line.startswith("Pixel scale = "):
        sess.pixel_scale = _after(line, "Pixel scale = ")
        if sess.pixel_scale is not None and sess.pixel_scale <= 0:
            sess.pixel_scale = None  # KStars writes 0.00 when it does not know
        b = _after(line, "Binning = ")
        sess.binning = int(b) if b else None
        sess.focal_length_mm = _after(line, "Focal length = ") or None
    elif line.startswith("Camera = "):
        sess.camera = _name(line, "Camera = ")
    elif line.startswith("Exposure = "):
        sess.exposure_ms = _after(line, "Exposure = ")
    elif line.startswith("Mount = "):
        sess.mount = _name(line, "Mount = ")
        if ", guiding disabled" in line:
            sess.guiding_enabled = False
        for key, attr in (("xAngle = ", "x_angle"), ("xRate = ", "x_rate"),
                          ("yAngle = ", "y_angle"), ("yRate = ", "y_rate")):
            v = _after(line, key)
            if v is not None:
                setattr(sess, attr, v)
        for attr in ("x_rate", "y_rate"):  # PHD2 1.x logged px/ms
            v = getattr(sess, attr)
            if v is not None and 0 < v < 0.05:
                setattr(sess, attr, v * 1000.0)
    elif line.startswith("X guide algorithm = "):
        sess.ra_algorithm = _name(line, "X guide algorithm = ")
    elif line.startswith("Y guide algorithm = "):
        sess.dec_algorithm = _name(line, "Y guide algorithm = ")
    if sess.dec_deg is None:
        m = re.search(r"(?:^|, )Dec = " + _NUM + " deg", line)
        if m:
            sess.dec_deg = _float(m.group(1))
    m = re.search(r"Pier side = (\w+)", line)
    if m and m.group(1) not in ("Unknown", "N"):
        sess.pier_side = m.group(1)


def _cal_line(cal: CalibrationSection, line: str, no: int) -> None:
    m = _RESULT_RE.match(line)
    if m:
        axis = {"Left": "West", "Right": "West", "East": "West", "Up": "North",
                "Down": "North", "South": "North"}.get(m.group(1), m.group(1))
        rate = _float(m.group(3)) if m.group(3) else None
        cal.axes[axis] = (float(m.group(2)), rate, m.group(4))
        cal.results.append(line)
        return
    if line.startswith("INFO: Calibration alert: "):
        cal.alerts.append(line[len("INFO: Calibration alert: "):])
        return
    if line.startswith("INFO: STAR LOST during calibration"):
        cal.star_lost += 1
        cal.results.append(line)
        return
    if line.startswith("INFO: ") and "calibration failed" not in line.lower():
        cal.results.append(line)
        return
    if "fail" in line.lower():
        cal.failed = True
        cal.failure = cal.failure or line.removeprefix("INFO: ")
        cal.results.append(line)
        return
    if line.startswith("Calibration complete"):
        cal.complete = True
        cal.results.append(line)
        return
    parts = line.split(",")
    if parts[0] in _CAL_DIRECTIONS:
        try:
            vals = [float(p) for p in parts[2:7]]
            step = int(parts[1])
        except (ValueError, IndexError):
            vals = []
        if len(vals) < 2:
            cal.problems.append(f"line {no}: unreadable calibration step ({line[:60]!r}), skipped")
            return
        vals += [0.0] * (5 - len(vals))
        cal.steps.append((parts[0], step, *vals))  # type: ignore[arg-type]
        return
    cal.results.append(line)


def parse_guide_log_text(text: str) -> ParsedGuideLog:
    """Parse the text of a PHD2-format guide log (PHD2, KStars/Ekos, ASIAIR, fieldtui).

    Never raises on damaged content: what cannot be read is listed in the
    ``problems`` of its run or calibration (or of the log, outside them).
    """
    log = ParsedGuideLog()
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        n = text.count("\x00")
        text = text.replace("\x00", "")
        log.problems.append(f"{n} NUL bytes (a part of the file was never written)")
    lines = text.split("\n")
    state = "skip"
    program = ""
    sess: GuideSession | None = None
    cal: CalibrationSection | None = None
    cols: dict[str, int] = {}
    ncols = 0

    def set_columns(heading: str) -> None:
        nonlocal cols, ncols
        names = [c.strip() for c in heading.split(",")]
        cols = {n: i for i, n in enumerate(names)}
        ncols = len(names)
        assert sess is not None
        sess.columns = names

    last_text = max((i for i, x in enumerate(lines, start=1) if x.strip()), default=0)
    for no, raw in enumerate(lines, start=1):
        is_last = no >= last_text
        for line in _split_glued(raw.rstrip("\r")):
            line = line.rstrip()
            # Sections start wherever their first line is, even without the blank line before.
            if line.startswith("Guiding Begins at "):
                if state == "guide_hdr" and sess is not None:
                    sess.problems.append("the run ends before its column heading")
                sess = GuideSession(line[len("Guiding Begins at "):].strip(), line=no, program=program)
                log.sessions.append(sess)
                state = "guide_hdr"
                continue
            if line.startswith("Calibration Begins at "):
                cal = CalibrationSection(line[len("Calibration Begins at "):].strip(), line=no,
                                         program=program)
                log.calibrations.append(cal)
                state = "cal_hdr"
                continue
            if line.startswith("PHD2 version") or line.startswith("KStars version"):
                if line.startswith("PHD2 version"):
                    program = line[len("PHD2 version"):].split(", Log version")[0].strip()
                    if not program:  # ASIAIR leaves it empty
                        program = "PHD2-format, no version"
                    elif program[0].isdigit():
                        program = f"PHD2 {program}"  # else another program's name and version
                else:
                    program = "KStars " + line[len("KStars version "):].split(". ")[0].strip()
                log.version = log.version or program.removeprefix("PHD2 ").removeprefix("PHD2-format, no version")
                state = "skip"
                continue
            if state == "skip":
                continue
            if state == "guide_hdr":
                assert sess is not None
                if line.startswith("Frame,Time,"):
                    set_columns(line)
                    state = "guide"
                    continue
                if line[:1].isdigit() and line.count(",") >= 10:
                    sess.problems.append(f"line {no}: rows without a column heading; read with "
                                         "PHD2's columns")
                    set_columns(GUIDE_HEADING)
                    state = "guide"  # and read this row below
                else:
                    if line.strip():
                        sess.header.append(line)
                        _guide_header(sess, line)
                    continue
            if state == "guide":
                assert sess is not None
                if not line.strip() or line.startswith("Guiding Ends"):
                    if line.startswith("Guiding Ends at "):
                        sess.ended = line[len("Guiding Ends at "):].strip()
                    state = "skip"
                    continue
                if line.startswith("INFO: "):
                    sess.infos.append((len(sess.entries), line[len("INFO: "):]))
                    continue
                if line[:1].isdigit():
                    e, why = _parse_row(line, cols, ncols, no)
                    if e is None:
                        if why == "cut row" and is_last:
                            why = "cut row, the log ends in the middle of it"
                        sess.problems.append(f"line {no}: {why} ({line[:60]!r}), not counted")
                        continue
                    sess.entries.append(e)
                    if not e.included:
                        sess.infos.append((len(sess.entries) - 1, e.info or "Frame dropped"))
                    continue
                sess.problems.append(f"line {no}: not a guiding row ({line[:60]!r}), skipped")
                continue
            if state == "cal_hdr":
                assert cal is not None
                if line.startswith("Direction,Step"):
                    state = "cal"
                    continue
                parts = line.split(",")
                if parts[0] in _CAL_DIRECTIONS and len(parts) >= 4:
                    state = "cal"  # a step without the heading: read it below
                elif line.strip():
                    cal.header.append(line)
                    if line.startswith("Mount = "):
                        cal.mount = _name(line, "Mount = ")
                    elif line.startswith("Camera = "):
                        cal.camera = _name(line, "Camera = ")
                    continue
                else:
                    continue
            if state == "cal":
                assert cal is not None
                if not line.strip():
                    state = "skip"
                    continue
                _cal_line(cal, line, no)
    for sess in log.sessions:
        if not sess.columns and not sess.problems:
            sess.problems.append("the run has no guiding table (cut short or damaged)")
    return log


def parse_guide_log(source: str | Path | IO[str]) -> ParsedGuideLog:
    """Read a PHD2-format guide log.

    ``source`` is a path (``Path``, or a ``str`` of one line), an open text
    file, or the log's text (a ``str`` of several lines).
    Raises ``FileNotFoundError`` / ``OSError`` naming a path that cannot be
    read (never parses the path itself as text).
    """
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        return read_guide_log(source)
    if isinstance(source, str):
        return parse_guide_log_text(source)
    return parse_guide_log_text(source.read())


def read_guide_log(path: str | Path) -> ParsedGuideLog:
    """Read the guide log file at ``path`` (any encoding PHD2 and the others use:
    UTF-8, else Latin-1, which cannot fail).

    Raises ``FileNotFoundError`` (a path that does not exist), ``IsADirectoryError``
    or another ``OSError`` (unreadable), each naming the path, and
    :class:`GuideLogError` for a file that holds no calibration or guiding section.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such guide log", str(p))
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder, not a guide log", str(p))
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    log = parse_guide_log_text(text)
    if log.empty:
        what = "empty" if not data.strip() else "no calibration or guiding section in it"
        raise GuideLogError(f"{p}: not a guide log ({what})")
    return log


# ---------------------------------------------------------------------------
# Summaries (the guidelog command and its --json)
# ---------------------------------------------------------------------------

def calibration_summary(cal: CalibrationSection) -> dict[str, Any]:
    """A calibration's result as plain data (angles in degrees, rates in px/s)."""
    def axis(name: str) -> dict[str, Any] | None:
        a = cal.axes.get(name)
        return None if a is None else {"angle_deg": a[0], "rate_px_s": a[1], "parity": a[2]}

    return {
        "started": cal.started, "mount": cal.mount, "camera": cal.camera,
        "status": cal.status, "failure": cal.failure or None, "steps": len(cal.steps),
        "ra": axis("West"), "dec": axis("North"), "alerts": list(cal.alerts),
        "star_lost": cal.star_lost, "problems": list(cal.problems),
    }


def session_summary(sess: GuideSession) -> dict[str, Any]:
    """A guiding run as plain data: px always, arc-seconds only where the log
    gives the pixel scale (``None`` otherwise, never the pixel figure)."""
    k = sess.pixel_scale

    def arcsec(v: float) -> float | None:
        return v * k if k else None

    settled, settle_failed = sess.settling
    n_set, ra_set, dec_set = sess.settled_stats()
    return {
        "started": sess.started, "ended": sess.ended or None, "program": sess.program or None,
        "guiding_enabled": sess.guiding_enabled,
        "duration_s": sess.duration,
        "camera": sess.camera, "mount": sess.mount, "exposure_ms": sess.exposure_ms,
        "pixel_scale_arcsec_px": k, "binning": sess.binning, "focal_length_mm": sess.focal_length_mm,
        "frames": sess.frames, "dropped": sess.dropped,
        "rms_ra_px": sess.rms_ra_px, "rms_dec_px": sess.rms_dec_px, "rms_total_px": sess.rms_total_px,
        "rms_ra_arcsec": arcsec(sess.rms_ra_px), "rms_dec_arcsec": arcsec(sess.rms_dec_px),
        "rms_total_arcsec": arcsec(sess.rms_total_px),
        "peak_ra_px": sess.peak_ra_px, "peak_dec_px": sess.peak_dec_px,
        "peak_ra_arcsec": arcsec(sess.peak_ra_px), "peak_dec_arcsec": arcsec(sess.peak_dec_px),
        "dithers": sess.dithers, "settled": settled, "settle_failed": settle_failed,
        "excluding_settling": {
            "frames": n_set, "rms_ra_px": ra_set, "rms_dec_px": dec_set,
            "rms_total_px": math.hypot(ra_set, dec_set), "rms_ra_arcsec": arcsec(ra_set),
            "rms_dec_arcsec": arcsec(dec_set), "rms_total_arcsec": arcsec(math.hypot(ra_set, dec_set))},
        "star_lost_events": sess.star_lost_events, "alerts": sess.alerts,
        "calibration_used": {"ra_angle_deg": sess.x_angle, "ra_rate_px_s": sess.x_rate,
                             "dec_angle_deg": sess.y_angle, "dec_rate_px_s": sess.y_rate},
        "ra_algorithm": sess.ra_algorithm, "dec_algorithm": sess.dec_algorithm,
        "dec_deg": sess.dec_deg, "pier_side": sess.pier_side,
        "problems": list(sess.problems),
    }


def log_runs(log: ParsedGuideLog) -> list[dict[str, Any]]:
    """The log as a list of runs, in file order.  Each guiding run carries the
    calibrations made since the previous one (``calibrations``); calibrations
    that no guiding followed make a run of their own with ``guided`` false."""
    items: list[tuple[int, str, Any]] = sorted(
        [(s.line, "guide", s) for s in log.sessions] + [(c.line, "cal", c) for c in log.calibrations],
        key=lambda x: x[0])
    runs: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for _, kind, obj in items:
        if kind == "cal":
            pending.append(calibration_summary(obj))
            continue
        run = {"guided": True, **session_summary(obj), "calibrations": pending}
        pending = []
        runs.append(run)
    if pending:
        runs.append({"guided": False, "started": pending[0]["started"], "calibrations": pending,
                     "problems": []})
    for i, r in enumerate(runs, start=1):
        r["run"] = i
    if log.problems and runs:
        runs[0]["problems"] = list(log.problems) + runs[0]["problems"]
    return runs
