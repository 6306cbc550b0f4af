"""Checks for the arguments a client sends with a command.

A command's numbers come over the socket from any client (the app, a
script, ``fieldtui service``): NaN, infinities, negatives, strings and
booleans all arrive.  Each check raises ValueError with one line naming the
command, the argument, what it must be and what came, e.g.
``guide.dither: amount_px must be pixels from 0 to 500, not nan``; the
service answers the client with it and nothing changes.
"""

from __future__ import annotations

import math
from typing import Any


def _shown(value: Any) -> str:
    """The value as the message shows it: 'nan', '-5', "'abc'" (a string quoted)."""
    if isinstance(value, float):
        return format(value, "g")
    return repr(value)


def number(command: str, name: str, value: Any, lo: float, hi: float, expected: str, *,
           lo_open: bool = False, integer: bool = False) -> float:
    """``value`` as a float (an int when ``integer``), if it is a finite number in
    [``lo``, ``hi``] (``lo`` itself refused with ``lo_open``); else ValueError
    '``command``: ``name`` must be ``expected``, not ``value``'.  Booleans and
    strings are refused (a JSON ``true`` is not 1)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
              and (not integer or v == int(v)))
    if not ok:
        raise ValueError(f"{command}: {name} must be {expected}, not {_shown(value)}")
    return int(v) if integer else v


def optional_number(command: str, name: str, value: Any, lo: float, hi: float, expected: str, *,
                    lo_open: bool = False, integer: bool = False) -> float | None:
    """None stays None (the default applies); anything else as :func:`number`."""
    if value is None:
        return None
    return number(command, name, value, lo, hi, expected, lo_open=lo_open, integer=integer)


def flag(command: str, name: str, value: Any, optional: bool = False) -> bool | None:
    """``value`` if it is true or false (or None when ``optional``), else ValueError
    (a string "no" is not false)."""
    if isinstance(value, bool) or (optional and value is None):
        return value
    expected = "true or false" + (" (or left out)" if optional else "")
    raise ValueError(f"{command}: {name} must be {expected}, not {_shown(value)}")
