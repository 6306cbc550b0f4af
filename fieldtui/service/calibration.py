"""The calibration checklist in the rig service: the field guide's rules for every set of
lights in the frame library, and one command to add what is missing to the plan.

``calibration.check`` brings the library (:mod:`fieldtui.library`, DATA/.library.sqlite)
up to date with the files under the data root (only new or changed files are
read), groups the lights into sets (ISO/gain, exposure, temperature, filter,
night, focus) and answers each rule's state (:mod:`fieldtui.capture.calibration`):
done, missing or mismatched with the reason, optional for dark flats. A missing
rule that the loaded plan will still satisfy says how many frames are
``queued`` there. ``calibration.append`` adds a sequence for every rule still
short (:func:`fieldtui.capture.planedit.needed_sequences`) to the plan the
capture sequencer has loaded; a running plan takes them after its current
sequence, otherwise they wait in the file for the next start.

The library scan reads FITS headers: it runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capture.calibration import LightSet, checklist
from ..capture.planedit import Need, needed_sequences, queued_in_plan
from .activity import Activity

if TYPE_CHECKING:
    from .session import Session


def scan_and_check(root: Path, temp_tol_c: float) -> tuple[list[tuple[LightSet, list[Any], str]], int]:
    """Index the frames under ``root`` (its library, made if missing) and check every light set.

    Returns ([(light set, rule states, the lights' most common OBJECT)], frames indexed).
    Blocking (file reads, SQLite): call it in a thread."""
    from ..library import Library, default_db
    root = Path(root)
    if not root.is_dir():
        return [], 0
    lib = Library(default_db(root))
    try:
        lib.scan(root)
        frames = lib.frames("path LIKE ?", (f"{root.resolve()}/%",))
    finally:
        lib.close()
    out = []
    for s, rules in checklist(frames, temp_tol_c):
        objects = Counter(str(f.get("object") or "") for f in frames if f.get("type") == "light"
                          and f.get("night") == s.night and f.get("filter", "") == s.filter
                          and f.get("iso") == s.iso and f.get("gain") == s.gain
                          and abs(float(f.get("exposure") or 0) - s.exposure) < 1e-6)
        obj = objects.most_common(1)[0][0] if objects else ""
        out.append((s, rules, obj or "calibration"))
    return out, len(frames)


class CalibrationCheck(Activity):
    """The calibration checklist (see the module docstring)."""

    name = "calibration"
    attribute = "calibration"

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.sets: list[tuple[LightSet, list[Any], str]] = []
        self.checked: float | None = None
        self.frames = 0
        self.root: Path | None = None
        self._lock = asyncio.Lock()  # one scan at a time (several clients may ask at once)

    def commands(self) -> dict[str, Any]:
        return {"calibration.check": self.cmd_check, "calibration.append": self.cmd_append}

    def _root(self, data: str | None) -> Path:
        if data:
            return Path(data).expanduser()
        cap = getattr(self.s, "capture", None)
        if cap is not None and cap.root is not None:
            return Path(cap.root)
        return self.s.cfg.storage.root

    def _plan_state(self) -> tuple[Any, dict[str, int]]:
        cap = getattr(self.s, "capture", None)
        if cap is None or cap.plan is None:
            return None, {}
        return cap.plan, cap.done_counts()

    def needs(self) -> list[tuple[Need, int]]:
        """Every sequence the last check says is missing, with the frames of it the loaded plan
        will still take (``(need, queued)``)."""
        plan, done = self._plan_state()
        out = []
        for n in needed_sequences(self.sets, self.s.night):
            q = queued_in_plan(n, plan, done, self.s.cfg.main_camera.iso) if plan is not None else 0
            out.append((n, q))
        return out

    def snapshot(self) -> dict[str, Any] | None:
        if self.checked is None:
            return None
        plan, _ = self._plan_state()
        tonight = self.s.night
        sets = []
        all_needs = self.needs()
        for s, rules, obj in self.sets:
            needs = {(n.type, n.filter): (n, q) for n, q in all_needs
                     if n.target == obj and n.iso == s.iso and n.gain == s.gain
                     and (n.type != "dark" or n.exposure == s.exposure)}
            rows = []
            for r in rules:
                typ = {"darks": "dark", "flats": "flat", "biases": "bias"}.get(r.rule)
                nq = needs.get((typ, s.filter if typ == "flat" else ""))
                row = {"rule": r.rule, "state": r.state, "have": r.have, "need": r.need, "reason": r.reason,
                       "queued": nq[1] if nq else 0}
                if r.rule == "flats" and r.state != "done" and s.night != tonight:
                    row["note"] = "cannot be made up: flats must be from the lights' night"
                rows.append(row)
            sets.append({"object": obj, "iso": s.iso, "gain": s.gain, "exposure": s.exposure,
                         "temperature": s.temperature, "filter": s.filter, "night": s.night,
                         "focus": s.focus, "count": s.count, "rules": rows})
        sets.sort(key=lambda x: (x["night"] != tonight, [-ord(c) for c in x["night"]], x["object"]))
        return {"checked": self.checked, "root": str(self.root), "frames": self.frames, "night": tonight,
                "plan": plan.name if plan is not None else None, "sets": sets}

    async def cmd_check(self, data: str | None = None) -> dict[str, Any]:
        """Scan the library under ``data`` (default: the loaded plan's data root, else the
        configured one) and check every set of lights; returns the snapshot."""
        root = self._root(data)
        async with self._lock:
            self.set_status("running", detail=f"scanning {root}")
            try:
                self.sets, self.frames = await self.s.clock.run_blocking(
                    scan_and_check, root, self.s.cfg.plan.dark_temp_tolerance_c)
            except Exception:
                self.set_status("idle", detail="the check failed")
                raise
        self.root, self.checked = root, self.s.clock.now()
        short = sum(1 for _, rules, _ in self.sets for r in rules if r.state in ("missing", "mismatched"))
        self.set_status("idle", detail=f"{len(self.sets)} light sets, {short} rules short")
        return self.snapshot() or {}

    async def cmd_append(self, data: str | None = None) -> dict[str, Any]:
        """Check again, then add to the loaded plan a sequence for every rule still short that
        the plan does not already queue (the rest of a partly queued need is added). Returns
        ``added`` and ``queued`` (one line each). Raises ValueError with no plan loaded."""
        cap = getattr(self.s, "capture", None)
        if cap is None or cap.plan is None:
            raise ValueError("no plan loaded: the Capture screen (o) or capture.load loads one")
        await self.cmd_check(data)
        add, queued = [], []
        for n, q in self.needs():
            if q >= n.count:
                queued.append(f"{n.describe()}: already in the plan ({q} to take)")
            else:
                add.append(Need(**{**n.__dict__, "count": n.count - q}))
        added = cap.append_sequences(add)
        self.set_status("idle", detail=f"{len(added)} sequences added to {cap.plan.name}")
        return {"added": added, "queued": queued, "plan": cap.plan.name, "running": cap.running}
