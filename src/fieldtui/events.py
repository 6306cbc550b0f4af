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


@dataclass
class Alert(Event):
    level: str = "info"  # info, warning, error
    source: str = ""
    text: str = ""


@dataclass
class ChecklistChanged(Event):
    items: dict[str, bool] = field(default_factory=dict)


@dataclass
class CheckResults(Event):
    ok: bool = True
    checks: list[dict[str, Any]] = field(default_factory=list)


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
    """A long-running activity (looping, guiding, a capture run): its state and progress."""

    name: str = ""
    state: str = "idle"
    progress: float = 0.0
    detail: str = ""


@dataclass
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
