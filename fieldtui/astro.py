"""Small astronomy helpers on plain floats (no wall clock: times are passed in).

Targets through the night (altitudes, transits, twilight) are in :mod:`fieldtui.capture.sky`."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

J2000_UNIX = 946728000.0  # 2000-01-01T12:00:00 UTC


def local_sidereal_deg(unix_time: float, longitude_deg: float) -> float:
    """Local mean sidereal time in degrees (IAU 1982, good to about 0.1 s)."""
    d = (unix_time - J2000_UNIX) / 86400.0
    gmst = 280.46061837 + 360.98564736629 * d
    return (gmst + longitude_deg) % 360.0


def format_hms(deg: float) -> str:
    h = (deg % 360.0) / 15.0
    hh = int(h)
    mm = int((h - hh) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    return f"{hh:02d}h{mm:02d}m{ss:04.1f}s"


def night_of(unix_time: float, tz: str) -> str:
    """The date naming the night a moment belongs to: nights run noon to noon, local time."""
    local = datetime.fromtimestamp(unix_time, ZoneInfo(tz))
    if local.hour < 12:
        local -= timedelta(days=1)
    return local.strftime("%Y-%m-%d")
