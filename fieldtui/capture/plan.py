"""Capture plans: targets with sequences of frames, read from TOML.

A plan file::

    [plan]
    name = "M31"                 # optional (default: the first target's name)
    pattern = "..."              # optional file-name pattern (see FRAME_PATTERN)

    [[target]]
    name = "M31"                 # resolved in OpenNGC (Messier, NGC, IC) ...
    # ra_deg = 10.68             # ... or given (J2000 degrees, both or neither)
    # dec_deg = 41.27
    # name = "Moon"              # or a Solar System body (Moon, Mercury, Venus, Mars,
                                 # Jupiter, Saturn, Uranus, Neptune) for focusing: its
                                 # position at the plan's time (astropy's ephemeris)

    [[target.sequence]]
    type = "light"               # light, dark, flat, bias, darkflat
    count = 30
    exposure = 120               # seconds (darks: the lights' by default; flats: found
                                 # by the sequencer; biases: the shortest)
    iso = 800                    # or gain = 120 (a CMOS camera)
    filter = ""                  # "" when none
    dither_every = 3             # lights only: dither after every N frames (0: never)
    delay = 0                    # seconds between frames

:func:`parse_plan` validates everything and raises :class:`PlanError` with
one line naming the entry (``target 1 (M31), sequence 2: count must be …``).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

FRAME_TYPES = ("light", "dark", "flat", "bias", "darkflat")
CALIBRATION_TYPES = ("dark", "flat", "bias", "darkflat")
#: the default file-name pattern (relative to the data root)
FRAME_PATTERN = "{night}/{target}/{type}/{target}_{type}_{exp}s_ISO{iso}_{temp}C_{seq:04d}.{ext}"
#: the field guide's defaults: 10–50 lights, at least 10 of each calibration type
DEFAULT_COUNTS = {"light": 30, "dark": 20, "flat": 20, "bias": 30, "darkflat": 20}
MIN_CALIBRATION = 10
#: shortest exposure for biases (s): a DSLR's 1/4000 s
BIAS_EXPOSURE_S = 1 / 4000


class PlanError(ValueError):
    """A plan that cannot run; the message names the entry at fault."""


@dataclass(frozen=True)
class Sequence:
    """One run of identical frames. ``exposure`` None: decided when it runs (darks take
    the lights', flats are searched, biases the shortest); ``iso``/``gain`` None: the lights'
    (calibration) or the camera's (lights)."""

    type: str
    count: int
    exposure: float | None = None
    iso: int | None = None
    gain: int | None = None
    filter: str = ""
    dither_every: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class Target:
    """A target (J2000 degrees) and its sequences, in the order they run. ``body``: the
    Solar System body it names ("moon", "jupiter" …; "" for a fixed target): it moves, so
    its RA/Dec hold only at the time the plan was read with (None without one), and
    :mod:`fieldtui.capture.sky` follows it through the night."""

    name: str
    ra_deg: float | None
    dec_deg: float | None
    sequences: tuple[Sequence, ...]
    body: str = ""


@dataclass(frozen=True)
class Plan:
    name: str
    targets: tuple[Target, ...]
    pattern: str = FRAME_PATTERN
    source: str = field(default="", compare=False)

    def steps(self) -> list[tuple[int, int, Target, Sequence]]:
        """Every (target index, sequence index, target, sequence) in run order."""
        return [(ti, si, t, s) for ti, t in enumerate(self.targets) for si, s in enumerate(t.sequences)]


Resolver = Callable[[str], tuple[float, float]]
#: the Solar System bodies a plan may name, as written in plans
BODY_NAMES = "Moon, Mercury, Venus, Mars, Jupiter, Saturn, Uranus, Neptune"


def _num(where: str, d: dict, key: str, kind: type, *, lo: float | None = None, default=None):
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise PlanError(f"{where}: {key} must be {'a whole number' if kind is int else 'a number'}, "
                        f"not {v!r}")
    if not math.isfinite(v) or (lo is not None and v < lo):
        raise PlanError(f"{where}: {key} must be ≥ {lo:g}, not {v!r}")
    return kind(v)


SEQ_KEYS = {"type", "count", "exposure", "iso", "gain", "filter", "dither_every", "delay"}


def _sequence(where: str, d: dict) -> Sequence:
    if not isinstance(d, dict):
        raise PlanError(f"{where}: must be a table")
    extra = set(d) - SEQ_KEYS
    if extra:
        raise PlanError(f"{where}: unknown key {sorted(extra)[0]!r} (known: {', '.join(sorted(SEQ_KEYS))})")
    typ = d.get("type")
    if typ not in FRAME_TYPES:
        raise PlanError(f"{where}: type must be one of {', '.join(FRAME_TYPES)}, not {typ!r}")
    count = _num(where, d, "count", int, lo=1, default=DEFAULT_COUNTS[typ])
    exposure = _num(where, d, "exposure", float, default=None)
    if exposure is not None and exposure <= 0:
        raise PlanError(f"{where}: exposure must be > 0 s, not {exposure!r}")
    if typ == "light" and exposure is None:
        raise PlanError(f"{where}: a light sequence needs an exposure (seconds)")
    iso = _num(where, d, "iso", int, lo=1)
    gain = _num(where, d, "gain", int, lo=0)
    if iso is not None and gain is not None:
        raise PlanError(f"{where}: give iso (a DSLR) or gain (a CMOS camera), not both")
    filt = d.get("filter", "")
    if not isinstance(filt, str):
        raise PlanError(f"{where}: filter must be a string, not {filt!r}")
    dither = _num(where, d, "dither_every", int, lo=0, default=0)
    if dither and typ != "light":
        raise PlanError(f"{where}: dither_every applies to lights only")
    delay = _num(where, d, "delay", float, lo=0, default=0.0)
    return Sequence(typ, count, exposure, iso, gain, filt, dither, delay)


def resolve_target(name: str) -> tuple[float, float]:
    """J2000 (RA, Dec) in degrees of a Messier, NGC or IC object from the OpenNGC catalogue
    (pyongc, offline). Raises PlanError for a name the catalogue does not know (suggesting
    a Solar System body when the name is close to one)."""
    from pyongc import ongc

    from .sky import close_body
    try:
        obj = ongc.Dso(name.replace(" ", ""))
    except Exception as exc:  # noqa: BLE001 - pyongc raises ValueError/ObjectNotFound
        near = close_body(name)
        hint = f"did you mean {near!r}? " if near else ""
        raise PlanError(f"target {name!r} is neither a Solar System body ({BODY_NAMES}) nor in the "
                        f"OpenNGC catalogue ({exc}); {hint}give ra_deg and dec_deg instead") from None
    c = obj.coords
    if c is None:
        raise PlanError(f"target {name!r} has no position in the OpenNGC catalogue")
    ra = (c[0][0] + c[0][1] / 60 + c[0][2] / 3600) * 15.0
    sign = -1.0 if str(obj.dec).strip().startswith("-") else 1.0
    dec = sign * (abs(c[1][0]) + c[1][1] / 60 + c[1][2] / 3600)
    return float(ra), float(dec)


def parse_plan(text: str, resolver: Resolver | None = resolve_target, *, when: float | None = None,
               site: Any = None) -> Plan:
    """Read and validate a plan (TOML text). ``resolver`` turns a target name into J2000
    degrees when the plan gives no coordinates (None: leave them unset). A target named
    after a Solar System body (Moon, planets) without coordinates gets ``body`` set and,
    when ``when`` (unix seconds) is given, its position then from astropy's built-in
    ephemeris (``get_body``), seen from ``site`` (a config ``Site``; None: the Earth's
    centre), else none. The Sun is refused.

    Raises :class:`PlanError` with one line naming the entry."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"not valid TOML: {exc}") from None
    head = doc.get("plan", {})
    if not isinstance(head, dict):
        raise PlanError("[plan] must be a table")
    targets_raw = doc.get("target")
    if not isinstance(targets_raw, list) or not targets_raw:
        raise PlanError("the plan has no [[target]]")
    targets = []
    for i, t in enumerate(targets_raw, 1):
        name = t.get("name") if isinstance(t, dict) else None
        where = f"target {i}" + (f" ({name})" if name else "")
        if not isinstance(name, str) or not name.strip() or not re.fullmatch(r"[\w .+\-]+", name):
            raise PlanError(f"{where}: needs a name (letters, digits, space, . + - _)")
        extra = set(t) - {"name", "ra_deg", "dec_deg", "sequence"}
        if extra:
            raise PlanError(f"{where}: unknown key {sorted(extra)[0]!r}")
        ra = _num(where, t, "ra_deg", float)
        dec = _num(where, t, "dec_deg", float)
        if (ra is None) != (dec is None):
            raise PlanError(f"{where}: give both ra_deg and dec_deg, or neither")
        if ra is not None and not (0 <= ra < 360 and -90 <= dec <= 90):
            raise PlanError(f"{where}: ra_deg must be in [0, 360) and dec_deg in [-90, 90]")
        seqs_raw = t.get("sequence")
        if not isinstance(seqs_raw, list) or not seqs_raw:
            raise PlanError(f"{where}: has no [[target.sequence]]")
        seqs = tuple(_sequence(f"{where}, sequence {j}", s) for j, s in enumerate(seqs_raw, 1))
        body = ""
        if ra is None:
            from .sky import SkyError, body_name, body_radec
            try:
                body = body_name(name) or ""
                if body and when is not None:
                    ra, dec = body_radec(body, when, site)
            except SkyError as exc:
                raise PlanError(f"{where}: {exc}") from None
        if ra is None and not body and resolver is not None and any(s.type == "light" for s in seqs):
            try:
                ra, dec = resolver(name)
            except PlanError as exc:
                raise PlanError(f"{where}: {exc}") from None
        targets.append(Target(name.strip(), ra, dec, seqs, body))
    pattern = head.get("pattern", FRAME_PATTERN)
    try:
        frame_name(pattern, night="2000-01-01", target="T", type="light", exposure=1.0, iso=100,
                   gain=None, temperature=10.0, seq=1, filter="", ext="fits")
    except (KeyError, ValueError, IndexError) as exc:
        raise PlanError(f"[plan] pattern: cannot fill {pattern!r} ({exc}); "
                        "fields: night target type exp iso gain temp seq filter ext") from None
    return Plan(str(head.get("name") or targets[0].name), tuple(targets), pattern, text)


def _slug(s: str) -> str:
    return re.sub(r"[^\w.+\-]+", "_", s.strip()) or "none"


def frame_name(pattern: str, *, night: str, target: str, type: str, exposure: float,
               iso: int | None, gain: int | None, temperature: float | None, seq: int,
               filter: str = "", ext: str = "fits") -> str:
    """The relative path of a frame from ``pattern`` (see :data:`FRAME_PATTERN`).

    ``exp`` is the exposure in seconds without trailing zeros (``120``, ``0.5``,
    ``0.00025``), ``temp`` the sensor temperature rounded to a whole °C (``na`` when
    unknown), ``iso``/``gain`` ``na`` when unset. Raises KeyError/ValueError for a
    pattern naming an unknown field."""
    exp = f"{exposure:.6f}".rstrip("0").rstrip(".")
    temp = "na" if temperature is None else f"{round(temperature):d}"
    rel = pattern.format(night=night, target=_slug(target), type=type, exp=exp,
                         iso="na" if iso is None else iso, gain="na" if gain is None else gain,
                         temp=temp, seq=seq, filter=_slug(filter) if filter else "none", ext=ext)
    if rel.startswith("/") or ".." in rel.split("/"):
        raise ValueError("the pattern must stay inside the data folder")
    return rel


def estimate(plan: Plan, *, frame_bytes: int, overhead_s: float = 2.0, dither_s: float = 15.0,
             flat_exposure_s: float = 1.0, light_exposure_s: float = 60.0) -> dict:
    """Duration (s) and disk use (bytes) of a plan, per sequence and in total.

    ``frame_bytes``: one frame file; ``overhead_s``: download and save between frames;
    ``dither_s``: one dither and settle; exposures left to the sequencer count as
    ``flat_exposure_s`` (flats), the target's first light exposure (darks, dark flats:
    the flats'), else ``light_exposure_s``."""
    rows = []
    for ti, si, t, s in plan.steps():
        lights = [q.exposure for q in t.sequences if q.type == "light" and q.exposure]
        exp = s.exposure
        if exp is None:
            exp = {"flat": flat_exposure_s, "darkflat": flat_exposure_s, "bias": BIAS_EXPOSURE_S}.get(
                s.type, lights[0] if lights else light_exposure_s)
        dithers = (s.count - 1) // s.dither_every if s.dither_every else 0
        secs = s.count * (exp + overhead_s + s.delay) + dithers * dither_s
        rows.append({"target": t.name, "type": s.type, "count": s.count, "exposure": exp,
                     "seconds": secs, "bytes": s.count * frame_bytes})
    return {"sequences": rows, "seconds": sum(r["seconds"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows), "frames": sum(r["count"] for r in rows)}


def template(target: str, ra_deg: float | None = None, dec_deg: float | None = None, *,
             exposure: float = 120.0, iso: int = 800) -> str:
    """A commented plan for ``target`` with the field guide's defaults: 30 lights
    (the guide: 10–50), dithering every 3, then 20 darks, 20 flats, 30 biases (at least
    10 of each; more lowers the noise the masters add)."""
    from .sky import body_name
    coords = (f"ra_deg = {ra_deg:.4f}\ndec_deg = {dec_deg:.4f}\n" if ra_deg is not None else
              "# a Solar System body: placed by astropy's built-in ephemeris at the plan's\n"
              "# time and followed through the night (`fieldtui plan show`)\n" if body_name(target) else
              "# resolved in the OpenNGC catalogue (Messier, NGC, IC); or give\n"
              "# ra_deg = 10.6847\n# dec_deg = 41.2690\n")
    return f"""\
# A capture plan for {target}. Run it with:  fieldtui capture THIS_FILE.toml
# Frames go to DATA/<night>/<target>/<type>/ (DATA: [storage] data_root, or --data DIR).

[plan]
name = "{target}"
# pattern = "{FRAME_PATTERN}"

[[target]]
name = "{target}"
{coords}
# Lights: 10-50 frames (more frames, less noise); dither every few frames so the
# stacking can reject hot pixels and walking noise.
[[target.sequence]]
type = "light"
count = 30
exposure = {exposure:g}        # seconds
iso = {iso}
filter = ""
dither_every = 3
delay = 0

# Darks: same ISO, exposure and sensor temperature as the lights (left out here,
# the sequencer takes the lights'). Cap on; at least 10.
[[target.sequence]]
type = "dark"
count = 20

# Flats: this night, focus untouched since the lights, mean near 50 % (the
# sequencer finds the exposure). Laptop screen or twilight sky. At least 10.
[[target.sequence]]
type = "flat"
count = 20

# Biases: the shortest exposure at the lights' ISO. Reusable across nights.
[[target.sequence]]
type = "bias"
count = 30
"""
