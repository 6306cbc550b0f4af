"""The client's copy of the rig's state: a snapshot, then events applied to it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..events import (ActivityStatus, Alert, ChecklistChanged, CheckResults, DeviceStatus, Event, GuideStatus,
                      FramePreview, Heartbeat, NightChanged)


@dataclass
class RigState:
    connected: bool = False
    lost_at: float = 0.0         # wall time the service stopped answering (0: it answers)
    snapshot: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    checklist: dict[str, bool] = field(default_factory=dict)
    checklist_labels: dict[str, str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeat: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] | None = None
    previews: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    clock_at: float = 0.0        # service clock at the last heartbeat
    clock_seen: float = 0.0      # our monotonic time when it arrived
    virtual: bool = False
    started: float = field(default_factory=time.monotonic)  # when this client began
    last_news: float = field(default_factory=time.monotonic)  # our monotonic time of the last event

    def load(self, snap: dict[str, Any]) -> None:
        self.snapshot = snap
        self.devices = dict(snap.get("devices", {}))
        self.checklist = dict(snap.get("checklist", {}))
        self.checklist_labels = dict(snap.get("checklist_labels", {}))
        self.alerts = list(snap.get("alerts", []))
        self.activities = dict(snap.get("activities", {}))
        self.heartbeat = dict(snap.get("heartbeat", {}))
        self.check = snap.get("check")
        self.previews = dict(snap.get("previews", {}))
        self.extra = {k: v for k, v in snap.items() if k not in {
            "devices", "checklist", "checklist_labels", "alerts", "activities", "heartbeat", "check", "previews"}}
        self.virtual = bool(snap.get("virtual"))
        self.clock_at, self.clock_seen = float(snap.get("clock", time.time())), time.monotonic()
        self.last_news = time.monotonic()
        self.connected = True

    def apply(self, ev: Event) -> str:
        """Fold one event in; returns which part of the state changed."""
        self.last_news = time.monotonic()
        if isinstance(ev, DeviceStatus):
            self.devices[ev.name] = ev.to_dict()
            return "devices"
        if isinstance(ev, Alert):
            self.alerts = (self.alerts + [ev.to_dict()])[-50:]
            return "alerts"
        if isinstance(ev, ChecklistChanged):
            self.checklist = dict(ev.items)
            return "checklist"
        if isinstance(ev, CheckResults):
            self.check = {"ok": ev.ok, "checks": ev.checks, "attached": ev.attached, "t": ev.t}
            return "check"
        if isinstance(ev, Heartbeat):
            self.heartbeat = ev.to_dict()
            self.clock_at, self.clock_seen = ev.clock, time.monotonic()
            return "heartbeat"
        if isinstance(ev, ActivityStatus):
            # One event for every activity: its state, and its part of the snapshot as it is now.
            self.activities[ev.name] = ev.to_dict()
            if ev.summary:
                self.extra[ev.name] = dict(ev.summary)
            return "activities"
        if isinstance(ev, NightChanged):
            self.extra["night"] = ev.night
            self.checklist = dict(ev.checklist)
            return "checklist"
        if isinstance(ev, GuideStatus) and ev.summary:
            # the guider's summary, also before its first guide loop (when its activity
            # status carries none): "taking guide darks" reaches the Guiding screen
            self.extra["guiding"] = dict(ev.summary)
        if isinstance(ev, FramePreview):
            self.previews[ev.camera] = ev.to_dict()
            return "preview"
        self.extra.setdefault("events", {})[ev.kind] = ev.to_dict()
        return ev.kind

    def silent_for(self) -> float:
        """Seconds since the service last sent anything (it sends a heartbeat every 5 s)."""
        return time.monotonic() - self.last_news

    def failed(self) -> list[dict[str, Any]]:
        """Activities an error ended (state ``failed``), each with its ``reason``."""
        return [a for a in self.activities.values() if a.get("state") == "failed"]

    def now(self) -> float:
        """The service's clock, running on between heartbeats."""
        if not self.clock_at:
            return time.time()
        return self.clock_at + (0.0 if self.virtual else time.monotonic() - self.clock_seen)
