"""Changing a plan in place, and what the calibration rules say to add to it (pure code).

- :func:`edit_sequence` sets a sequence's ``count`` or ``exposure``;
- :func:`append_sequences` adds sequences at the end of their target (a new
  ``[[target]]`` when the plan has none of that name);
- :func:`needed_sequences` turns the calibration rules' states
  (:mod:`.calibration`) into the sequences that would make them ``done``;
- :func:`queued_in_plan` says how many frames of such a sequence the plan will
  still take, so nothing is asked for twice.

Edits go through tomlkit, so the user's comments and layout stay as they
were; every result is parsed again with :func:`.plan.parse_plan` (a bad edit
raises :class:`~.plan.PlanError` and changes nothing). Writing the file is
the caller's (atomically: :mod:`fieldtui.atomic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import tomlkit

from .calibration import MIN_FRAMES, LightSet, RuleState
from .plan import DEFAULT_COUNTS, Plan, PlanError, Sequence, parse_plan


@dataclass(frozen=True)
class Need:
    """A sequence to add for one light set: ``target`` is the lights' OBJECT, ``count``
    the frames still missing, ``reason`` the rule's. ``exposure`` None: the sequencer
    decides (flats find theirs, biases take the shortest)."""

    target: str
    type: str
    count: int
    exposure: float | None
    iso: int | None
    gain: int | None
    filter: str
    night: str
    reason: str = ""

    def describe(self) -> str:
        setting = f"gain {self.gain}" if self.gain is not None else f"ISO {self.iso}"
        exp = f" {self.exposure:g} s" if self.exposure is not None else ""
        filt = f" {self.filter}" if self.filter else ""
        plural = {"bias": "biases", "darkflat": "dark flats"}.get(self.type, f"{self.type}s")
        return f"{self.count} {plural}{exp} {setting}{filt} for {self.target}"


def _doc(text: str) -> Any:
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # noqa: BLE001 - tomlkit's parse errors have no common base
        raise PlanError(f"not valid TOML: {exc}") from None


def edit_sequence(text: str, target: int, sequence: int, *, count: int | None = None,
                  exposure: float | None = None, resolver: Any = None) -> str:
    """The plan ``text`` with target ``target``'s sequence ``sequence`` (both 0-based) given
    ``count`` and/or ``exposure`` (s); other keys, comments and layout unchanged.

    Raises PlanError for an index the plan does not have or a value the plan refuses
    (the message names the entry, as :func:`parse_plan` does)."""
    doc = _doc(text)
    targets = doc.get("target")
    if not isinstance(targets, list) or not 0 <= target < len(targets):
        raise PlanError(f"the plan has no target {target + 1}")
    seqs = targets[target].get("sequence")
    if not isinstance(seqs, list) or not 0 <= sequence < len(seqs):
        raise PlanError(f"target {target + 1} has no sequence {sequence + 1}")
    if count is not None:
        seqs[sequence]["count"] = int(count)
    if exposure is not None:
        seqs[sequence]["exposure"] = float(exposure)
    new = tomlkit.dumps(doc)
    parse_plan(new, resolver=resolver)
    return new


def append_sequences(text: str, needs: Iterable[Need], resolver: Any = None) -> str:
    """The plan ``text`` with one ``[[target.sequence]]`` per need, after the last sequence
    of the target of that name (a new ``[[target]]`` at the end when there is none).

    Raises PlanError when the result is not a valid plan."""
    doc = _doc(text)
    targets = doc.get("target")
    if not isinstance(targets, list):
        raise PlanError("the plan has no [[target]]")
    for n in needs:
        tab = next((t for t in targets if str(t.get("name", "")).strip() == n.target), None)
        if tab is None:
            tab = tomlkit.table()
            tab["name"] = n.target
            tab["sequence"] = tomlkit.aot()
            targets.append(tab)
            tab = targets[-1]
        seq = tomlkit.table()
        seq.add(tomlkit.comment(f"added by the calibration checklist: {n.reason}"[:200]) if n.reason
                else tomlkit.nl())
        seq["type"] = n.type
        seq["count"] = int(n.count)
        if n.exposure is not None:
            seq["exposure"] = float(n.exposure)
        if n.gain is not None:
            seq["gain"] = int(n.gain)
        elif n.iso is not None:
            seq["iso"] = int(n.iso)
        if n.filter:
            seq["filter"] = n.filter
        tab["sequence"].append(seq)
    new = tomlkit.dumps(doc)
    parse_plan(new, resolver=resolver)
    return new


def _want(rule: str, done: int) -> int:
    """Frames to ask for when ``done`` match: the template's count (the field guide's
    "more lowers the noise"), never less than the rule's minimum."""
    typ = {"darks": "dark", "flats": "flat", "biases": "bias"}[rule]
    return max(MIN_FRAMES, DEFAULT_COUNTS[typ]) - done


def needed_sequences(sets: Iterable[tuple[LightSet, list[RuleState], str]], tonight: str) -> list[Need]:
    """What to add so every rule is ``done``: for each (light set, its rule states, the
    lights' OBJECT), darks at the lights' ISO/gain and exposure, flats with their filter
    (only for tonight's lights: flats from another night break the rule), biases at their
    ISO/gain. Dark flats are optional and never added. One need per distinct sequence:
    two light sets that want the same darks get one sequence."""
    out: dict[tuple, Need] = {}
    for s, rules, target in sets:
        for r in rules:
            if r.state not in ("missing", "mismatched") or r.rule not in ("darks", "flats", "biases"):
                continue
            if r.rule == "flats" and s.night != tonight:
                continue
            typ = {"darks": "dark", "flats": "flat", "biases": "bias"}[r.rule]
            exposure = s.exposure if typ == "dark" else None
            filt = s.filter if typ == "flat" else ""
            key = (target, typ, exposure, s.iso, s.gain, filt)
            count = _want(r.rule, r.have)
            prev = out.get(key)
            if prev is None or prev.count < count:
                out[key] = Need(target, typ, count, exposure, s.iso, s.gain, filt, s.night, r.reason)
    return list(out.values())


def _effective(t_seqs: tuple[Sequence, ...], s: Sequence, default_iso: int | None) -> tuple:
    """(exposure, ISO, gain) sequence ``s`` will be taken at, by the sequencer's rules:
    given, else the target's first light sequence's; flats' and biases' exposure None."""
    light = next((q for q in t_seqs if q.type == "light"), None)
    iso = s.iso if s.iso is not None else (light.iso if light is not None and s.gain is None else None)
    gain = s.gain if s.gain is not None else (light.gain if light is not None and iso is None else None)
    if iso is None and gain is None:
        iso = default_iso
    exp = s.exposure
    if s.type == "dark" and exp is None and light is not None:
        exp = light.exposure
    if s.type in ("flat", "bias"):
        exp = None
    return exp, iso, gain


def queued_in_plan(need: Need, plan: Plan, done: Mapping[str, int], default_iso: int | None = None) -> int:
    """Frames matching ``need`` that ``plan`` will still take: sequences of its target and
    type at the same ISO/gain, exposure (darks) and filter (flats), less the frames ``done``
    (keyed ``"ti:si:type"`` as the sequencer's journal)."""
    left = 0
    for ti, si, t, s in plan.steps():
        if t.name != need.target or s.type != need.type:
            continue
        exp, iso, gain = _effective(t.sequences, s, default_iso)
        if (iso or None) != (need.iso or None) or (gain if gain is not None else None) != need.gain:
            continue
        if need.type == "dark" and (exp is None or abs(exp - (need.exposure or 0)) > 1e-3 * max(exp, 1e-6)):
            continue
        if need.type == "flat" and (s.filter or "") != need.filter:
            continue
        left += max(0, s.count - int(done.get(f"{ti}:{si}:{s.type}", 0)))
    return left
