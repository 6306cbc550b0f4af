"""The status bar every screen shows: clock, guiding, capture, disk, alerts."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from textual.widgets import Static

from ..state import RigState


def status_text(state: RigState, width: int = 80) -> str:
    """The status bar's line for a terminal ``width`` columns wide: clock (UT), guiding,
    capture, stacking, free disk and the latest alert (a failed activity or a device down
    first). When it does not fit, the other parts get shorter so the alert keeps the room;
    an alert still too long ends in "…" (``!`` lists the alerts whole)."""
    if not state.connected:
        if state.snapshot and state.lost_at:
            since = datetime.fromtimestamp(state.lost_at, timezone.utc).strftime("%H:%M")
            return f" service not running since {since} UT — R starts it (retrying)"[: max(10, width - 1)]
        if time.monotonic() - state.started > 10:
            return " no rig service answers — R starts it (or `fieldtui service start`)"[: max(10, width - 1)]
        return " connecting to the rig service…"
    stamp = datetime.fromtimestamp(state.now(), timezone.utc)
    acts = state.activities
    g = state.extra.get("guiding") or {}
    rms = ""
    if g:
        gs = f"guide {g.get('state', '?')}"
        if g.get("rms_total_arcsec") is not None:
            rms = f" {g['rms_total_arcsec']:.2f}\""
    else:
        loop = acts.get("loop:guide_camera", {})
        gs = "guide loop" if loop.get("state") == "running" else "guide off"
    cs = capture_text(state)
    stack = stacking_text(state)
    if stack:
        cs += f" │ {stack}"
    disk = state.heartbeat.get("disk_free_gb")
    ds = f"disk {disk:.0f}G" if isinstance(disk, (int, float)) else "disk ?"
    bad = [n for n, d in state.devices.items() if d.get("state") not in ("connected", "disabled")]
    failed = state.failed()
    last = state.alerts[-1]["text"] if state.alerts else ""
    if failed:
        alert = f"! {failed[-1]['name']} failed: {failed[-1].get('reason', '')}"
    else:
        alert = f"! {len(bad)} device(s) down" if bad else (last if last else "")
    limit = max(10, width - 1)
    text = f" {stamp:%H:%M:%S} UT │ {gs}{rms} │ {cs} │ {ds} │ {alert}"
    if len(text) <= limit or not alert:
        return text[:limit]
    # Narrow terminal: the alert matters more than the seconds, "guide guiding" said twice,
    # and a disk with room to spare (still shown when under 20 GB).
    short_gs = "guiding" if gs == "guide guiding" else gs
    parts = [f" {stamp:%H:%M}", short_gs + rms, cs]
    if not isinstance(disk, (int, float)) or disk < 20:
        parts.append(ds)
    head = "│".join(parts) + "│"
    room = limit - len(head)
    if len(alert) > room:
        alert = alert[: max(0, room - 1)] + "…"
    return (head + alert)[:limit]


def _hm(seconds: float) -> str:
    s = int(max(0.0, seconds) + 0.5)
    if s < 60:
        return f"{s} s"
    if s < 3570:
        return f"{(s + 30) // 60} min"  # to the nearest minute
    return f"{s // 3600} h {s % 3600 // 60:02d}"


def capture_text(state: RigState) -> str:
    """'cap 3/30 · 58 min left' while a plan runs (the plan's time left as the service last
    estimated it, counted down on its clock; else the frame's: 'cap 3/30 · frame 83 s left'),
    'cap 3/30 paused', 'cap 30/30' once done, 'cap idle' before any plan."""
    cap = state.extra.get("capture") or {}
    if not cap:
        return "cap idle"
    text = f"cap {cap.get('done', 0)}/{cap.get('planned', cap.get('total', 0))}"
    act = state.activities.get("capture", {}).get("state")
    cur = cap.get("current") or {}
    now = state.now()
    if cap.get("paused"):
        text += " paused"
    elif act != "running":
        pass
    elif cap.get("left_s") is not None and cap.get("at"):
        text += f" · {_hm(float(cap['left_s']) - max(0.0, now - float(cap['at'])))} left"
    elif cur.get("exposure") and cur.get("started"):
        left = float(cur["started"]) + float(cur["exposure"]) - now
        text += f" · frame {left:.0f} s left" if left > 0 else " · saving"
    return text


def stacking_text(state: RigState) -> str:
    """'stack 5/16 · 12 s left' while the stacking worker runs a set ('' otherwise)."""
    st = state.extra.get("stacking") or {}
    cur = st.get("current") or {}
    if st.get("state") != "running" or not cur:
        return ""
    text = f"stack {cur.get('done') or 0}/{cur.get('total') or '?'}"
    if cur.get("left_s") is not None:
        text += f" · {float(cur['left_s']):.0f} s left"
    return text


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $background; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__("", markup=False)
        self._shown = ""

    def on_mount(self) -> None:
        self.refresh_state()
        self.set_interval(1.0, self.refresh_state)

    def refresh_state(self) -> None:
        text = status_text(self.app.rig, self.size.width or 80)  # type: ignore[attr-defined]
        if text != self._shown:  # redraw only what changed
            self._shown = text
            self.update(text)
