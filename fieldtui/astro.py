"""Small astronomy helpers on plain floats (no wall clock: times are passed in)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
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


#: a target lower than this (degrees) is too low to image through
MIN_ALT_DEG = 20.0
#: the Sun below this (degrees) is astronomical darkness
DARK_SUN_ALT_DEG = -18.0


def _crossings(t: Any, alt: Any, level: float) -> list[tuple[float, bool]]:
    """Times where ``alt`` crosses ``level`` (linear between samples), and whether it rises there."""
    import numpy as np
    d = alt - level
    out = []
    for i in np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]:
        if d[i] == d[i + 1]:
            continue
        f = d[i] / (d[i] - d[i + 1])
        out.append((float(t[i] + f * (t[i + 1] - t[i])), bool(d[i + 1] > d[i])))
    return out


def target_tonight(unix_time: float, latitude: float, longitude: float, elevation_m: float,
                   ra_deg: float, dec_deg: float, tz: str, step_s: float = 120.0) -> dict:
    """Where a target (ICRS RA/Dec, degrees) is now and tonight, with tonight's astronomical darkness.

    Altitudes (degrees, geometric: no refraction) from astropy's ICRS→AltAz
    transformation, the Sun from astropy's built-in ephemeris (``get_sun``);
    astropy never downloads Earth-rotation tables here (a telescope is often
    offline), which costs well under an arcsecond.
    "Tonight" runs local noon to noon (:func:`night_of`), sampled every
    ``step_s`` seconds; rise and set are the crossings of the horizon, transit
    the highest sample, darkness the Sun below −18°.

    Returns ``alt_now``, ``rise``, ``transit``, ``set`` (unix times or None),
    ``transit_alt``, ``dark`` ((start, end) or None), ``up_in_dark`` ((start, end)
    of the target above :data:`MIN_ALT_DEG` in darkness, or None), ``max_alt_dark``.
    """
    import warnings

    import astropy.units as u
    import numpy as np
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_sun
    from astropy.time import Time
    from astropy.utils import iers

    # Offline: no download, and predictions past the bundled table's end are fine for
    # altitudes to a tenth of a degree (UT1-UTC stays within 0.9 s).
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "ignore"
    noon = datetime.strptime(night_of(unix_time, tz), "%Y-%m-%d").replace(hour=12, tzinfo=ZoneInfo(tz))
    t0 = noon.timestamp()
    ts = np.concatenate([[unix_time], t0 + np.arange(0.0, 86400.0 + step_s, step_s)])
    loc = EarthLocation(lon=longitude * u.deg, lat=latitude * u.deg, height=elevation_m * u.m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no IERS-A table offline: IERS-B and the built-in defaults do
        times = Time(ts, format="unix")
        frame = AltAz(obstime=times, location=loc)
        alt = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg).transform_to(frame).alt.deg
        sun = get_sun(times).transform_to(frame).alt.deg
    alt_now, t, alt, sun = float(alt[0]), ts[1:], alt[1:], sun[1:]
    rise = next((x for x, up in _crossings(t, alt, 0.0) if up), None)
    sets = next((x for x, up in _crossings(t, alt, 0.0) if not up and (rise is None or x > rise)), None)
    if sets is None:
        sets = next((x for x, up in _crossings(t, alt, 0.0) if not up), None)
    i = int(np.argmax(alt))
    dark_mask = sun < DARK_SUN_ALT_DEG
    dark = (float(t[dark_mask][0]), float(t[dark_mask][-1])) if dark_mask.any() else None
    good = dark_mask & (alt >= MIN_ALT_DEG)
    up_in_dark = (float(t[good][0]), float(t[good][-1])) if good.any() else None
    return {"alt_now": alt_now, "rise": rise, "set": sets, "transit": float(t[i]), "transit_alt": float(alt[i]),
            "dark": dark, "up_in_dark": up_in_dark,
            "max_alt_dark": float(alt[dark_mask].max()) if dark_mask.any() else None}
