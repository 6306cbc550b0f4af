"""The capture sequencer's plan desk: what the Capture and Calibration screens ask of the plan.

A mixin of :class:`fieldtui.service.capture.Capture` (kept apart so the
sequencer's run stays readable): the plan as it stands (each sequence's
progress and time left, the recent lights' figures), loading a plan without
starting it (``capture.load``), changing a sequence (``capture.edit``),
appending sequences (the calibration checklist's ``calibration.append``) and
where the targets stand in the sky (``capture.sky``). Every change rewrites
the plan file atomically through :mod:`fieldtui.capture.planedit` (tomlkit:
the user's comments kept) and replaces the plan the running sequencer
follows: it takes the new plan at its next frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capture.plan import BIAS_EXPOSURE_S, Plan, PlanError, Sequence, parse_plan, template
from ..capture.planedit import Need, _effective, append_sequences, edit_sequence
from .journal import Journal

if TYPE_CHECKING:
    from .session import Session

OVERHEAD_S = 2.0        # time left: download and save between frames (plan.estimate's default)
DITHER_S = 15.0         # time left: one dither and settle
RECENT = 30             # lights whose figures the snapshot carries (the screen's trend)


def keep_body_positions(new: Plan, old: Plan) -> Plan:
    """``new`` with the Moon's and planets' positions of ``old`` where ``new`` has none (a plan
    file edited while loaded is parsed without the ephemeris; the positions are the load's)."""
    from dataclasses import replace
    where = {t.name: (t.ra_deg, t.dec_deg) for t in old.targets if t.body and t.ra_deg is not None}
    targets = tuple(replace(t, ra_deg=where[t.name][0], dec_deg=where[t.name][1])
                    if t.body and t.ra_deg is None and t.name in where else t for t in new.targets)
    return replace(new, targets=targets)


def slug(s: str) -> str:
    """The file-name form of a plan or target name (the sequencer's: its journal is named so)."""
    from .capture import _slug
    return _slug(s)


class PlanDesk:
    """Plan commands and views for :class:`~fieldtui.service.capture.Capture` (which provides
    ``s``, ``plan``, ``plan_path``, ``root``, ``journal``, ``task``, ``summary``, ``current``,
    ``last``, ``_done``, ``_flat_exp``, ``_key``, ``_load_journal`` and ``set_status``)."""

    s: "Session"
    plan: Plan | None
    plan_path: str | None
    root: Path | None

    # ----- the plan as it stands, and changing it --------------------------
    def done_counts(self) -> dict[str, int]:
        """Frames on disk per sequence key (``"ti:si:type"``)."""
        return {k: len(d) for k, d in self._done.items()}

    def sequences(self) -> list[dict[str, Any]]:
        """Each sequence of the plan in run order: ``target``, ``ti``, ``si``, ``type``,
        ``count``, ``done``, ``exposure`` (s, planned or as taken; None: decided when it
        runs), ``iso``, ``gain``, ``filter``, ``dither_every`` and ``left_s`` (its time still
        to run: exposures, :data:`OVERHEAD_S` each, dithers)."""
        assert self.plan is not None
        out = []
        for ti, si, t, s in self.plan.steps():
            done = self._done.get(self._key(ti, si, s), {})
            taken = next((r.get("exposure") for r in done.values() if r.get("exposure")), None)
            exp, iso, gain = _effective(t.sequences, s, self.s.cfg.main_camera.iso)
            exposure = taken or exp
            if exposure is None and s.type in ("flat", "darkflat"):
                exposure = self._flat_exp.get(self._key(ti, si, s)) or s.exposure
            if s.type == "bias":
                exposure = s.exposure or BIAS_EXPOSURE_S
            left = max(0, s.count - len(done))
            dithers = max(0, left - 1) // s.dither_every if s.dither_every else 0
            out.append({"target": t.name, "ti": ti, "si": si, "type": s.type, "count": s.count,
                        "done": min(len(done), s.count), "exposure": exposure, "iso": iso, "gain": gain,
                        "filter": s.filter, "dither_every": s.dither_every,
                        "left_s": left * ((exposure or 1.0) + OVERHEAD_S + s.delay) + dithers * DITHER_S})
        return out

    def recent_lights(self, n: int = RECENT) -> list[list[Any]]:
        """The last ``n`` lights' figures as ``[t, hfr, stars, saturated_pct, outlier]``."""
        recs = sorted((r for k, d in self._done.items() if k.endswith(":light") for r in d.values()),
                      key=lambda r: r.get("t") or 0.0)[-n:]
        out = []
        for r in recs:
            f = r.get("figures") or {}
            out.append([r.get("t"), f.get("hfr"), f.get("stars"), f.get("saturated_pct"), bool(r.get("outlier"))])
        return out

    def default_plan_path(self) -> Path:
        """``[plan] file``, else DATA/plans/<[plan] target>.toml (written from the [plan]
        section with the field guide's defaults when it does not exist)."""
        pc = self.s.cfg.plan
        if pc.file:
            return Path(pc.file).expanduser()
        path = self.s.cfg.storage.root / "plans" / f"{slug(pc.target)}.toml"
        if not path.exists():
            from ..atomic import write_bytes
            text = template(pc.target, pc.ra_deg, pc.dec_deg, exposure=pc.light_exposure_s,
                            iso=self.s.cfg.main_camera.iso)
            text = text.replace("count = 30\nexposure", f"count = {pc.light_count}\nexposure", 1)
            write_bytes(path, text.encode())
        return path

    async def cmd_load(self, plan: str | None = None, data: str | None = None) -> dict[str, Any]:
        """Show plan ``plan`` (default: :meth:`default_plan_path`) with what its journal says is
        done, without starting it. Raises ValueError for a bad plan, or while a plan runs."""
        if self.task is not None and not self.task.done():
            raise ValueError(f"plan {self.plan.name if self.plan else '?'} is running: abort it first")
        path = Path(plan).expanduser() if plan else self.default_plan_path()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read plan {path}: {exc.strerror or exc}") from None
        p = await self.parse_plan_now(text)
        self.plan, self.plan_path = p, str(path.resolve())
        self.root = Path(data).expanduser() if data else self.s.cfg.storage.root
        self.journal = Journal(self.root / ".capture" / f"{slug(p.name)}.jsonl")
        try:
            resumed = self._load_journal()
        finally:
            self.journal.close()
        self.current = None
        last = max((r for d in self._done.values() for r in d.values()), key=lambda r: r.get("t") or 0.0,
                   default=None)
        self.last = None if last is None else {
            "path": last.get("path"), "type": last.get("key", "::").split(":")[2],
            "figures": last.get("figures") or {}, "outlier": last.get("outlier") or [], "ended": last.get("t")}
        detail = (f"{p.name}: {self.summary['done']} of {self.summary['planned']} frames done"
                  if resumed else f"{p.name}: {self.summary['planned']} frames planned")
        self.set_status("idle", detail=detail)
        return {"plan": p.name, "path": self.plan_path, "planned": self.summary["planned"],
                "done": self.summary["done"], "resumed": resumed}

    async def parse_plan_now(self, text: str) -> Plan:
        """Parse a plan in a thread, the Moon and planets placed where they are now from the
        config's site (astropy's ephemeris: up to seconds on a first call). Raises PlanError."""
        return await self.s.clock.run_blocking(parse_plan, text, when=self.s.clock.now(), site=self.s.cfg.site)

    def _write_plan(self, text: str) -> Plan:
        """Parse ``text`` (PlanError names the entry; nothing is written then), write it to the
        plan file atomically and make it the plan the sequencer follows from its next frame."""
        from ..atomic import write_bytes
        assert self.plan is not None and self.plan_path is not None
        p = keep_body_positions(parse_plan(text), self.plan)
        if p.name != self.plan.name:
            raise PlanError(f"the plan's name changed ({self.plan.name} → {p.name}); its journal is by name")
        write_bytes(Path(self.plan_path), text.encode())
        self.plan = p
        self.summary["planned"] = sum(s.count for *_, s in p.steps())
        self.set_status(self.state, progress=self.summary.get("done", 0) / max(self.summary["planned"], 1),
                        detail=f"{p.name}: plan changed, {self.summary['planned']} frames")
        return p

    def _plan_text(self) -> str:
        if self.plan is None or self.plan_path is None:
            raise ValueError("no plan loaded (capture.load)")
        try:
            return Path(self.plan_path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read plan {self.plan_path}: {exc.strerror or exc}") from None

    async def cmd_edit(self, target: int, sequence: int, count: int | None = None,
                       exposure: float | None = None) -> dict[str, Any]:
        """Set the ``count`` and/or ``exposure`` (s) of sequence ``sequence`` of target
        ``target`` (0-based) in the plan file; a running plan follows at its next frame.

        Raises ValueError for a count below the frames already taken, an exposure change of
        a sequence with frames taken (its set would mix exposures) or in progress, or a value
        the plan refuses."""
        text = self._plan_text()
        assert self.plan is not None
        steps = {(ti, si): (t, s) for ti, si, t, s in self.plan.steps()}
        if (target, sequence) not in steps:
            raise ValueError(f"the plan has no sequence {sequence + 1} in target {target + 1}")
        t, s = steps[(target, sequence)]
        done = len(self._done.get(self._key(target, sequence, s), {}))
        what = f"{t.name} {s.type}s"
        if count is not None and count < max(done, 1):
            raise ValueError(f"{what}: {done} frames are taken; the count cannot go below {max(done, 1)}")
        if exposure is not None:
            if done:
                raise ValueError(f"{what}: {done} frames are taken at this exposure; a set never mixes "
                                 "exposures (lower its count and add a sequence in the plan file)")
            cur = self.current or {}
            if self.running and cur.get("target") == t.name and cur.get("type") == s.type:
                raise ValueError(f"{what}: a frame is being taken; change the exposure before it starts")
        p = self._write_plan(edit_sequence(text, target, sequence, count=count, exposure=exposure))
        s2 = p.targets[target].sequences[sequence]
        return {"target": t.name, "type": s2.type, "count": s2.count, "exposure": s2.exposure}

    def append_sequences(self, needs: list[Need]) -> list[str]:
        """Add ``needs`` to the loaded plan's file (see :func:`~fieldtui.capture.planedit.append_sequences`);
        a running plan takes them after its current sequence. Returns what was added, one line each.
        Raises ValueError when no plan is loaded or the result is not a valid plan."""
        if not needs:
            return []
        self._write_plan(append_sequences(self._plan_text(), needs))
        return [n.describe() for n in needs]

    async def cmd_sky(self, width: int = 0, height: int = 0) -> dict[str, Any]:
        """Where the loaded plan's targets are now and tonight, from the site in the config:
        ``{"now": t, "targets": [{"name", "alt_now", "rise", "transit", "transit_alt", "set",
        "dark", "up_in_dark"}]}`` (unix times; see :func:`fieldtui.capture.sky.target_tonight`).
        Targets without coordinates (calibration only) are left out. With ``width`` ≥ 40 and
        ``height`` ≥ 10 (characters) it adds ``plot``, the night's altitude plot as plain text
        (:func:`fieldtui.capture.sky.render_plot`, the plan scheduled from now), and
        ``warnings``, the plan's sky warnings (below the altitude limit, into dawn)."""
        from ..capture import sky
        if self.plan is None:
            raise ValueError("no plan loaded (capture.load)")
        site, now, plan = self.s.cfg.site, self.s.clock.now(), self.plan
        out = []
        for t in plan.targets:
            if t.ra_deg is None or t.dec_deg is None:
                continue
            r = await self.s.clock.run_blocking(sky.target_tonight, now, site, t.ra_deg, t.dec_deg,
                                                site.min_altitude_deg)
            out.append({"name": t.name, **r})
        res: dict[str, Any] = {"now": now, "targets": out}
        if width >= 40 and height >= 10 and any(t.ra_deg is not None or t.body for t in plan.targets):
            m = self.s.cfg.main_camera

            def timeline() -> tuple[str, list[str]]:
                tl = sky.plan_timeline(plan, site, now, min_alt_deg=site.min_altitude_deg,
                                       frame_bytes=m.width * m.height * 2 + 8640)
                warnings = list(tl.warnings)
                return sky.render_plot(tl, min(int(width), 200), min(int(height), 60), colour=False), warnings

            try:
                res["plot"], res["warnings"] = await self.s.clock.run_blocking(timeline)
            except (ValueError, sky.SkyError) as exc:
                res["plot"], res["warnings"] = "", [f"no altitude plot: {exc}"]
        return res

    def _seq_now(self, ti: int, si: int, s: Sequence) -> Sequence:
        """Sequence ``(ti, si)`` as the plan says now (edited while it runs), else ``s``."""
        assert self.plan is not None
        try:
            q = self.plan.targets[ti].sequences[si]
        except IndexError:
            return s
        return q if q.type == s.type else s

