"""The sky through a night: altitude curves, meridian transits, rise and set above an
altitude limit, astronomical twilight, and a capture plan's schedule against them.

Pure computation with astropy: a site and times in, arrays and unix times out (no wall
clock, no files, no devices). Positions are geometric (no refraction; under 0.1° above
20° altitude). Solar System bodies come from astropy's built-in ephemeris (``get_body``,
topocentric, good to arcseconds for planning); the Sun likewise (``get_sun``). astropy
never downloads Earth-rotation tables here (a telescope is often offline): the bundled
IERS tables and their extrapolation cost well under an arcsecond.

A *site* is any object with ``latitude``, ``longitude`` (degrees, north and east
positive), ``elevation_m`` and ``timezone`` (IANA name): :class:`fieldtui.config.Site`
or a ``SimpleNamespace``. A *target* is a :class:`fieldtui.capture.plan.Target` (or any
object with ``ra_deg``, ``dec_deg`` and optionally ``body``), an ``(ra_deg, dec_deg)``
pair (ICRS/J2000 degrees) or a Solar System body's name (``"Moon"``, ``"Jupiter"`` …).

Typical use::

    night = night_for(cfg.site, "2026-11-29")      # or night_for(cfg.site, unix_time)
    alt = altitude_curve(target, night)            # degrees, one per night.times
    t = transit_time(target, night)                # unix time of the meridian crossing
    tl = plan_timeline(plan, cfg.site, start)      # schedule + warnings
    plot_night(plt, tl)                            # into plotext or a PlotextPlot's .plt
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from ..astro import night_of

#: the Sun below this altitude (degrees) is astronomical darkness
DARK_SUN_ALT_DEG = -18.0
#: default altitude limit (degrees) under which a light is not worth taking
DEFAULT_MIN_ALT_DEG = 30.0
#: sampling of a night's curves (seconds): rise/set/twilight/transit are interpolated between
#: samples; against 10-s sampling the worst difference is 3.5 s (rise at 60° N), at 120 s it was
#: 0.04 s for twice the cost (tests/benchmarks/bench_sky.py)
STEP_S = 300.0
#: Solar System bodies a plan may name (astropy's built-in ephemeris), for focusing
BODIES = ("moon", "mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune")


class SkyError(ValueError):
    """A target or night that cannot be computed; the message says why in one line."""


def body_name(name: str) -> str | None:
    """The astropy body name for a plan's target name (``"Moon"`` → ``"moon"``), or None
    when the name is not a Solar System body. Raises SkyError for the Sun (never a target:
    it burns the sensor and the eye)."""
    key = name.strip().lower()
    if key == "sun":
        raise SkyError("the Sun is not a target: pointing the telescope at it destroys the "
                       "camera (and the eye at the finder)")
    return key if key in BODIES else None


def close_body(name: str) -> str | None:
    """The body name closest to a misspelt ``name`` (``"Jupyter"`` → ``"Jupiter"``), or None."""
    m = difflib.get_close_matches(name.strip().lower(), BODIES, n=1, cutoff=0.75)
    return m[0].capitalize() if m else None


def _offline() -> None:
    from astropy.utils import iers
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "ignore"


@lru_cache(maxsize=16)
def _location(lat: float, lon: float, elev: float):
    import astropy.units as u
    from astropy.coordinates import EarthLocation
    return EarthLocation(lon=lon * u.deg, lat=lat * u.deg, height=elev * u.m)


def _site_location(site: Any):
    return _location(float(site.latitude), float(site.longitude), float(site.elevation_m))


def _times(unix: np.ndarray):
    from astropy.time import Time
    return Time(np.asarray(unix, dtype=float), format="unix")


def _target_parts(target: Any) -> tuple[str | None, float | None, float | None]:
    """(body, ra_deg, dec_deg) of any accepted target form."""
    if isinstance(target, str):
        b = body_name(target)
        if b is None:
            raise SkyError(f"{target!r} is not a Solar System body ({', '.join(x.capitalize() for x in BODIES)})")
        return b, None, None
    if isinstance(target, tuple):
        return None, float(target[0]), float(target[1])
    body = getattr(target, "body", "") or None
    return body, target.ra_deg, target.dec_deg


def altaz(target: Any, site: Any, times: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Altitude and azimuth (degrees, azimuth from north through east) of ``target`` seen
    from ``site`` at ``times`` (unix seconds, shape (n,)); both arrays shape (n,).

    A Solar System body is computed at each time (topocentric, from the built-in
    ephemeris); a fixed target from its ICRS RA/Dec. One vectorised astropy transform:
    ~80 ms for 289 times (a star), ~0.45 s (the Moon), on a loaded 2-core machine. Raises SkyError for a target
    without a position."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body

    body, ra, dec = _target_parts(target)
    if body is None and (ra is None or dec is None):
        raise SkyError(f"{getattr(target, 'name', target)!r} has no position (give ra_deg and dec_deg)")
    _offline()
    loc = _site_location(site)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no IERS-A table offline: IERS-B and the defaults do
        t = _times(np.atleast_1d(times))
        frame = AltAz(obstime=t, location=loc)
        if body is not None:
            c = get_body(body, t, loc).transform_to(frame)
        else:
            c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).transform_to(frame)
    return np.asarray(c.alt.deg, dtype=float), np.asarray(c.az.deg, dtype=float)


def body_radec(name: str, when: float, site: Any | None = None) -> tuple[float, float]:
    """Where a Solar System body is at ``when`` (unix seconds): (RA, Dec) in degrees on the
    J2000 (GCRS) axes, seen from ``site`` (topocentric: the Moon's parallax reaches 1°) or
    from the Earth's centre when ``site`` is None. Raises SkyError for an unknown name."""
    from astropy.coordinates import get_body
    body = body_name(name)
    if body is None:
        raise SkyError(f"{name!r} is not a Solar System body ({', '.join(x.capitalize() for x in BODIES)})")
    _offline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = get_body(body, _times(np.array([when]))[0], _site_location(site) if site is not None else None)
    return float(c.ra.deg) % 360.0, float(c.dec.deg)


def _crossings(t: np.ndarray, y: np.ndarray, level: float) -> list[tuple[float, bool]]:
    """Times where ``y`` crosses ``level`` (linear between samples) and whether it rises there."""
    d = np.asarray(y, dtype=float) - level
    out = []
    for i in np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]:
        if d[i] == d[i + 1]:
            continue
        f = d[i] / (d[i] - d[i + 1])
        out.append((float(t[i] + f * (t[i + 1] - t[i])), bool(d[i + 1] > d[i])))
    return out


@dataclass(frozen=True, eq=False)
class Night:
    """One night at a site, local noon to the next local noon, sampled every ``step_s``.

    ``times``: unix seconds, shape (n,); ``sun_alt``: the Sun's altitude there (degrees,
    shape (n,)); ``dusk``/``dawn``: unix times the Sun crosses −18° going down and up
    (astronomical twilight ends and begins), None when it never does (a white night, or
    polar night); ``date``: the local date of the evening (the night's name)."""

    date: str
    site: Any
    times: np.ndarray
    sun_alt: np.ndarray
    dusk: float | None
    dawn: float | None
    step_s: float = STEP_S

    @property
    def start(self) -> float:
        """Unix time of the night's first sample (local noon)."""
        return float(self.times[0])

    @property
    def end(self) -> float:
        """Unix time of the night's last sample (the next local noon)."""
        return float(self.times[-1])

    @property
    def dark(self) -> np.ndarray:
        """Bool mask, shape (n,): the Sun below −18°."""
        return self.sun_alt < DARK_SUN_ALT_DEG

    def is_dark(self, t: float | np.ndarray) -> np.ndarray:
        """Whether the Sun is below −18° at unix time(s) ``t`` (interpolated)."""
        return np.interp(t, self.times, self.sun_alt) < DARK_SUN_ALT_DEG


def night_for(site: Any, date: str | float, step_s: float = STEP_S) -> Night:
    """The night named by ``date`` ("YYYY-MM-DD", the evening's local date) or the night a
    unix time belongs to (nights run local noon to noon, :func:`fieldtui.astro.night_of`).

    The Sun from astropy's ``get_sun`` (no refraction: twilight is defined on the Sun's
    geometric centre). Dusk and dawn are linear interpolations between samples: with
    the default sampling, within 2 s of the exact crossing. Raises SkyError for a bad date."""
    from astropy.coordinates import AltAz, get_sun

    if not isinstance(date, str):
        date = night_of(float(date), site.timezone)
    try:
        noon = datetime.strptime(date, "%Y-%m-%d").replace(hour=12, tzinfo=ZoneInfo(site.timezone))
    except ValueError:
        raise SkyError(f"night {date!r}: expected a date YYYY-MM-DD") from None
    t0 = noon.timestamp()
    t1 = (noon + timedelta(days=1)).timestamp()  # 23 or 25 h on a daylight-saving change
    ts = np.arange(t0, t1 + step_s / 2, step_s)
    ts[-1] = min(ts[-1], t1)
    _offline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = _times(ts)
        sun = get_sun(t).transform_to(AltAz(obstime=t, location=_site_location(site))).alt.deg
    sun = np.asarray(sun, dtype=float)
    cross = _crossings(ts, sun, DARK_SUN_ALT_DEG)
    dusk = next((x for x, up in cross if not up), None)
    dawn = next((x for x, up in cross if up and (dusk is None or x > dusk)), None)
    return Night(date, site, ts, sun, dusk, dawn, step_s)


def altitude_curve(target: Any, night: Night) -> np.ndarray:
    """The target's altitude (degrees) at each of ``night.times``, shape (n,)."""
    return altaz(target, night.site, night.times)[0]


def _transits(times: np.ndarray, alt: np.ndarray, az: np.ndarray) -> list[float]:
    """Upper transits: the east–west component of the direction, cos(alt)·sin(az), changes
    from east (+) to west (−). Linear between samples (it is ∝ sin(hour angle): within
    0.1 s at 300-s sampling)."""
    ew = np.cos(np.radians(alt)) * np.sin(np.radians(az))
    return [x for x, up in _crossings(times, ew, 0.0) if not up]


@dataclass(frozen=True, eq=False)
class TargetNight:
    """A target through one night.

    ``alt``: altitude (degrees) at ``night.times``, shape (n,); ``transit``: unix time of
    the upper meridian crossing (the one nearest the middle of darkness when the window
    holds two), ``transit_alt`` its altitude (degrees); ``rise``/``set``: unix times it
    crosses ``min_alt_deg`` before and after that transit (None: it never climbs that high,
    or never drops below it, within the night); ``up``: (start, end) of the longest span
    above ``min_alt_deg`` during darkness, or None."""

    name: str
    alt: np.ndarray
    transit: float | None
    transit_alt: float | None
    rise: float | None
    set: float | None
    min_alt_deg: float
    up: tuple[float, float] | None
    body: str | None = None


def transit_time(target: Any, night: Night) -> float | None:
    """Unix time of the target's upper meridian transit in ``night`` (the local sidereal
    time equals its apparent RA), the one nearest the middle of darkness (or local
    midnight) when the 24-h window holds two; None for a body that does not transit."""
    alt, az = altaz(target, night.site, night.times)
    return _pick_transit(night, _transits(night.times, alt, az))


def _middle(night: Night) -> float:
    if night.dusk is not None and night.dawn is not None:
        return (night.dusk + night.dawn) / 2
    return (night.start + night.end) / 2


def _pick_transit(night: Night, transits: list[float]) -> float | None:
    if not transits:
        return None
    mid = _middle(night)
    return min(transits, key=lambda x: abs(x - mid))


def rise_set(times: np.ndarray, alt: np.ndarray, level: float, around: float | None) -> tuple[float | None, float | None]:
    """The crossings of ``level`` (degrees) by ``alt`` (shape (n,) at ``times``) just before
    and just after the time ``around`` (a transit; None: the middle of ``times``)."""
    if around is None:
        around = float(times[len(times) // 2])
    cross = _crossings(times, alt, level)
    rise = max((x for x, up in cross if up and x <= around), default=None)
    sets = min((x for x, up in cross if not up and x >= around), default=None)
    return rise, sets


def _spans(mask: np.ndarray, times: np.ndarray) -> list[tuple[float, float]]:
    out, i, n = [], 0, len(mask)
    while i < n:
        if mask[i]:
            j = i
            while j + 1 < n and mask[j + 1]:
                j += 1
            out.append((float(times[i]), float(times[j])))
            i = j + 1
        else:
            i += 1
    return out


def target_night(target: Any, night: Night, min_alt_deg: float = DEFAULT_MIN_ALT_DEG,
                 name: str | None = None) -> TargetNight:
    """Everything :class:`TargetNight` holds for one target (one astropy transform)."""
    alt, az = altaz(target, night.site, night.times)
    tr = _pick_transit(night, _transits(night.times, alt, az))
    tr_alt = float(np.interp(tr, night.times, alt)) if tr is not None else None
    rise, sets = rise_set(night.times, alt, min_alt_deg, tr)
    spans = _spans(night.dark & (alt >= min_alt_deg), night.times)
    up = max(spans, key=lambda s: s[1] - s[0]) if spans else None
    body, _, _ = _target_parts(target)
    if name is None:
        name = getattr(target, "name", None) or (target.capitalize() if isinstance(target, str) else "target")
    return TargetNight(name, alt, tr, tr_alt, rise, sets, min_alt_deg, up, body)


def target_tonight(now: float, site: Any, ra_deg: float, dec_deg: float,
                   min_alt_deg: float = DEFAULT_MIN_ALT_DEG, step_s: float = STEP_S) -> dict:
    """Where a fixed target (ICRS degrees) is at ``now`` (unix s) and through the night
    ``now`` belongs to (local noon to noon), for the site check.

    Returns ``alt_now`` (degrees), ``rise``/``set`` (unix times of the horizon crossings
    around the transit, None when it stays above or below), ``transit`` (unix) and
    ``transit_alt`` (degrees; the highest point when it does not transit in the window),
    ``dark`` ((dusk, dawn) with the Sun below −18°, or None), ``up_in_dark`` ((start, end)
    above ``min_alt_deg`` in darkness, or None), ``max_alt_dark`` and ``min_alt``."""
    night = night_for(site, now, step_s)
    alt, az = altaz((ra_deg, dec_deg), site, np.concatenate([[now], night.times]))  # one transform
    alt_now, alt, az = float(alt[0]), alt[1:], az[1:]
    tr = _pick_transit(night, _transits(night.times, alt, az))
    if tr is None:
        i = int(np.argmax(alt))
        tr, tr_alt = float(night.times[i]), float(alt[i])
    else:
        tr_alt = float(np.interp(tr, night.times, alt))
    rise, sets = rise_set(night.times, alt, 0.0, tr)
    dark_mask = night.dark
    good = dark_mask & (alt >= min_alt_deg)
    return {"alt_now": alt_now, "rise": rise, "set": sets, "transit": tr, "transit_alt": tr_alt,
            "dark": (night.dusk or float(night.times[dark_mask][0]), night.dawn or float(night.times[dark_mask][-1]))
            if dark_mask.any() else None,
            "up_in_dark": (float(night.times[good][0]), float(night.times[good][-1])) if good.any() else None,
            "max_alt_dark": float(alt[dark_mask].max()) if dark_mask.any() else None,
            "min_alt": float(min_alt_deg)}


# --- a plan's schedule -------------------------------------------------------------------

@dataclass(frozen=True)
class Scheduled:
    """One sequence of a plan placed in time: unix ``start``/``end`` (s), the estimate's
    ``seconds``/``bytes``, the warnings about it (one line each), and ``meridian``: the
    unix time its target crosses the meridian during a light sequence (a German
    equatorial mount flips then), else None."""

    target_index: int
    sequence_index: int
    target: str
    type: str
    count: int
    exposure: float
    start: float
    end: float
    seconds: float
    bytes: int
    warnings: tuple[str, ...] = ()
    meridian: float | None = None


@dataclass(frozen=True, eq=False)
class Timeline:
    """A plan run in order from ``start`` (unix s) through ``night``: each sequence's
    times, each target's night, and every warning (one line each, naming the target
    and the sequence)."""

    night: Night
    start: float
    min_alt_deg: float
    sequences: tuple[Scheduled, ...]
    targets: tuple[TargetNight | None, ...]
    warnings: tuple[str, ...]
    estimate: dict = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.sequences[-1].end if self.sequences else self.start


def hm(t: float | None, tz: str) -> str:
    """Local clock time HH:MM of a unix time (``–`` for None)."""
    return "–" if t is None else datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%H:%M")


def _sequence_warnings(where: str, tn: TargetNight | None, night: Night, s: float, e: float,
                       min_alt: float) -> list[str]:
    tz = night.site.timezone
    out: list[str] = []
    if tn is None:
        return out
    span = f"runs {hm(s, tz)}–{hm(e, tz)}"
    if e > night.end:
        out.append(f"{where}: {span}, past the end of the night (noon)")
        e = night.end
    # altitude over the sequence (the night's samples inside it and both ends)
    inside = (night.times > s) & (night.times < e)
    ts = np.concatenate([[s], night.times[inside], [e]])
    alt = np.interp(ts, night.times, tn.alt)
    low = alt < min_alt
    if low.any():
        if low[0]:
            out.append(f"{where}: {tn.name} is at {alt[0]:.0f}°, below the {min_alt:g}° limit, when it "
                       f"starts ({span})")
        else:
            t_low = next(x for x, up in _crossings(ts, alt, min_alt) if not up)
            out.append(f"{where}: {tn.name} drops below {min_alt:g}° at {hm(t_low, tz)}, "
                       f"{(t_low - s) / 60:.0f} min into the sequence ({span})")
    if tn.body is not None:
        return out  # planets and the Moon are imaged in twilight too
    sun = np.interp(ts, night.times, night.sun_alt)
    light = sun >= DARK_SUN_ALT_DEG
    if light.any():
        if night.dusk is None and night.dawn is None:
            out.append(f"{where}: no astronomical darkness tonight (the Sun stays above "
                       f"{DARK_SUN_ALT_DEG:g}°) ({span})")
            return out
        if light[0] and (night.dawn is None or s < night.dawn):
            out.append(f"{where}: starts before astronomical darkness ({hm(night.dusk, tz)}) ({span})")
        if light[-1] and night.dawn is not None and e > night.dawn:
            out.append(f"{where}: runs into dawn: astronomical twilight begins {hm(night.dawn, tz)}, "
                       f"{(e - max(s, night.dawn)) / 60:.0f} min before the sequence ends ({span})")
    return out


def plan_timeline(plan: Any, site: Any, start: float, *, min_alt_deg: float = DEFAULT_MIN_ALT_DEG,
                  night: Night | None = None, frame_bytes: int = 0, **estimate_kw: Any) -> Timeline:
    """Run ``plan`` (a :class:`fieldtui.capture.plan.Plan`) in order from ``start`` (unix s)
    with the durations of :func:`fieldtui.capture.plan.estimate` (``frame_bytes`` and
    ``estimate_kw`` passed on), and check each light sequence against the sky: a warning
    when its target is below ``min_alt_deg`` (degrees) during it, and when it runs outside
    astronomical darkness (into dawn, or before dusk; not for the Moon and planets).
    ``night``: the night to use (default: the one ``start`` belongs to).

    Calibration sequences (darks, flats, biases) are scheduled but not checked. Raises
    SkyError for a light target without a position. Costs one astropy transform per
    target (~0.1 s fixed, ~0.5 s for the Moon) plus the night's Sun (:func:`night_for`,
    ~0.15 s; a few seconds for the first call in a process): run it off the event loop."""
    from .plan import estimate
    if night is None:
        night = night_for(site, start)
    est = estimate(plan, frame_bytes=frame_bytes, **estimate_kw)
    tns: list[TargetNight | None] = []
    for i, t in enumerate(plan.targets, 1):
        has_pos = bool(getattr(t, "body", "")) or (t.ra_deg is not None and t.dec_deg is not None)
        tns.append(target_night(t, night, min_alt_deg, name=t.name) if has_pos else None)
        if not has_pos and any(s.type == "light" for s in t.sequences):
            raise SkyError(f"target {i} ({t.name}) has lights but no position")
    rows, warns, clock = [], [], float(start)
    for (ti, si, t, s), r in zip(plan.steps(), est["sequences"]):
        b, e = clock, clock + r["seconds"]
        where = f"target {ti + 1} ({t.name}), sequence {si + 1} ({s.count} × {s.type})"
        w = _sequence_warnings(where, tns[ti], night, b, e, min_alt_deg) if s.type == "light" else []
        tn = tns[ti]
        flip = tn.transit if (s.type == "light" and tn is not None and tn.transit is not None
                              and b <= tn.transit <= e) else None
        rows.append(Scheduled(ti, si, t.name, s.type, s.count, r["exposure"], b, e, r["seconds"],
                              r["bytes"], tuple(w), flip))
        warns.extend(w)
        clock = e
    return Timeline(night, float(start), float(min_alt_deg), tuple(rows), tuple(tns), tuple(warns), est)


def timeline_dict(tl: Timeline) -> dict:
    """A JSON-ready summary of a :class:`Timeline` (unix times and local ``HH:MM``)."""
    tz = tl.night.site.timezone

    def when(t: float | None) -> dict | None:
        return None if t is None else {"unix": round(t, 1), "local": hm(t, tz)}

    targets = [None if tn is None else {
        "name": tn.name, "body": tn.body, "transit": when(tn.transit),
        "transit_alt_deg": None if tn.transit_alt is None else round(tn.transit_alt, 2),
        "rise": when(tn.rise), "set": when(tn.set),
        "up_in_dark": None if tn.up is None else [when(tn.up[0]), when(tn.up[1])]} for tn in tl.targets]
    return {"night": tl.night.date, "timezone": tz, "min_altitude_deg": tl.min_alt_deg,
            "dusk": when(tl.night.dusk), "dawn": when(tl.night.dawn), "start": when(tl.start),
            "end": when(tl.end), "targets": targets,
            "sequences": [{"target": r.target, "type": r.type, "count": r.count, "exposure": r.exposure,
                           "seconds": round(r.seconds, 1), "bytes": r.bytes, "start": when(r.start),
                           "end": when(r.end), "meridian": when(r.meridian), "warnings": list(r.warnings)}
                          for r in tl.sequences],
            "seconds": round(tl.estimate.get("seconds", 0.0), 1), "bytes": tl.estimate.get("bytes", 0),
            "frames": tl.estimate.get("frames", 0), "warnings": list(tl.warnings)}


# --- the plot ----------------------------------------------------------------------------

#: series colours: pure reds (night theme: green = blue = 0), brightest first
PLOT_REDS = ((255, 0, 0), (175, 0, 0), (215, 0, 0), (135, 0, 0), (95, 0, 0))
#: markers that tell the curves apart without colour (plain text over SSH)
PLOT_MARKERS = ("*", "+", "o", "x", "#")


def plot_night(plt: Any, tl: Timeline, *, colour: bool = True, frame_colours: bool = True,
               title: str | None = None) -> None:
    """Draw ``tl``'s altitude curves into ``plt``: the plotext module, or the ``plt`` of a
    textual-plotext ``PlotextPlot`` (the caller clears it first with ``plt.clear_data()``
    and ``plt.clear_figure()`` and refreshes the widget after; pass ``frame_colours=False``
    there: the widget sets its own theme for the canvas, axes and ticks on every render).

    x: local time (the title gives its offset from UT) over the dark part of the night (Sun below 0°, with a margin), in hours
    after local midnight of the evening (``18`` = 18:00, ``26`` = 02:00, ticks labelled
    ``HH:MM``); y: altitude 0–90°. Each target's curve (a red shade and its own marker),
    ``M`` at each meridian transit, the altitude limit as a horizontal line, astronomical
    dusk and dawn and the plan's start and end as vertical lines. ``colour`` False: no
    colour codes at all (output piped to a file or a plain terminal)."""
    night, tz = tl.night, tl.night.site.timezone
    midnight = datetime.strptime(night.date, "%Y-%m-%d").replace(tzinfo=ZoneInfo(tz)).timestamp()

    def hx(t: float | np.ndarray):
        return (np.asarray(t) - midnight) / 3600.0

    below = night.sun_alt < 0
    if below.any():
        t0 = max(night.start, float(night.times[below][0]) - 1800)
        t1 = min(night.end, float(night.times[below][-1]) + 1800)
    else:
        t0, t1 = night.start, night.end
    t0, t1 = min(t0, max(night.start, tl.start)), max(t1, min(night.end, tl.end))
    sel = (night.times >= t0) & (night.times <= t1)
    x = hx(night.times[sel])
    if not colour:
        plt.theme("clear")
    elif frame_colours:
        plt.theme("dark")
        plt.canvas_color((0, 0, 0))
        plt.axes_color((0, 0, 0))
        plt.ticks_color((175, 0, 0))
    for k, tn in enumerate(t for t in tl.targets if t is not None):
        kw = {"color": PLOT_REDS[k % len(PLOT_REDS)]} if colour else {}
        y = np.clip(tn.alt[sel], 0, 90)
        keep = tn.alt[sel] > 0
        if keep.any():
            plt.plot(list(x[keep]), list(y[keep]), marker=PLOT_MARKERS[k % len(PLOT_MARKERS)],
                     label=f"{tn.name}" + (f" (meridian {hm(tn.transit, tz)})" if tn.transit else ""), **kw)
        if tn.transit is not None and t0 <= tn.transit <= t1 and (tn.transit_alt or 0) > 0:
            ya = float(tn.transit_alt)
            plt.text("M", float(hx(tn.transit)), ya - 5 if ya > 70 else ya + 4, **kw)
    lkw = {"color": (135, 0, 0)} if colour else {}
    skw = {"color": (255, 0, 0)} if colour else {}
    plt.hline(tl.min_alt_deg, **lkw)
    for t, word, y, kw in ((night.dusk, "dusk", 4.0, lkw), (night.dawn, "dawn", 4.0, lkw),
                           (tl.start, "start", 12.0, skw), (tl.end, "end", 12.0, skw)):
        if t is not None and t0 <= t <= t1:
            plt.vline(float(hx(t)), **kw)
            plt.text(word, float(hx(t)), y, alignment="center", **kw)
    first = int(np.ceil(hx(t0)))
    ticks = list(range(first, int(np.floor(hx(t1))) + 1, 2 if t1 - t0 > 10 * 3600 else 1))
    plt.xticks(ticks, [f"{h % 24:02d}:00" for h in ticks])
    plt.xlim(float(hx(t0)), float(hx(t1)))
    plt.ylim(0, 90)
    plt.yticks([0, 30, 60, 90] if tl.min_alt_deg in (0, 30, 60, 90) else
               sorted({0, 30, 60, 90, int(round(tl.min_alt_deg))}))
    plt.ylabel("altitude °")
    dark = f"dusk {hm(night.dusk, tz)} dawn {hm(night.dawn, tz)}" if night.dusk or night.dawn \
        else "no astronomical darkness"
    plt.title(title or f"{night.date}  {dark} {utc_offset(midnight, tz)}  limit {tl.min_alt_deg:g}°")


def utc_offset(t: float, tz: str) -> str:
    """The zone's offset from UT at unix time ``t``, as a clock reads it: ``UT``, ``UT+1``,
    ``UT−3``, ``UT+5:30`` (the plot's times are local; the screens' side panels give UT)."""
    off = datetime.fromtimestamp(t, ZoneInfo(tz)).utcoffset()
    minutes = int(round(off.total_seconds() / 60)) if off is not None else 0
    if minutes == 0:
        return "UT"
    sign = "+" if minutes > 0 else "−"
    h, m = divmod(abs(minutes), 60)
    return f"UT{sign}{h}" + (f":{m:02d}" if m else "")


def render_plot(tl: Timeline, width: int = 100, height: int = 22, *, colour: bool = True) -> str:
    """The altitude plot of :func:`plot_night` as text (plotext), ``width`` × ``height``
    characters; ANSI colour codes only when ``colour``."""
    import plotext as plt
    plt.clf()
    plt.plotsize(width, height)
    plot_night(plt, tl, colour=colour)
    out = plt.build()
    plt.clf()
    return out if colour else plt.uncolorize(out)
