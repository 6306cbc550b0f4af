"""Coordinate codecs of the serial mount protocols (pure functions, no I/O).

Meade LX200 (also OnStep, Losmandy Gemini, iOptron in LX200 mode and many
others) sends sexagesimal text:

* RA, short format ``HH:MM.T`` (tenths of a minute, 6 s of time) and long
  format ``HH:MM:SS`` (1 s of time).
* Dec, short ``sDD*MM`` (1') and long ``sDD*MM'SS`` (1"). Real Meade
  controllers send byte 0xDF (``ß`` in Latin-1, the degree sign on their
  display) where this module writes ``*``; both parse, and so do ``:``
  and ``°``. The sign is always present, so ``-00*30`` is -0.5°.

Celestron NexStar and SkyWatcher SynScan hand controllers send angles as the
fraction of a full turn in hexadecimal: 16 bits (``34AB``, 19.8") or, for
the "precise" commands, 32 bits (``34AB0500``, 0.0003"). Negative
declinations are sent as 360° + Dec.

Sources: Meade "Telescope Serial Command Protocol" (rev. 2010.10);
Celestron "NexStar Communication Protocol" (v1.2); SkyWatcher "SynScan Hand
Control Serial Communication Protocol" (v3.37+), and how INDI's
``lx200driver``, ``celestrondriver`` and ``synscandriver`` read them.
Every formatter rounds to its last digit, carrying into minutes, hours and
degrees (RA 23:59:59.9 is ``00:00:00`` in the long format); every parser
raises ``ValueError`` on text that is not one of these forms.
"""

from __future__ import annotations

import re

DEGREE_SIGNS = "*\xdf°:"

_RA_LONG = re.compile(r"^\s*(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")
_RA_SHORT = re.compile(r"^\s*(\d{1,2}):(\d{1,2})\.(\d)\s*$")
_ANGLE = re.compile(r"^\s*([+-]?)(\d{1,3})[*\xdf°:](\d{1,2})(?:['\:](\d{1,2}(?:\.\d+)?))?\s*$")


def format_ra(ra_deg: float, long: bool = True) -> str:
    """RA in degrees → ``HH:MM:SS`` (``long``) or ``HH:MM.T``, rounded, wrapped into 0–24 h."""
    if long:
        units = round((ra_deg % 360.0) / 15.0 * 3600.0) % 86400
        return f"{units // 3600:02d}:{units // 60 % 60:02d}:{units % 60:02d}"
    units = round((ra_deg % 360.0) / 15.0 * 600.0) % 14400   # tenths of a minute
    return f"{units // 600:02d}:{units // 10 % 60:02d}.{units % 10:d}"


def parse_ra(text: str) -> float:
    """``HH:MM:SS`` or ``HH:MM.T`` → RA in degrees [0, 360). Raises ``ValueError``."""
    m = _RA_LONG.match(text)
    if m:
        h, mi, s = int(m[1]), int(m[2]), float(m[3])
        if h > 23 or mi > 59 or s >= 60:
            raise ValueError(f"RA out of range: {text!r}")
        return (h + mi / 60.0 + s / 3600.0) * 15.0
    m = _RA_SHORT.match(text)
    if m:
        h, mi, t = int(m[1]), int(m[2]), int(m[3])
        if h > 23 or mi > 59:
            raise ValueError(f"RA out of range: {text!r}")
        return (h + (mi + t / 10.0) / 60.0) * 15.0
    raise ValueError(f"not an LX200 right ascension: {text!r}")


def format_dec(dec_deg: float, long: bool = True, *, sign: bool = True, deg_digits: int = 2,
               deg: str = "*", sec_sep: str = "'") -> str:
    """An angle → ``sDD*MM'SS`` (``long``) or ``sDD*MM``, rounded to the last digit.

    ``sign`` False and ``deg_digits`` 3 give the azimuth form ``DDD*MM'SS``;
    set commands use ``sec_sep=":"`` (``:SdsDD*MM:SS#``)."""
    neg = dec_deg < 0
    a = abs(dec_deg)
    if long:
        units = round(a * 3600.0)
        d, mi, s = units // 3600, units // 60 % 60, units % 60
        body = f"{d:0{deg_digits}d}{deg}{mi:02d}{sec_sep}{s:02d}"
    else:
        units = round(a * 60.0)
        d, mi = units // 60, units % 60
        body = f"{d:0{deg_digits}d}{deg}{mi:02d}"
    if not sign:
        return body
    return ("-" if neg and units else "+") + body


def parse_dec(text: str) -> float:
    """``sDD*MM'SS``, ``sDD*MM:SS``, ``sDD*MM`` (``*`` or 0xDF or ``°``) → degrees.

    Also reads the unsigned azimuth form ``DDD*MM'SS``. Raises ``ValueError``."""
    m = _ANGLE.match(text)
    if not m:
        raise ValueError(f"not an LX200 angle: {text!r}")
    d, mi = int(m[2]), int(m[3])
    s = float(m[4]) if m[4] is not None else 0.0
    if mi > 59 or s >= 60 or d > 360:
        raise ValueError(f"angle out of range: {text!r}")
    v = d + mi / 60.0 + s / 3600.0
    return -v if m[1] == "-" else v


# ----- NexStar / SynScan ------------------------------------------------------

def format_turns(deg: float, precise: bool = True) -> str:
    """An angle → fraction of a turn in hex: 8 digits (``precise``) or 4, rounded."""
    bits = 32 if precise else 16
    units = round((deg % 360.0) / 360.0 * (1 << bits)) % (1 << bits)
    return f"{units:0{bits // 4}X}"


def parse_turns(text: str) -> float:
    """4 or 8 hex digits (fraction of a turn) → degrees [0, 360). Raises ``ValueError``."""
    t = text.strip()
    if len(t) not in (4, 8) or not all(c in "0123456789abcdefABCDEF" for c in t):
        raise ValueError(f"not a NexStar angle: {text!r}")
    return int(t, 16) / float(1 << (4 * len(t))) * 360.0


def signed_deg(deg: float) -> float:
    """0–360 → −180–180 (NexStar sends a negative Dec or Alt as 360° + it)."""
    deg %= 360.0
    return deg - 360.0 if deg > 180.0 else deg


def format_pair(a_deg: float, b_deg: float, precise: bool = True) -> str:
    """Two angles as the protocol sends them: ``AAAA,BBBB`` or ``AAAAAAAA,BBBBBBBB``."""
    return f"{format_turns(a_deg, precise)},{format_turns(b_deg, precise)}"


def parse_pair(text: str) -> tuple[float, float]:
    """``AAAA,BBBB`` / ``AAAAAAAA,BBBBBBBB`` → (first in [0, 360), second in (−180, 180]).

    Raises ``ValueError``."""
    parts = text.strip().rstrip("#").split(",")
    if len(parts) != 2 or len(parts[0]) != len(parts[1]):
        raise ValueError(f"not a NexStar coordinate pair: {text!r}")
    return parse_turns(parts[0]), signed_deg(parse_turns(parts[1]))


# ----- shared astronomy for the mounts ---------------------------------------

def _rotate(lat1: float, ha_or_az: float, p: float) -> tuple[float, float]:
    """The coordinate change between (Dec, HA) and (Alt, Az) at latitude ``p`` (radians);
    it is its own inverse. atan2 of the vector's components keeps full precision at the
    zenith and the pole, where asin would not."""
    import math
    e = -math.cos(lat1) * math.sin(ha_or_az)
    n = math.sin(lat1) * math.cos(p) - math.cos(lat1) * math.sin(p) * math.cos(ha_or_az)
    u = math.sin(lat1) * math.sin(p) + math.cos(lat1) * math.cos(p) * math.cos(ha_or_az)
    return math.atan2(u, math.hypot(e, n)), math.atan2(e, n)


def altaz_from_radec(ra_deg: float, dec_deg: float, lst_deg: float,
                     lat_deg: float) -> tuple[float, float]:
    """(alt, az) in degrees from RA/Dec, local sidereal time and latitude; az from north
    through east. Standard spherical trigonometry (Meeus, *Astronomical Algorithms*, 13.5–13.6)."""
    import math
    alt, az = _rotate(math.radians(dec_deg), math.radians((lst_deg - ra_deg) % 360.0),
                      math.radians(lat_deg))
    return math.degrees(alt), math.degrees(az) % 360.0


def radec_from_altaz(alt_deg: float, az_deg: float, lst_deg: float,
                     lat_deg: float) -> tuple[float, float]:
    """The inverse of :func:`altaz_from_radec`: (RA, Dec) in degrees."""
    import math
    dec, ha = _rotate(math.radians(alt_deg), math.radians(az_deg), math.radians(lat_deg))
    return (lst_deg - math.degrees(ha)) % 360.0, math.degrees(dec)
