"""The field guide's calibration rules, as pure functions over frame records.

A *frame record* is a mapping with the library's fields: ``type`` (light,
dark, flat, bias, darkflat), ``iso``, ``gain``, ``exposure`` (s),
``temperature`` (°C or None), ``filter``, ``night``, ``focus`` (focuser
position or None), and for flats ``mean_frac`` (mean above black as a
fraction of the range) and ``clipped_frac`` (fraction of pixels at the
white level).

For one set of lights (:class:`LightSet`), :func:`check_set` answers a
:class:`RuleState` per rule:

- **darks**: ≥ 10 at the same ISO/gain and exposure, sensor temperature
  within ``temp_tol_c`` (any night: the library's darks are reused);
- **flats**: ≥ 10 from the same night and focus position and filter, mean
  40–60 % of the range, nothing clipped;
- **biases**: ≥ 10 at the same ISO/gain (any night);
- **dark flats**: optional (done when ≥ 10 match the flats' exposure and ISO,
  else ``optional``).

States: ``done``, ``missing`` (nothing that could match), ``mismatched``
(frames exist but break the rule; the reason says which and how).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

MIN_FRAMES = 10
FLAT_MEAN_RANGE = (0.40, 0.60)


@dataclass(frozen=True)
class LightSet:
    """The lights one calibration set must match."""

    iso: int | None
    gain: int | None
    exposure: float
    temperature: float | None
    filter: str
    night: str
    focus: int | None
    count: int = 0

    def key(self) -> tuple:
        return (self.iso, self.gain, self.exposure, self.temperature, self.filter, self.night, self.focus)


@dataclass(frozen=True)
class RuleState:
    rule: str           # "darks", "flats", "biases", "darkflats"
    state: str          # "done", "missing", "mismatched", "optional"
    have: int           # matching frames
    need: int
    reason: str = ""


def _same(a, b) -> bool:
    return (a or None) == (b or None)


def _exp_eq(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-3 * max(abs(a), abs(b), 1e-6)


def light_sets(frames: Iterable[Mapping], temp_round_c: float = 1.0) -> list[LightSet]:
    """Group light records by ISO/gain, exposure, temperature (rounded to ``temp_round_c``),
    filter, night and focus position."""
    groups: Counter = Counter()
    for f in frames:
        if f.get("type") != "light":
            continue
        t = f.get("temperature")
        t = None if t is None else round(float(t) / temp_round_c) * temp_round_c
        groups[LightSet(f.get("iso"), f.get("gain"), float(f.get("exposure") or 0), t,
                        f.get("filter") or "", f.get("night") or "", f.get("focus"))] += 1
    return [LightSet(**{**s.__dict__, "count": n}) for s, n in sorted(groups.items(), key=lambda kv: str(kv[0].key()))]


def _setting(f: Mapping) -> str:
    return f"gain {f.get('gain')}" if f.get("gain") is not None else f"ISO {f.get('iso')}"


def _of(frames: Iterable[Mapping], typ: str) -> list[Mapping]:
    return [f for f in frames if f.get("type") == typ]


def check_darks(lights: LightSet, frames: Iterable[Mapping], temp_tol_c: float = 2.0) -> RuleState:
    darks = _of(frames, "dark")
    if not darks:
        return RuleState("darks", "missing", 0, MIN_FRAMES, "no darks")
    same_set = [f for f in darks if _same(f.get("iso"), lights.iso) and _same(f.get("gain"), lights.gain)]
    same_exp = [f for f in same_set if _exp_eq(f.get("exposure"), lights.exposure)]

    def warm(f: Mapping) -> bool:
        t = f.get("temperature")
        return lights.temperature is not None and t is not None and abs(t - lights.temperature) > temp_tol_c

    ok = [f for f in same_exp if not warm(f)]
    if len(ok) >= MIN_FRAMES:
        return RuleState("darks", "done", len(ok), MIN_FRAMES)
    if ok:
        return RuleState("darks", "missing", len(ok), MIN_FRAMES, f"{len(ok)} matching, need {MIN_FRAMES}")
    if same_exp:
        temps = sorted({round(f["temperature"]) for f in same_exp if f.get("temperature") is not None})
        return RuleState("darks", "mismatched", 0, MIN_FRAMES,
                         f"darks at {', '.join(f'{t} °C' for t in temps)}, lights at "
                         f"{lights.temperature:.0f} °C (tolerance ±{temp_tol_c:g} °C)")
    if same_set:
        exps = sorted({f.get('exposure') for f in same_set})
        return RuleState("darks", "mismatched", 0, MIN_FRAMES,
                         f"darks at {', '.join(f'{e:g} s' for e in exps)}, lights at {lights.exposure:g} s")
    others = sorted({_setting(f) for f in darks})
    want = f"gain {lights.gain}" if lights.gain is not None else f"ISO {lights.iso}"
    return RuleState("darks", "mismatched", 0, MIN_FRAMES, f"darks at {', '.join(others)}, lights at {want}")


def check_flats(lights: LightSet, frames: Iterable[Mapping]) -> RuleState:
    flats = [f for f in _of(frames, "flat") if (f.get("filter") or "") == lights.filter]
    if not flats:
        return RuleState("flats", "missing", 0, MIN_FRAMES, "no flats" + (f" with filter {lights.filter}" if lights.filter else ""))
    tonight = [f for f in flats if f.get("night") == lights.night]
    if not tonight:
        nights = sorted({str(f.get("night")) for f in flats})
        return RuleState("flats", "mismatched", 0, MIN_FRAMES,
                         f"flats from {', '.join(nights)}, lights from {lights.night}: flats must be from the same night")
    focused = [f for f in tonight if f.get("focus") == lights.focus]
    if not focused:
        pos = sorted({str(f.get("focus")) for f in tonight})
        return RuleState("flats", "mismatched", 0, MIN_FRAMES,
                         f"flats at focus position {', '.join(pos)}, lights at {lights.focus}: the focus moved")
    lo, hi = FLAT_MEAN_RANGE
    good = [f for f in focused if f.get("mean_frac") is not None and lo <= f["mean_frac"] <= hi
            and not (f.get("clipped_frac") or 0) > 0]
    if len(good) >= MIN_FRAMES:
        return RuleState("flats", "done", len(good), MIN_FRAMES)
    bad = [f for f in focused if f not in good]
    if bad and not good:
        f = bad[0]
        why = ("clipped" if (f.get("clipped_frac") or 0) > 0 else
               f"mean {100 * f['mean_frac']:.0f} % (want 40-60 %)" if f.get("mean_frac") is not None
               else "mean not measured")
        return RuleState("flats", "mismatched", 0, MIN_FRAMES, f"{len(bad)} flats unusable: {why}")
    return RuleState("flats", "missing", len(good), MIN_FRAMES, f"{len(good)} usable, need {MIN_FRAMES}")


def check_biases(lights: LightSet, frames: Iterable[Mapping]) -> RuleState:
    biases = _of(frames, "bias")
    if not biases:
        return RuleState("biases", "missing", 0, MIN_FRAMES, "no biases")
    ok = [f for f in biases if _same(f.get("iso"), lights.iso) and _same(f.get("gain"), lights.gain)]
    if len(ok) >= MIN_FRAMES:
        return RuleState("biases", "done", len(ok), MIN_FRAMES)
    if ok:
        return RuleState("biases", "missing", len(ok), MIN_FRAMES, f"{len(ok)} matching, need {MIN_FRAMES}")
    others = sorted({_setting(f) for f in biases})
    want = f"gain {lights.gain}" if lights.gain is not None else f"ISO {lights.iso}"
    return RuleState("biases", "mismatched", 0, MIN_FRAMES, f"biases at {', '.join(others)}, lights at {want}")


def check_darkflats(lights: LightSet, frames: Iterable[Mapping]) -> RuleState:
    flats = [f for f in _of(frames, "flat") if f.get("night") == lights.night]
    dfs = _of(frames, "darkflat")
    ok = [d for d in dfs if any(_exp_eq(d.get("exposure"), f.get("exposure")) and _same(d.get("iso"), f.get("iso"))
                                for f in flats)]
    if len(ok) >= MIN_FRAMES:
        return RuleState("darkflats", "done", len(ok), MIN_FRAMES)
    return RuleState("darkflats", "optional", len(ok), MIN_FRAMES,
                     "optional (biases stand in for short flats)" if not ok else f"{len(ok)} matching")


def check_set(lights: LightSet, frames: Iterable[Mapping], temp_tol_c: float = 2.0) -> list[RuleState]:
    """Every rule for one set of lights, in the order darks, flats, biases, dark flats."""
    frames = list(frames)
    return [check_darks(lights, frames, temp_tol_c), check_flats(lights, frames),
            check_biases(lights, frames), check_darkflats(lights, frames)]


def checklist(frames: Iterable[Mapping], temp_tol_c: float = 2.0) -> list[tuple[LightSet, list[RuleState]]]:
    """Every light set in ``frames`` with its rule states."""
    frames = list(frames)
    return [(s, check_set(s, frames, temp_tol_c)) for s in light_sets(frames)]
