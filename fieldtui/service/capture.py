"""The capture sequencer: runs a plan (:mod:`fieldtui.capture.plan`) on the main camera.

``capture.start plan=PATH [data=DIR]`` leases the main camera and runs the
plan's sequences in order; ``capture.pause`` (after the current frame),
``capture.resume``, ``capture.skip`` (the rest of the current sequence),
``capture.abort [now=true]`` (after the current frame, or at once: the frame
in progress is dropped and taken again on the next start).

Every frame goes through the journal (:mod:`fieldtui.service.journal`)
before the sequencer moves on: ``started`` before the exposure, ``saving``
with its final name before the file is written (atomically: a hidden
``.NAME.*.part`` then a rename, never over an existing file), ``finished``
once it is on disk. A start with a journal for the same plan resumes exactly
where it stopped: finished frames are kept, a frame whose file landed but
whose ``finished`` record did not is adopted, a frame in progress is taken
again, leftover ``.part`` files are removed.

Lights are measured as they land (:func:`fieldtui.imaging.metrics.frame_metrics`)
and marked when they depart from the sequence's running median; every N
lights the guider dithers and settles (``guide.dither``; skipped with a
note when not guiding). Flats find their own exposure (mean 50 % ± 5 %),
darks take the lights' ISO and exposure (and warn when the sensor is not at
the lights' temperature), biases the shortest exposure. Before each frame
the free space is checked: below ``[storage] min_free_gb`` plus one frame,
the run stops cleanly. A camera that drops or disconnects is waited for and
the frame retried (``RETRIES`` times). A completed sequence is announced with
:class:`~fieldtui.events.CaptureSetFinished`.

The plan can change while it runs: ``capture.load [plan=PATH]`` shows a plan
(with what its journal says is done) without starting it, ``capture.edit
target=I sequence=J [count=N] [exposure=S]`` changes a sequence, and
:meth:`Capture.append_sequences` (the calibration checklist's
``calibration.append``) adds sequences. Each rewrites the plan file
atomically (tomlkit: comments kept) and the running sequencer takes the new
plan at its next frame: a longer or appended sequence is taken, a count
lowered to the frames done ends its sequence (:mod:`.capture_plan`).

Between frames the sequencer also acts by itself (``[capture]`` in the
configuration; each wait is published as :class:`~fieldtui.events.CaptureWaiting`):

- **Filter change** (no filter wheel): before a light or flat sequence whose
  filter differs from the one in the train, it pauses and asks; ``capture.resume``
  goes on.
- **Meridian**: from the mount's hour angle (LST − RA) and pier side, a light that
  would end more than ``meridian_limit_min`` past the meridian, or any light once the
  target is ``flip_after_min`` past it, is preceded by a flip (:meth:`Capture._flip`:
  stop guiding, flip, slew back to the coordinates, pick a guide star again and guide
  with the flipped calibration, settle). A mount that cannot flip (or
  ``meridian_flip = false``) pauses with a message before the frame that would run past
  the limit.
- **Guiding trouble**: a light exposed while the guide star was lost or drifted away is
  discarded (journal ``discarded``) and taken again once guiding is back and settled.
- **Refocus**: when the median HFR of the last 3 lights is ``refocus_hfr_pct`` above the
  first 3 after focusing, or the temperature moved ``refocus_temp_c``, an autofocus run
  (V curve through ``autofocus_points`` focuser positions) when there is a focuser, else
  an alert.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capture.plan import BIAS_EXPOSURE_S, Plan, PlanError, Sequence, Target, frame_name, parse_plan
from ..capture.quality import (ELONGATION_MAX, FLAT_TARGET, FLAT_TOLERANCE, flat_level, next_flat_exposure,
                               outlier_reasons)
from ..devices.base import DeviceDisconnected, DeviceError
from ..devices.proxy import DeviceBusy
from ..events import CaptureFrame, CaptureSetFinished, CaptureWaiting
from .activity import Activity
from .capture_plan import PlanDesk
from .journal import Journal

if TYPE_CHECKING:
    from ..devices.proxy import DeviceProxy
    from ..frame import Frame
    from .session import Session

log = logging.getLogger(__name__)

RETRIES = 10            # a dropped frame: attempts before the run stops
LOST_WAIT_S = 600.0     # a disconnected camera: how long to wait for it to come back
FLAT_TRIES = 10         # test exposures to find a flat's exposure
DARK_TEMP_TOL_C = 2.0   # darks warmer or colder than the lights by more: a warning
FLAT_START_S = 0.5      # the first test exposure of a flat search (a screen or panel)
SIDEREAL_S_PER_HA_MIN = 59.836  # seconds of time per minute of hour angle (a sidereal minute)
DOWNLOAD_MARGIN_S = 30.0  # a light's end for the meridian check: exposure plus download
GUIDE_BACK_S = 1800.0   # a flip: how long the guider may take to guide again
HFR_WINDOW = 3          # lights in the refocus trigger's reference and recent medians
RECENTRE_MIN_PX = 10.0  # after a flip: a framing offset above this (main px) is corrected
RECENTRE_STEP_PX = 8.0  # the guide-lock moves (guide px) that measure the cameras' relation
RECENTRE_DONE_PX = 3.0  # ... and the correction moves repeat while more than this is left
RECENTRE_MOVES = 3      # (at most this many)


class _Stop(Exception):
    """The run ends cleanly (disk full, camera gone, flats unreachable): state ``stopped``."""


def disk_free_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def write_frame(path: Path, frame: "Frame", extra: dict[str, Any]) -> Path:
    """Write ``frame`` as FITS at ``path`` atomically, with the standard keywords and
    ``extra`` ones; raises FileExistsError rather than replace a file."""
    from astropy.io import fits

    from ..atomic import write_with
    from ..imaging.io import fits_header
    if path.exists():
        raise FileExistsError(f"{path} exists; frames are never overwritten")
    h = fits_header(frame)
    for k, v in extra.items():
        if v is not None:
            h[k] = v
    hdu = fits.PrimaryHDU(data=frame.data, header=h)
    return write_with(path, hdu.writeto)


def _slug(s: str) -> str:
    return re.sub(r"[^\w.+\-]+", "_", s.strip()) or "plan"


def remove_parts(path: Path) -> int:
    """Remove the hidden ``.NAME.*.part`` files an interrupted atomic write of ``path`` left."""
    n = 0
    if path.parent.is_dir():
        for p in path.parent.glob(f".{path.name}.*.part"):
            p.unlink(missing_ok=True)
            n += 1
    return n


class Capture(PlanDesk, Activity):
    """The capture sequencer (see the module docstring)."""

    name = "capture"
    attribute = "capture"
    resumable = True

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.plan: Plan | None = None
        self.plan_path: str | None = None
        self.root: Path | None = None
        self.journal: Journal | None = None
        self.task: asyncio.Task[Any] | None = None
        self._run_ok = asyncio.Event()
        self._run_ok.set()
        self._skip = False
        self._abort_after = False
        self.retry_s = 5.0
        self.summary: dict[str, Any] = {}
        self.current: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self._done: dict[str, dict[int, dict[str, Any]]] = {}
        self._announced: set[str] = set()
        self._flat_exp: dict[str, float] = {}
        self._dither_note = False
        self.waiting: dict[str, str] | None = None  # what the sequencer waits for (None: nothing)
        self._filter: str | None = None        # the filter in the train (None: not known yet)
        self._meridian_ack: set[int] = set()   # targets the user took past the meridian by hand
        self._east_seen: int | None = None     # target seen east of the meridian (pier side unknown)
        self._focus_hfr: list[float] = []      # lights' HFR since the last focus
        self._focus_temp: float | None = None  # temperature at the last focus
        self._last_light: Path | None = None   # the last light written (the framing reference)
        self._framing_ref: Any = None          # its frame, read back after a flip

    # ----- commands -------------------------------------------------------
    def commands(self) -> dict[str, Any]:
        return {"capture.start": self.cmd_start, "capture.pause": self.cmd_pause,
                "capture.resume": self.cmd_resume, "capture.skip": self.cmd_skip,
                "capture.abort": self.cmd_abort, "capture.load": self.cmd_load,
                "capture.edit": self.cmd_edit, "capture.sky": self.cmd_sky}

    async def cmd_start(self, plan: str | None = None, data: str | None = None) -> dict[str, Any]:
        """Start (or resume) the plan in file ``plan`` (default: the one loaded, else
        :meth:`default_plan_path`); frames under ``data`` (default: the configured data
        root). Raises ValueError for a bad plan or a busy camera."""
        if self.task is not None and not self.task.done():
            raise ValueError(f"plan {self.plan.name if self.plan else '?'} is already running")
        if plan is None:
            plan = self.plan_path or str(self.default_plan_path())
            data = data if data is not None else (str(self.root) if self.root is not None else None)
        try:
            text = Path(plan).expanduser().read_text()
        except OSError as exc:
            raise ValueError(f"cannot read plan {plan}: {exc.strerror or exc}") from None
        p = await self.parse_plan_now(text)  # PlanError is a ValueError: one line naming the entry
        try:
            cam = self.lease("main_camera")
        except DeviceBusy as exc:
            raise ValueError(str(exc)) from None
        self.plan, self.plan_path = p, str(Path(plan).expanduser().resolve())
        self.root = Path(data).expanduser() if data else self.s.cfg.storage.root
        self.journal = Journal(self.root / ".capture" / f"{_slug(p.name)}.jsonl")
        resumed = self._load_journal()
        self._skip = self._abort_after = False
        self._run_ok.set()
        self.task = self.spawn(self._run(cam), name="capture")
        self.set_status("running", detail=f"{p.name}: {'resuming' if resumed else 'starting'}")
        return {"plan": p.name, "journal": str(self.journal.path), "resumed": resumed,
                "planned": self.summary["planned"], "done": self.summary["done"]}

    async def run_plan(self, plan: str, data: str | None = None) -> dict[str, Any]:
        """Start the plan and return its summary once it has ended (done, stopped, failed)."""
        await self.cmd_start(plan, data)
        assert self.task is not None
        try:
            await asyncio.shield(self.task)
        except Exception:  # noqa: BLE001 - the activity reports it (failed, with the reason)
            pass
        return dict(self.summary, state=self.state, reason=self.reason)

    async def cmd_pause(self) -> str:
        self._run_ok.clear()
        if self.running:
            self.set_status(self.state, detail="pausing after this frame")
        return "pausing after this frame"

    async def cmd_resume(self) -> str:
        self._run_ok.set()
        if self.running:
            self.set_status("running", detail="running")
        return "running"

    async def cmd_skip(self) -> str:
        self._skip = True
        return "skipping the rest of this sequence after this frame"

    async def cmd_abort(self, now: bool = False) -> str:
        if self.task is None or self.task.done():
            return "not running"
        if now:
            self.task.cancel()
            return "aborted"
        self._abort_after = True
        self._run_ok.set()
        self.set_status(self.state, detail="stopping after this frame")
        return "stopping after this frame"

    # ----- what the service shows and records --------------------------------
    def snapshot(self) -> dict[str, Any] | None:
        if self.plan is None:
            return None
        seqs = self.sequences()
        return {"plan": self.plan.name, "paused": not self._run_ok.is_set(), "waiting": self.waiting,
                "planned": self.summary.get("planned", 0), "done": self.summary.get("done", 0),
                "total": self.summary.get("planned", 0),
                "failed": self.summary.get("failed", 0), "current": self.current, "last": self.last,
                "path": self.plan_path, "root": str(self.root) if self.root is not None else None,
                "running": self.task is not None and not self.task.done(),
                "sequences": seqs, "left_s": round(sum(q["left_s"] for q in seqs), 1),
                "at": self.s.clock.now(), "recent": self.recent_lights(),
                "targets": [{"name": t.name, "ra_deg": t.ra_deg, "dec_deg": t.dec_deg}
                            for t in self.plan.targets]}

    def record(self) -> dict[str, Any] | None:
        if self.task is None or self.task.done() or self.plan_path is None:
            return None
        return {"state": "running", "plan": self.plan_path, "data": str(self.root)}

    async def resume(self, record: dict[str, Any]) -> Any:
        return await self.cmd_start(record["plan"], record.get("data"))

    async def shutdown(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except BaseException:  # noqa: BLE001 - stopping
                pass
            self.set_status("stopped", detail="stopped with the service; the next start resumes")
        if self.journal is not None:
            self.journal.close()

    # ----- the journal ----------------------------------------------------
    @staticmethod
    def _key(ti: int, si: int, s: Sequence) -> str:
        return f"{ti}:{si}:{s.type}"

    def _load_journal(self) -> bool:
        """Read back what the journal says is done; adopt frames saved but not recorded;
        remove half-written files. Returns whether anything was taken up again."""
        assert self.journal is not None and self.plan is not None and self.root is not None
        recs = self.journal.read()
        self._done, self._announced, self._flat_exp = {}, set(), {}
        self._filter = None
        self._focus_hfr, self._focus_temp, self._meridian_ack = [], None, set()
        saving: dict[tuple[str, int], dict[str, Any]] = {}
        for r in recs:
            ev = r["ev"]
            if ev == "saving":
                saving[(r["key"], r["index"])] = r
            elif ev == "finished":
                saving.pop((r["key"], r["index"]), None)
                self._done.setdefault(r["key"], {})[r["index"]] = r
            elif ev == "set":
                self._announced.add(r["key"])
            elif ev == "flat_exposure":
                self._flat_exp[r["key"]] = float(r["exposure"])
            elif ev == "filter":
                self._filter = r.get("filter")
        adopted = 0
        for (key, idx), r in saving.items():
            path = self.root / r["path"]
            remove_parts(path)
            if path.exists():  # renamed into place, killed before "finished": the frame is whole
                rec = dict(r, ev="finished", adopted=True)
                rec.pop("ev")
                self._done.setdefault(key, {})[idx] = self.journal.append("finished", **rec)
                adopted += 1
        resumed = any(r["ev"] in ("started", "finished") for r in recs)
        if not recs:
            self.journal.append("plan", name=self.plan.name, path=self.plan_path, t=self.s.clock.now())
        planned = sum(s.count for *_, s in self.plan.steps())
        done = sum(min(len(self._done.get(self._key(ti, si, s), {})), s.count)
                   for ti, si, _, s in self.plan.steps())
        self.summary = {"plan": self.plan.name, "planned": planned, "done": done, "failed": 0,
                        "resumed": resumed, "adopted": adopted, "taken": 0, "outliers": [],
                        "discarded": 0, "flips": 0, "refocus": 0,
                        "files": [str(self.root / r["path"]) for d in self._done.values()
                                  for r in d.values()], "journal": str(self.journal.path)}
        return resumed

    # ----- the run --------------------------------------------------------
    async def _run(self, cam: "DeviceProxy") -> None:
        assert self.plan is not None and self.journal is not None
        try:
            passed: set[str] = set()  # sequences skipped in this run
            while True:
                # the plan may change while it runs (capture.edit, append_sequences): the next
                # sequence is the first one not yet complete, in plan order
                step = next(((ti, si, t, s) for ti, si, t, s in self.plan.steps()
                             if self._key(ti, si, s) not in passed
                             and (len(self._done.get(self._key(ti, si, s), {})) < s.count
                                  or self._key(ti, si, s) not in self._announced)), None)
                if step is None:
                    break
                ti, si, t, s = step
                if self._abort_after:
                    raise _Stop("aborted by the user")
                await self._sequence(cam, ti, si, t, s)
                if len(self._done.get(self._key(ti, si, s), {})) < self._seq_now(ti, si, s).count:
                    passed.add(self._key(ti, si, s))
            self.current = None
            self.journal.append("complete", t=self.s.clock.now())
            self.set_status("done", progress=1.0, detail=f"{self.plan.name}: "
                            f"{self.summary['done']} of {self.summary['planned']} frames")
        except _Stop as exc:
            self.journal.append("stopped", reason=str(exc), t=self.s.clock.now())
            self.current = None
            self.set_status("stopped", detail=f"stopped: {exc}", reason=str(exc))
            self.s.alert("warning", self.name, f"capture stopped: {exc}")
        except asyncio.CancelledError:
            self.journal.append("stopped", reason="aborted during a frame", t=self.s.clock.now())
            self.current = None
            self.set_status("stopped", detail="aborted; the frame in progress is taken again on the next start",
                            reason="aborted during a frame")
            raise
        finally:
            self.release("main_camera")
            self.journal.close()

    def _lights_of(self, ti: int) -> tuple[float | None, int | None, int | None, float | None]:
        """(exposure, ISO, gain, median temperature) of target ``ti``'s first light sequence;
        the temperature from the frames taken (None before any)."""
        assert self.plan is not None
        t = self.plan.targets[ti]
        for si, s in enumerate(t.sequences):
            if s.type == "light":
                temps = [r.get("temperature") for r in self._done.get(self._key(ti, si, s), {}).values()
                         if r.get("temperature") is not None]
                return s.exposure, s.iso, s.gain, statistics.median(temps) if temps else None
        return None, None, None, None

    async def _settings(self, cam: "DeviceProxy", ti: int, si: int, t: Target,
                        s: Sequence) -> tuple[float, int | None, int | None]:
        """(exposure s, ISO, gain) for sequence ``s``: given, else the field guide's rule."""
        l_exp, l_iso, l_gain, _ = self._lights_of(ti)
        iso = s.iso if s.iso is not None else (l_iso if s.gain is None else None)
        gain = s.gain if s.gain is not None else (l_gain if iso is None else None)
        if iso is None and gain is None:
            iso = self.s.cfg.main_camera.iso
        if s.type == "bias":
            return s.exposure or BIAS_EXPOSURE_S, iso, gain
        if s.type == "flat":
            return await self._find_flat_exposure(cam, ti, si, s, iso), iso, gain
        if s.type == "darkflat":
            flat = next((self._flat_exp[k] for k in self._flat_exp if k.startswith(f"{ti}:")), None)
            if s.exposure is None and flat is None:
                raise _Stop(f"{t.name}: dark flats need the flats' exposure: put a flat sequence first")
            return s.exposure or float(flat), iso, gain
        if s.type == "dark" and s.exposure is None:
            if l_exp is None:
                raise _Stop(f"{t.name}: darks with no exposure need a light sequence to match")
            return l_exp, iso, gain
        assert s.exposure is not None
        return s.exposure, iso, gain

    async def _find_flat_exposure(self, cam: "DeviceProxy", ti: int, si: int, s: Sequence,
                                  iso: int | None) -> float:
        key = self._key(ti, si, s)
        if key in self._flat_exp:
            return self._flat_exp[key]
        exp = s.exposure or FLAT_START_S
        tried = []
        for _ in range(FLAT_TRIES):
            self.current = {"type": "flat", "index": 0, "count": s.count, "exposure": exp,
                            "started": self.s.clock.now(), "detail": "finding the flat exposure"}
            self.set_status("running", detail=f"flats: test exposure {exp:.3g} s")
            f = await self._expose(cam, exp, iso, "flat")
            mean, clipped = await self.s.clock.run_blocking(flat_level, f.data, f.black_level, f.white_level)
            tried.append((exp, mean))
            if abs(mean - FLAT_TARGET) <= FLAT_TOLERANCE and clipped == 0:
                assert self.journal is not None
                self.journal.append("flat_exposure", key=key, exposure=exp, mean=mean, t=self.s.clock.now())
                self._flat_exp[key] = exp
                return exp
            exp = next_flat_exposure(exp, mean)
        raise _Stop("flats: no exposure gives a mean of 50 % (" +
                    ", ".join(f"{e:.3g} s → {100 * m:.0f} %" for e, m in tried[-3:]) + ")")

    async def _gate(self, detail: str = "paused: capture.resume goes on") -> None:
        """Between frames: wait while paused; stop when aborted."""
        if not self._run_ok.is_set():
            self.set_status("paused", detail=detail)
            await self._run_ok.wait()
        if self._abort_after:
            raise _Stop("aborted by the user")

    def _wait_event(self, reason: str, message: str, resume: str) -> None:
        assert self.plan is not None and self.journal is not None
        self.waiting = {"reason": reason, "message": message, "resume": resume}
        self.journal.append("waiting", reason=reason, message=message, t=self.s.clock.now())
        self.s.publish(CaptureWaiting(t=self.s.clock.now(), plan=self.plan.name, reason=reason,
                                      message=message, resume=resume))

    async def _ask(self, reason: str, message: str) -> None:
        """Pause until the user goes on (``capture.resume``): ``message`` says what to do."""
        self._run_ok.clear()
        self._wait_event(reason, message, "capture.resume")
        self.s.alert("warning", self.name, message)
        try:
            await self._gate(detail=f"paused: {message}")
        finally:
            self.waiting = None

    async def _expose(self, cam: "DeviceProxy", exposure: float, iso: int | None, kind: str) -> "Frame":
        """One exposure. A dropped frame is taken again (``RETRIES`` times); a lost camera is
        waited for while the service reconnects it (``LOST_WAIT_S`` clock seconds)."""
        attempts = 0
        lost_since: float | None = None
        while True:
            try:
                self.s.device("main_camera")  # connected? (DeviceDisconnected when not)
                return await cam.expose(exposure, iso=iso, kind=kind)
            except DeviceDisconnected as exc:
                self.s.device_lost("main_camera", exc)
                now = self.s.clock.now()
                lost_since = now if lost_since is None else lost_since
                if now - lost_since > LOST_WAIT_S:
                    raise _Stop(f"the main camera has been gone for {LOST_WAIT_S / 60:g} min ({exc})") from None
                self.set_status("running", detail=f"camera lost ({exc}); waiting for it to reconnect")
            except DeviceBusy:
                raise
            except DeviceError as exc:
                attempts += 1
                if attempts > RETRIES:
                    raise _Stop(f"the main camera failed {RETRIES} times in a row ({exc})") from None
                self.s.alert("warning", "main_camera", f"{exc}: taking the frame again")
                self.set_status("running", detail=f"camera: {exc}; retry {attempts} of {RETRIES}")
            await self.s.clock.sleep(self.retry_s)

    def _frame_bytes(self) -> int:
        m = self.s.cfg.main_camera
        return m.width * m.height * 2 + 5 * 2880

    def _check_disk(self) -> None:
        assert self.root is not None
        free = disk_free_bytes(self.root)
        keep = self.s.cfg.storage.min_free_gb * 1e9
        if free - self._frame_bytes() < keep:
            raise _Stop(f"disk nearly full: {free / 1e9:.2f} GB free, keeping "
                        f"{self.s.cfg.storage.min_free_gb:g} GB ([storage] min_free_gb)")

    def _path(self, t: Target, s: Sequence, exposure: float, iso: int | None, gain: int | None,
              temperature: float | None, index: int) -> str:
        """The frame's path relative to the data root: the pattern with the first sequence
        number from ``index`` on that no file holds (frames are never overwritten)."""
        assert self.plan is not None and self.root is not None
        seq = index
        while True:
            rel = frame_name(self.plan.pattern, night=self.s.night, target=t.name, type=s.type,
                             exposure=exposure, iso=iso, gain=gain, temperature=temperature, seq=seq,
                             filter=s.filter)
            if not (self.root / rel).exists():
                return rel
            seq += 1

    async def _focus_position(self) -> int | None:
        if "focuser" not in self.s.slots or not self.s.slots["focuser"].device.connected:
            return None
        try:
            return int(await self.s.device("focuser").position())
        except (DeviceError, ValueError, TypeError):
            return None

    async def _sequence(self, cam: "DeviceProxy", ti: int, si: int, t: Target, s: Sequence) -> None:
        assert self.plan is not None and self.journal is not None and self.root is not None
        from ..imaging.metrics import frame_metrics
        key = self._key(ti, si, s)
        done = self._done.setdefault(key, {})
        if len(done) < s.count:
            self._skip = False
            await self._gate()
            await self._filter_change(t, s)
            exposure, iso, gain = await self._settings(cam, ti, si, t, s)
            self.journal.append("planned", key=key, target=t.name, type=s.type, count=s.count,
                                exposure=exposure, iso=iso, gain=gain, t=self.s.clock.now())
            history = [r["figures"] for r in done.values() if r.get("figures") and not r.get("outlier")]
            _, _, _, light_temp = self._lights_of(ti)
            warned_temp = False
            idx = 0
            while True:
                s = self._seq_now(ti, si, s)  # its count may be edited while it runs
                idx += 1
                if idx > s.count:
                    break
                if idx in done:
                    continue
                frame = None
                while frame is None:  # a light spoiled by guiding trouble is taken again
                    await self._gate()
                    if self._skip:
                        break
                    if s.type == "light":
                        await self._before_light(cam, iso, ti, t, exposure)
                        await self._gate()
                        if self._skip:
                            break
                    self._check_disk()
                    t0 = self.s.clock.now()
                    self.current = {"target": t.name, "type": s.type, "index": idx, "count": s.count,
                                    "exposure": exposure, "started": t0}
                    self.set_status("running", progress=self.summary["done"] / max(self.summary["planned"], 1),
                                    detail=f"{t.name} {s.type} {idx}/{s.count}: {exposure:g} s")
                    self.journal.append("started", key=key, index=idx, t=t0, wall=time.time())
                    mark = self._guide_mark() if s.type == "light" else None
                    frame = await self._expose(cam, exposure, iso, s.type)
                    t_end, wall_end = self.s.clock.now(), time.time()
                    if mark is not None and self._spoiled(mark, key, idx):
                        frame = None
                if frame is None:
                    self.journal.append("skipped", key=key, index=idx, t=self.s.clock.now())
                    break
                frame.kind = s.type
                focus = await self._focus_position()
                figures: dict[str, Any] = {}
                outlier: list[str] = []
                extra: dict[str, Any] = {"SITELAT": self.s.cfg.site.latitude,
                                         "SITELONG": self.s.cfg.site.longitude,
                                         "FOCUSPOS": focus, "NIGHT": self.s.night}
                frame.meta.update({"OBJECT": t.name, "FILTER": s.filter or None,
                                   "RA": t.ra_deg, "DEC": t.dec_deg})
                frame.meta.pop("truth", None)
                if gain is not None:
                    frame.gain = gain
                if s.type == "light":
                    m = await self.s.clock.run_blocking(frame_metrics, frame)
                    figures = {k: m.get(k) for k in ("stars", "hfr", "fwhm", "elongation",
                                                     "saturated_pct", "background")}
                    outlier = outlier_reasons(figures, history)
                    if not outlier:
                        history.append(figures)
                    extra["HFR"] = figures.get("hfr")
                    extra["NSTARS"] = figures.get("stars")
                    extra["OUTLIER"] = "; ".join(outlier) if outlier else None
                elif s.type == "flat":
                    mean, clipped = await self.s.clock.run_blocking(flat_level, frame.data,
                                                                    frame.black_level, frame.white_level)
                    figures = {"mean_frac": mean, "clipped_frac": clipped}
                    extra["FLATMEAN"] = round(mean, 5)
                    extra["FLATCLIP"] = clipped
                elif s.type == "dark" and light_temp is not None and frame.temperature is not None \
                        and abs(frame.temperature - light_temp) > DARK_TEMP_TOL_C and not warned_temp:
                    warned_temp = True
                    self.s.alert("warning", self.name,
                                 f"darks at {frame.temperature:.0f} °C, lights at {light_temp:.0f} °C: "
                                 f"they will not match (tolerance ±{DARK_TEMP_TOL_C:g} °C)")
                rel = self._path(t, s, exposure, iso, gain, frame.temperature, idx)
                self.journal.append("saving", key=key, index=idx, path=rel, t=self.s.clock.now(),
                                    exposure=exposure, iso=iso, gain=gain, temperature=frame.temperature,
                                    figures=figures, outlier=outlier)
                await self.s.clock.run_blocking(write_frame, self.root / rel, frame, extra)
                rec = self.journal.append("finished", key=key, index=idx, path=rel, t=self.s.clock.now(),
                                          wall=time.time(), exposed=t_end, exposed_wall=wall_end,
                                          exposure=exposure, iso=iso, gain=gain,
                                          temperature=frame.temperature, figures=figures, outlier=outlier)
                done[idx] = rec
                if s.type == "light":
                    self._last_light = self.root / rel
                self.summary["done"] += 1
                self.summary["taken"] += 1
                self.summary["files"].append(str(self.root / rel))
                if outlier:
                    self.summary["outliers"].append(str(self.root / rel))
                self.last = {"path": rel, "type": s.type, "figures": figures, "outlier": outlier,
                             "ended": self.s.clock.now()}
                self.s.publish(CaptureFrame(t=self.s.clock.now(), plan=self.plan.name, target=t.name,
                                            type=s.type, index=idx, count=s.count, path=rel,
                                            exposure=exposure, figures=figures, outlier=outlier))
                remaining = [i for i in range(idx + 1, s.count + 1) if i not in done]
                if s.type == "light" and remaining:
                    await self._refocus_triggers(cam, iso, figures, frame.temperature)
                if s.type == "light" and s.dither_every and remaining and len(done) % s.dither_every == 0:
                    await self._dither()
                if s.delay and remaining:
                    await self.s.clock.sleep(s.delay)
        if len(done) >= s.count and key not in self._announced:
            files = [str(self.root / done[i]["path"]) for i in sorted(done)]
            outliers = [str(self.root / done[i]["path"]) for i in sorted(done) if done[i].get("outlier")]
            first = done[min(done)]
            self.journal.append("set", key=key, t=self.s.clock.now())
            self._announced.add(key)
            self.s.publish(CaptureSetFinished(
                t=self.s.clock.now(), plan=self.plan.name, target=t.name, type=s.type, sequence=si,
                night=self.s.night, exposure=float(first.get("exposure") or 0.0), iso=first.get("iso"),
                gain=first.get("gain"), filter=s.filter, files=files, outliers=outliers,
                root=str(self.root)))

    async def _dither(self) -> None:
        dither = self.s.commands.get("guide.dither")
        if dither is None:
            return
        self.set_status("running", detail="dithering, waiting for the guider to settle")
        res = await dither()
        assert self.journal is not None
        self.journal.append("dither", ok=bool(res.get("ok")), reason=res.get("reason", ""),
                            settle_s=res.get("settle_time_s"), t=self.s.clock.now())
        if not res.get("ok") and not self._dither_note:
            self._dither_note = True
            self.s.alert("info", self.name, f"dither skipped: {res.get('reason')}")

    # ----- filters, meridian, guiding trouble, focus ------------------------------
    async def _filter_change(self, t: Target, s: Sequence) -> None:
        """No filter wheel: before a light or flat sequence in another filter than the one in
        the train, pause and ask for it. The first filter of a run is taken as fitted."""
        if s.type not in ("light", "flat") or not s.filter or s.filter == self._filter:
            return
        if self._filter is not None:
            await self._ask("filter", f"filter change for {t.name} {s.type}s: take out {self._filter}, "
                            f"put in {s.filter} (no filter wheel), then capture.resume")
        self._filter = s.filter
        assert self.journal is not None
        self.journal.append("filter", filter=s.filter, t=self.s.clock.now())

    async def _before_light(self, cam: "DeviceProxy", iso: int | None, ti: int, t: Target,
                            exposure: float) -> None:
        await self._guide_back()
        await self._meridian(cam, iso, ti, t, exposure)

    def _guider_activity(self) -> Any:
        return getattr(self.s, "guider", None)

    def _guide_mark(self) -> int | None:
        """The guider's trouble count when a light starts under guiding (None: not guiding)."""
        g = self._guider_activity()
        if g is None or g.state not in ("guiding", "settling"):
            return None
        return int(g.trouble)

    def _spoiled(self, mark: int, key: str, idx: int) -> bool:
        """Was the light just exposed spoiled by a guide-star loss or a drift-away alarm? Then
        it is dropped (journal ``discarded``) and taken again once guiding is back."""
        g = self._guider_activity()
        if g is None or (g.trouble == mark and not g.in_trouble):
            return False
        assert self.journal is not None
        self.journal.append("discarded", key=key, index=idx, reason=g.trouble_reason, t=self.s.clock.now())
        self.summary["discarded"] += 1
        self.s.alert("warning", self.name, f"light {idx} discarded ({g.trouble_reason}); it is taken "
                     "again once guiding is back and settled")
        return True

    async def _guide_back(self) -> None:
        """While the guide star is lost or away: wait (publishing why), then let it settle."""
        g = self._guider_activity()
        if g is None or not g.in_trouble:
            return
        assert self.journal is not None
        msg = f"{g.trouble_reason}: capture waits for guiding to come back and settle"
        self._wait_event("guiding", msg, "")
        self.set_status("paused", detail=f"paused: {msg}")
        t0 = self.s.clock.now()
        try:
            while g.in_trouble:
                if self._abort_after:
                    raise _Stop("aborted by the user")
                await self.s.clock.sleep(1.0)
            settle = None
            if g.state in ("guiding", "settling") and "guide.dither" in self.s.commands:
                res = await self.s.commands["guide.dither"](amount_px=0.0)
                settle = res.get("settle_time_s")
        finally:
            self.waiting = None
        self.journal.append("guiding_back", waited_s=round(self.s.clock.now() - t0, 1), settle_s=settle,
                            t=self.s.clock.now())
        self.set_status("running", detail="guiding is back: capture goes on")

    def _mount(self) -> "DeviceProxy | None":
        if "mount" not in self.s.slots:
            return None
        try:
            return self.s.device("mount")
        except DeviceError:
            return None

    async def _meridian(self, cam: "DeviceProxy", iso: int | None, ti: int, t: Target, exposure: float) -> None:
        """Before a light: flip when the target is ``flip_after_min`` past the meridian or the
        light would end beyond ``meridian_limit_min``; pause instead when the mount cannot."""
        from .. import astro
        mount = self._mount()
        if mount is None:
            return
        try:
            st = await mount.state()
        except DeviceError:
            return
        lst = astro.local_sidereal_deg(self.s.clock.now(), self.s.cfg.site.longitude)
        ha_min = ((lst - st.ra_deg + 540.0) % 360.0 - 180.0) * 4.0
        if ha_min < 0:
            self._east_seen = ti
        before = st.pier_side == "west" or (st.pier_side == "unknown" and self._east_seen == ti)
        if not before or ti in self._meridian_ack:
            return
        c = self.s.cfg.capture
        end_min = ha_min + (exposure + DOWNLOAD_MARGIN_S) / SIDEREAL_S_PER_HA_MIN
        if ha_min < c.flip_after_min and end_min <= c.meridian_limit_min:
            return
        if not (c.meridian_flip and bool(getattr(mount, "can_flip", False))):
            why = ("[capture] meridian_flip = false" if not c.meridian_flip
                   else f"this mount ({getattr(mount, 'driver', '') or 'its driver'}) cannot flip")
            where = (f"{ha_min:.0f} min past" if ha_min >= 0 else f"{-ha_min:.0f} min before")
            await self._ask("meridian", f"{t.name} is {where} the meridian and the next {exposure:g}-s light "
                            f"would run past the mount's limit ({c.meridian_limit_min:g} min past): {why}. "
                            "Flip or re-point the mount by hand, then capture.resume")
            self._meridian_ack.add(ti)
            self._east_seen = None
            return
        if ha_min < c.flip_after_min:
            wait_s = (c.flip_after_min - ha_min) * SIDEREAL_S_PER_HA_MIN + 1.0
            self.set_status("running", detail=f"{t.name}: waiting {wait_s:.0f} s to flip at the meridian")
            await self.s.clock.sleep(wait_s)
        await self._flip(cam, iso, mount, ti, t, st.ra_deg, st.dec_deg)

    async def _flip(self, cam: "DeviceProxy", iso: int | None, mount: "DeviceProxy", ti: int, t: Target,
                    ra: float, dec: float) -> None:
        """The meridian flip between two lights: stop guiding, flip, slew back to the
        coordinates (the plan's when given and near, else where the mount pointed), measure
        how far the framing moved (:meth:`_framing_check`), pick a guide star again and
        guide with the flipped calibration (no recalibration), settle."""
        from .. import astro
        assert self.journal is not None
        t0 = self.s.clock.now()
        g = self._guider_activity()
        guided = g is not None and g.state in ("guiding", "settling", "star lost")
        lst = astro.local_sidereal_deg(t0, self.s.cfg.site.longitude)
        self.journal.append("flip", stage="start", ha_min=round(((lst - ra + 540.0) % 360.0 - 180.0) * 4.0, 2),
                            guided=guided, t=t0)
        self.set_status("running", detail=f"{t.name}: meridian flip")
        if guided:
            await self.s.commands["guide.stop"]()
        if t.ra_deg is not None and t.dec_deg is not None and \
                abs((t.ra_deg - ra + 180.0) % 360.0 - 180.0) * math.cos(math.radians(dec)) < 1.0 and \
                abs(t.dec_deg - dec) < 1.0:
            ra, dec = t.ra_deg, t.dec_deg
        try:
            await mount.flip()
            await mount.slew_to(ra, dec)
            side = (await mount.state()).pier_side
        except DeviceError as exc:
            self.journal.append("flip", stage="failed", reason=str(exc), t=self.s.clock.now())
            await self._ask("meridian", f"the meridian flip failed ({exc}): flip the mount by hand, "
                            "then capture.resume")
            self._meridian_ack.add(ti)
            side = "unknown"
        framing = await self._framing_check(cam, iso) if side != "unknown" else None
        settle = None
        if guided:
            self.set_status("running", detail=f"{t.name}: flipped; picking a guide star again")
            try:
                await self.s.commands["guide.select"]()
                await self.s.commands["guide.start"]()
            except (ValueError, DeviceError) as exc:
                self.s.alert("warning", self.name, f"after the meridian flip guiding could not start ({exc})")
            end = self.s.clock.now() + GUIDE_BACK_S
            while g.state not in ("guiding", "settling", "failed", "stopped") and self.s.clock.now() < end:
                await self.s.clock.sleep(1.0)
            if g.state in ("guiding", "settling"):
                settle = (await self.s.commands["guide.dither"](amount_px=0.0)).get("settle_time_s")
                if framing and framing.get("offset_px", 0.0) > RECENTRE_MIN_PX:
                    framing["recentre"] = await self._recentre(cam, iso)
            else:
                self.s.alert("warning", self.name, f"after the meridian flip guiding did not start "
                             f"({g.state}): capture goes on unguided")
        cal = g.worker.engine.calibration if guided and g.worker is not None else None
        dt = self.s.clock.now() - t0
        self.summary["flips"] += 1
        self.journal.append("flip", stage="done", pier_side=side, seconds=round(dt, 1), settle_s=settle,
                            framing=framing,
                            calibration=None if cal is None else {
                                "pier_side": cal.pier_side, "ra_angle_deg": round(cal.ra_angle_deg, 2),
                                "timestamp": cal.timestamp},
                            t=self.s.clock.now())
        moved = (f"; the framing moved {framing['offset_arcsec']:.0f}″ ({framing['offset_px']:.0f} px)"
                 if framing and "offset_px" in framing else "")
        self.s.alert("info", self.name, f"{t.name}: meridian flip done in {dt:.0f} s (pier side {side})"
                     + ("; guiding again with the flipped calibration" if guided else "") + moved)

    async def _framing_check(self, cam: "DeviceProxy", iso: int | None) -> dict[str, Any] | None:
        """After a flip: a ``recentre_exposure_s`` light matched against the last light before
        the flip (:func:`fieldtui.capture.framing.framing_offset`): how far the framing moved
        (the goto's pointing error). Measured and reported, not corrected: turning it into a
        mount move needs the main camera's angle on the sky (plate solving). None when there
        is nothing to compare or the stars do not match."""
        from ..capture.framing import framing_offset
        from ..imaging.io import read_frame
        from ..stacking.register import RegistrationError
        c = self.s.cfg.capture
        if c.recentre_exposure_s <= 0 or self._last_light is None:
            return None
        try:
            self._framing_ref = await self.s.clock.run_blocking(read_frame, self._last_light)
        except (OSError, ValueError) as exc:
            log.info("framing check: cannot read %s: %s", self._last_light, exc)
            return None
        self.set_status("running", detail="flipped; measuring how far the framing moved")
        try:
            off = await self._framing_now(cam, iso)
        except RegistrationError as exc:
            return {"error": str(exc)}
        scale = self.s.cfg.main_scale
        return {"dx_px": round(off.dx_px, 1), "dy_px": round(off.dy_px, 1), "offset_px": round(off.offset_px, 1),
                "offset_arcsec": round(off.offset_px * scale, 1), "rotation_deg": round(off.rotation_deg, 2),
                "matched": off.matched}

    async def _framing_now(self, cam: "DeviceProxy", iso: int | None) -> Any:
        """A ``recentre_exposure_s`` light's :class:`~fieldtui.capture.framing.FramingOffset`
        from the pre-flip reference. Raises RegistrationError when the stars do not match."""
        from ..capture.framing import framing_offset
        ref = self._framing_ref
        assert ref is not None
        new = await self._expose(cam, self.s.cfg.capture.recentre_exposure_s, iso, "light")
        return await self.s.clock.run_blocking(framing_offset, ref.data, ref.bayer, new.data, new.bayer)

    async def _recentre(self, cam: "DeviceProxy", iso: int | None) -> dict[str, Any]:
        """Bring the framing back to where it was before the flip, through the guider (no plate
        solving): two known moves of the lock position (``RECENTRE_STEP_PX`` guide px along x,
        then y) measured on the main camera give the 2×2 map from guide px to main px
        (rotation, scale and any mirroring between the two cameras); the lock then moves by
        the guide-px vector that cancels the offset and a light measures what is left, up to
        ``RECENTRE_MOVES`` times while more than ``RECENTRE_DONE_PX`` main px are left.
        Returns the figures (``before_px``, ``after_px``, ``lock_move_px``) or ``error``."""
        import numpy as np

        from ..stacking.register import RegistrationError
        lock = self.s.commands["guide.lock"]
        settle = self.s.commands["guide.dither"]
        self.set_status("running", detail="flipped; re-centring the framing through the guider")
        try:
            o1 = await self._framing_now(cam, iso)
            await lock(dx=RECENTRE_STEP_PX)
            await settle(amount_px=0.0)
            o2 = await self._framing_now(cam, iso)
            await lock(dy=RECENTRE_STEP_PX)
            await settle(amount_px=0.0)
            o3 = await self._framing_now(cam, iso)
            a = np.array([[o2.dx_px - o1.dx_px, o3.dx_px - o2.dx_px],
                          [o2.dy_px - o1.dy_px, o3.dy_px - o2.dy_px]]) / RECENTRE_STEP_PX
            if abs(np.linalg.det(a)) < 1e-6:
                return {"error": "the guide moves did not move the main camera's field"}
            o, total, moves = o3, np.zeros(2), 0
            while o.offset_px > RECENTRE_DONE_PX and moves < RECENTRE_MOVES:
                g = -np.linalg.solve(a, np.array([o.dx_px, o.dy_px]))
                await lock(dx=float(g[0]), dy=float(g[1]))
                await settle(amount_px=0.0)
                o = await self._framing_now(cam, iso)
                total += g
                moves += 1
        except (ValueError, DeviceError, RegistrationError) as exc:
            return {"error": str(exc)}
        return {"before_px": round(o1.offset_px, 1), "after_px": round(o.offset_px, 1), "moves": moves,
                "lock_move_px": [round(float(total[0]), 2), round(float(total[1]), 2)],
                "main_px_per_guide_px": round(float(math.sqrt(abs(np.linalg.det(a)))), 3)}

    async def _refocus_triggers(self, cam: "DeviceProxy", iso: int | None, figures: dict[str, Any],
                                temperature: float | None) -> None:
        """After a light with ``figures`` (:func:`~fieldtui.imaging.metrics.frame_metrics`):
        refocus when the HFR grew or the temperature moved (see the module docstring); without
        a focuser, an alert (once per trigger). A trailed light (elongation above
        :data:`~fieldtui.capture.quality.ELONGATION_MAX`) says nothing about focus and is left
        out of the HFR trigger."""
        c = self.s.cfg.capture
        hfr, el = figures.get("hfr"), figures.get("elongation")
        if hfr is not None and hfr > 0 and (el is None or el <= ELONGATION_MAX):
            self._focus_hfr.append(float(hfr))
        if self._focus_temp is None and temperature is not None:
            self._focus_temp = float(temperature)
        why = ""
        h = self._focus_hfr
        if c.refocus_hfr_pct > 0 and len(h) >= 2 * HFR_WINDOW:
            ref, now = statistics.median(h[:HFR_WINDOW]), statistics.median(h[-HFR_WINDOW:])
            if now > ref * (1 + c.refocus_hfr_pct / 100.0):
                why = f"HFR {now:.2f} px, {100 * (now / ref - 1):.0f} % above {ref:.2f} px after focusing"
        if not why and c.refocus_temp_c > 0 and temperature is not None and self._focus_temp is not None \
                and abs(temperature - self._focus_temp) >= c.refocus_temp_c:
            why = f"temperature {temperature:.1f} °C, {temperature - self._focus_temp:+.1f} °C since focusing"
        if not why:
            return
        assert self.journal is not None
        if await self._focus_position() is None:
            self.journal.append("refocus", reason=why, done=False, t=self.s.clock.now())
            self.s.alert("warning", self.name, f"refocus needed ({why}): no focuser, focus by hand")
        else:
            try:
                await self._autofocus(cam, iso, why)
            except DeviceError as exc:  # the focuser failed: the lights go on, the user is told
                self.journal.append("refocus", reason=why, done=False, error=str(exc), t=self.s.clock.now())
                self.s.alert("warning", self.name, f"autofocus failed ({exc}): check the focuser")
        self._focus_hfr = []
        self._focus_temp = temperature

    async def _autofocus(self, cam: "DeviceProxy", iso: int | None, why: str) -> None:
        """A V curve: lights at ``autofocus_points`` focuser positions ``autofocus_step`` apart
        around the current one, their HFR fitted by :func:`fieldtui.service.focus.fit_v_curve`
        (a hyperbola); the focuser goes to its minimum (back where it was when the fit fails
        or lands outside the run)."""
        import numpy as np

        from ..imaging.metrics import frame_metrics
        from .focus import fit_v_curve
        assert self.journal is not None
        c = self.s.cfg.capture
        foc = self.s.device("focuser")
        p0 = int(await foc.position())
        half = c.autofocus_points // 2
        top = int(getattr(foc, "max_position", 10 ** 9))
        positions = [min(max(p0 + (k - half) * c.autofocus_step, 0), top) for k in range(c.autofocus_points)]
        self.s.alert("info", self.name, f"refocusing: {why}")
        got: list[tuple[int, float]] = []
        # Approach every position from below, as the run goes (one direction: focuser backlash).
        await foc.move_to(max(positions[0] - c.autofocus_step, 0))
        for i, p in enumerate(positions):
            self.set_status("running", detail=f"autofocus {i + 1}/{len(positions)} at {p}: {why}")
            await foc.move_to(p)
            f = await self._expose(cam, c.autofocus_exposure_s, iso, "light")
            m = await self.s.clock.run_blocking(frame_metrics, f)
            if m.get("hfr"):
                got.append((p, float(m["hfr"])))
        fit = fit_v_curve(np.array([g[0] for g in got], float), np.array([g[1] for g in got], float)) \
            if len(got) >= 5 else None
        ok = fit is not None and not fit["extrapolated"]
        best = int(fit["best"]) if ok and fit is not None else p0
        await foc.move_to(max(positions[0] - c.autofocus_step, 0))
        await foc.move_to(best)
        self.summary["refocus"] += 1
        self.journal.append("refocus", reason=why, done=ok, start=p0, best=best,
                            points=[[p, round(h, 3)] for p, h in got], t=self.s.clock.now())
        if ok:
            self.s.alert("info", self.name, f"autofocus: {p0} → {best} (HFR at best "
                         f"{min(h for _, h in got):.2f} px)")
        else:
            self.s.alert("warning", self.name, f"autofocus found no minimum between {positions[0]} "
                         f"and {positions[-1]}: focuser back at {p0}; check the focus by hand")
