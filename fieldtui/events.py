"""Events (service → clients) and commands (clients → service).

Plain dataclasses that serialise to the versioned JSON-lines protocol
(:mod:`fieldtui.service.protocol`).  Anything that publishes state — the
Session, the guide worker, the capture sequencer — publishes these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

EVENT_TYPES: dict[str, type["Event"]] = {}


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    t: float = 0.0  # clock time of the event

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.kind = cls.__name__
        EVENT_TYPES[cls.__name__] = cls

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, kind: str, data: dict[str, Any]) -> "Event":
        tp = EVENT_TYPES[kind]
        names = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: v for k, v in data.items() if k in names})


@dataclass
class DeviceStatus(Event):
    """A device's state: connecting, connected, failed, disconnected, disabled."""

    name: str = ""
    state: str = "connecting"
    driver: str = ""
    model: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    fix: str = ""
    attempts: int = 0
    holder: str = ""  # the activity that holds the device's lease ("" when free)


@dataclass
class Alert(Event):
    level: str = "info"  # info, warning, error, critical (an activity stopped on an error)
    source: str = ""
    text: str = ""


@dataclass
class ChecklistChanged(Event):
    items: dict[str, bool] = field(default_factory=dict)


@dataclass
class NightChanged(Event):
    """Local noon passed: a new night (its folder and checklist) begins."""

    night: str = ""
    checklist: dict[str, bool] = field(default_factory=dict)


@dataclass
class CheckResults(Event):
    ok: bool = True
    checks: list[dict[str, Any]] = field(default_factory=list)
    # What is plugged in (devices/discover.py): kind, where, what, answers for each.
    attached: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Heartbeat(Event):
    """Once every few seconds: the clock, disk and machine load."""

    clock: float = 0.0
    lst_deg: float = 0.0
    disk_free_gb: float = 0.0
    load: float = 0.0
    cpu_temp_c: float | None = None


@dataclass
class FramePreview(Event):
    """A small 8-bit view of a frame, for drawing in a terminal."""

    camera: str = ""
    width: int = 0
    height: int = 0
    scale: int = 1  # sensor pixels per preview pixel
    pixels: str = ""  # base64 of width*height uint8, row-major
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class ActivityStatus(Event):
    """A long-running activity (looping, guiding, a capture run): its state and progress.

    One event type for every activity: ``state`` (``failed`` with ``reason``
    when an error ended it), ``since`` (clock time the state began) and
    ``summary``, the activity's part of the snapshot (``snapshot[name]``) as
    it is now. A client folds it in without knowing the activity."""

    name: str = ""
    state: str = "idle"
    progress: float = 0.0
    detail: str = ""
    reason: str = ""
    since: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


# ----- focusing (service/focus.py) ------------------------------------------

@dataclass
class FocusFrame(Event):
    """One measured focus frame: the followed star, the new trend point, the best and the fit."""

    camera: str = ""
    n: int = 0                      # frame number since focus.start
    exposure: float = 0.0
    gain: int | None = None         # gain (guide camera) or ISO (DSLR)
    focuser: int | None = None      # focuser position during the frame (None: no focuser)
    stars: int = 0                  # stars detected in the frame
    median_fwhm: float | None = None
    star: dict[str, Any] | None = None  # x, y, hfr, fwhm, peak, snr, saturated, rank, cutout, profile…
    point: list[Any] | None = None  # [n, t, focuser, hfr, fwhm], appended to the trend
    best: dict[str, Any] | None = None
    fit: dict[str, Any] | None = None      # V curve of FWHM
    fit_hfr: dict[str, Any] | None = None  # V curve of HFR
    note: str = ""


@dataclass
class FocusTest(Event):
    """A test exposure through the exposure assistant: histograms and advice."""

    camera: str = "main_camera"
    exposure: float = 0.0
    iso: int | None = None
    black: float = 0.0
    white: float = 0.0
    lo: float = 0.0                 # range of the histograms (data units)
    hi: float = 0.0
    hist: dict[str, list[int]] = field(default_factory=dict)  # channel -> HIST_BINS counts
    advice: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class FocusSettings(Event):
    """The focus loop's settings changed (camera, exposure, gain, running)."""

    camera: str = ""
    exposure: float = 0.0
    gain: int | None = None
    running: bool = False
    focuser: int | None = None
    has_focuser: bool = False
    selection: str = "auto"


# ----- guiding (service/guiding.py) ------------------------------------------

@dataclass
class GuideStatus(Event):
    """The guider's state and summary changed (not sent for plain guide steps)."""

    state: str = "stopped"
    detail: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class GuidePoint(Event):
    """One guide frame while guiding or settling (``dropped``: no star in it)."""

    n: int = 0
    state: str = "guiding"
    ra: float = 0.0        # error along RA (″, or px when the pixel scale is unknown)
    dec: float = 0.0
    ra_px: float = 0.0
    dec_px: float = 0.0
    ra_ms: int = 0         # pulse sent: + west, − east
    dec_ms: int = 0        # + north, − south
    snr: float = 0.0
    hfd: float = 0.0
    dropped: bool = False
    rms: list[float | None] = field(default_factory=list)  # RA, Dec, total (″) over the stats window
    rms_px: list[float] = field(default_factory=list)


@dataclass
class GuideStar(Event):
    """The guide box: an 8-bit cut-out around the star with the lock position in it."""

    state: str = ""
    x0: int = 0            # sensor position of the cut-out's top-left pixel
    y0: int = 0
    side: int = 24         # cut-out side in sensor pixels
    pixels: str = ""       # base64 of side*side uint8
    star: list[float] | None = None   # x, y (sensor px)
    lock: list[float] | None = None
    snr: float = 0.0
    hfd: float = 0.0


@dataclass
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


# ----- capture (service/capture.py) -------------------------------------------
@dataclass
class CaptureFrame(Event):
    """One frame of a capture plan saved: its file (relative to the data root) and figures.

    ``outlier``: why a light departs from the sequence's running median ([] when fine)."""

    plan: str = ""
    target: str = ""
    type: str = ""
    index: int = 0          # 1-based within the sequence
    count: int = 0
    path: str = ""
    exposure: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    outlier: list[str] = field(default_factory=list)


@dataclass
class CaptureSetFinished(Event):
    """A sequence of a plan (a set of lights or a calibration set) is complete: every frame
    is on disk and in the journal. The stacking worker starts from this event.

    ``files``: absolute paths in capture order; ``root``: the data root."""

    plan: str = ""
    target: str = ""
    type: str = ""
    sequence: int = 0       # 0-based index within the target
    night: str = ""
    exposure: float = 0.0
    iso: int | None = None
    gain: int | None = None
    filter: str = ""
    files: list[str] = field(default_factory=list)
    outliers: list[str] = field(default_factory=list)
    root: str = ""


@dataclass
class CaptureWaiting(Event):
    """The capture sequencer waits between frames: for the user (``resume`` names the command
    that goes on: a filter change without a wheel, the meridian on a mount that cannot flip)
    or by itself (``resume`` empty: the guide star is lost or away, capture goes on once
    guiding is back and settled). ``reason``: "filter", "meridian", "guiding"; ``message``:
    what to do, in one line."""

    plan: str = ""
    reason: str = ""
    message: str = ""
    resume: str = ""
