"""Events the guide engine emits: plain dataclasses, one per happening.

Every state change, every calibration step, every guide step and every
alert is an event.  The worker forwards them to the Session (and from there
to the client); the guide log writer turns them into a PHD2-format log.
``to_dict()`` gives a JSON-ready form with the event's ``type``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class GuideState(str, Enum):
    STOPPED = "stopped"
    LOOPING = "looping"
    CALIBRATING = "calibrating"
    GUIDING = "guiding"
    SETTLING = "settling"
    STAR_LOST = "star lost"


@dataclass
class GuideEvent:
    t: float  # clock time (seconds since the epoch) of what the event reports

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in list(d.items()):
            if isinstance(v, Enum):
                d[k] = v.value
        d["type"] = type(self).__name__
        return d


@dataclass
class StateChanged(GuideEvent):
    old: GuideState
    new: GuideState
    reason: str = ""


@dataclass
class StarSelected(GuideEvent):
    x: float
    y: float
    snr: float
    hfd: float
    candidates: int
    extra_stars: int = 0  # secondary stars tracked for multi-star averaging
    auto: bool = True


@dataclass
class LockPositionSet(GuideEvent):
    x: float
    y: float
    reason: str = ""


@dataclass
class CalibrationStarted(GuideEvent):
    x: float
    y: float
    hfd: float
    ra_step_ms: int
    dec_step_ms: int


@dataclass
class CalibrationStep(GuideEvent):
    direction: str  # "West", "East", "Backlash", "North", "South"
    step: int
    dx: float  # offset of the star from where the leg started (px)
    dy: float
    x: float  # star position (px)
    y: float
    dist: float
    pulse_ms: int


@dataclass
class CalibrationDone(GuideEvent):
    ra_angle_deg: float
    dec_angle_deg: float
    ra_rate_px_s: float
    dec_rate_px_s: float
    flipped: bool
    orthogonality_error_deg: float
    warnings: list[str] = field(default_factory=list)
    reused: bool = False


@dataclass
class CalibrationFailed(GuideEvent):
    reason: str


@dataclass
class GuidingStarted(GuideEvent):
    lock_x: float
    lock_y: float
    star_x: float
    star_y: float
    hfd: float
    pixel_scale: float | None
    exposure_s: float
    calibration: dict[str, Any]
    settings: dict[str, Any]
    ra_algorithm: str = ""
    dec_algorithm: str = ""
    dec_deg: float | None = None
    pier_side: str = "unknown"
    guiding_enabled: bool = True  # False: measure only, no corrections (PHD2: "guiding disabled")


@dataclass
class GuidingStopped(GuideEvent):
    reason: str = ""


@dataclass
class GuideStep(GuideEvent):
    """One guide frame while guiding or settling (PHD2 log data line)."""

    frame: int
    elapsed: float  # seconds since guiding started
    x: float
    y: float
    lock_x: float
    lock_y: float
    dx: float  # camera offset star - lock (px)
    dy: float
    ra_px: float  # offset along the mount axes (px), sign as the raw distance
    dec_px: float
    ra_guide_px: float  # what the algorithms asked for (px)
    dec_guide_px: float
    ra_ms: int
    ra_dir: str  # "E", "W" or ""
    dec_ms: int
    dec_dir: str  # "N", "S" or ""
    snr: float
    mass: float
    hfd: float
    stars_used: int = 1
    ra_limited: bool = False
    dec_limited: bool = False
    dec_backlash_ms: int = 0  # of dec_ms, the backlash compensation added on a reversal


@dataclass
class FrameDropped(GuideEvent):
    """A guide frame without a usable star (or no frame at all)."""

    frame: int
    elapsed: float
    reason: str
    snr: float = 0.0
    mass: float = 0.0
    error_code: int = 1


@dataclass
class StarLost(GuideEvent):
    reason: str
    snr: float = 0.0


@dataclass
class StarFound(GuideEvent):
    x: float
    y: float
    snr: float
    lost_for_s: float
    same_star: bool = True


@dataclass
class DitherStarted(GuideEvent):
    dx: float  # lock shift in camera px
    dy: float
    ra_px: float
    dec_px: float
    lock_x: float
    lock_y: float


@dataclass
class SettleDone(GuideEvent):
    ok: bool
    distance_px: float
    settle_time_s: float
    reason: str = ""


@dataclass
class Alert(GuideEvent):
    """Something the user must know. ``level``: "info", "warning", "critical"."""

    level: str
    code: str
    message: str


__all__ = [
    "Alert", "CalibrationDone", "CalibrationFailed", "CalibrationStarted", "CalibrationStep",
    "DitherStarted", "FrameDropped", "GuideEvent", "GuideState", "GuideStep", "GuidingStarted",
    "GuidingStopped", "LockPositionSet",
    "SettleDone", "StarFound", "StarLost", "StarSelected", "StateChanged",
]
