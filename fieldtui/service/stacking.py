"""The stacking worker: sets of frames queued by hand (or by a finished capture
set), each stacked in a niced child process (:mod:`.stack_worker`).

Commands
    ``stack.add``     queue a set: ``lights`` (folders or files) or ``night`` (a night's
                      folder with Light/Dark/Flat/Bias/DarkFlat folders),
                      ``darks``, ``flats``, ``biases``, ``dark_flats``, ``options``
                      (:class:`~fieldtui.stacking.StackOptions` fields; ``rejection``
                      as ``{"kind", "low", "high"}``), ``name``, ``out`` (FITS path;
                      default ``<night folder>/stacks/<name>.fits``). Returns its id.
    ``stack.cancel``  ``id``: drop a queued set, or stop the one running (default:
                      the running one).
    ``stack.state``   the snapshot below.

Snapshot (``stacking``): ``state`` (``idle``/``running``/``failed``), ``queue``
(sets waiting), ``current`` (the running set with ``stage``, ``done``,
``total``, ``left_s``: time left in the stage, ``elapsed_s``) and ``results``
(the last :data:`KEEP_RESULTS` sets: ``output``, ``preview``, ``frames_used``,
``frames_rejected`` as ``[{file, reason}]``, ``frames`` as per-light
``{file, fwhm, roundness, stars, background, noise, used}``, ``seconds``, or ``error``; the newest
also ``thumb``, a grey preview of at most 240 px a side for the terminal).

Fed by the capture: each finished set of lights (a
:class:`~fieldtui.events.CaptureSetFinished`) is queued by itself, calibrated
with the frames and masters the frame library gives it by the field guide's
rules (the data root's ``.library.sqlite``, indexed by the child first); a
calibration set finished later the same night queues the night's sets again
(their stack may have begun with part of that set on disk). While a set of lights is being taken, each
saved light (:class:`~fieldtui.events.CaptureFrame`) joins a **live stack**
in a second niced child (``stack_worker --live``, the library's masters):
the snapshot's ``live`` (``name``, ``frames``, ``last`` ``{file, accepted,
reason}``, ``thumb``, ``masters``, ``running``) feeds the Stacking screen's
preview until the final stack of the set is done. Every set (by hand too)
uses the library's masters where the rules allow and keeps the masters it
combines there.

Each set runs in its own child process, so memory is given back between
sets and a cancel is a SIGTERM. Unless the set's options say ``threads``, the
child uses every core but one while the guider is busy (the combination kernel, OpenCV and the
pipeline's pool alike: :func:`.stack_worker.limit_threads`), every core
otherwise; the live stack's child uses one. Status events are published at most once a
second (wall time) while a set runs, and at every change of stage or set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .activity import SubprocessActivity

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

KEEP_RESULTS = 10
#: calibration sets that complete a light set's calibration (kind of master they make)
CAL_KINDS = {"dark": "dark", "flat": "flat", "bias": "bias", "darkflat": "flat"}
STATUS_EVERY_S = 1.0
SETS = ("lights", "darks", "flats", "biases", "dark_flats")


class StackWorker(SubprocessActivity):
    """Queue of frame sets stacked one after another in a niced child process."""

    name = "stacking"
    attribute = "stacker"
    niceness = 10
    term_grace_s = 3.0

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.queue: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.results: list[dict[str, Any]] = []
        self._next_id = 1
        self._answer: asyncio.Future[dict[str, Any]] | None = None
        self._runner: asyncio.Task[Any] | None = None
        self._last_status = 0.0
        from ..library import default_db
        self.library_db = str(default_db(session.cfg.storage.root))
        self._events: asyncio.Queue[Any] | None = None
        self._follow_task: asyncio.Task[Any] | None = None
        self.live: dict[str, Any] | None = None
        self._live_key: tuple | None = None
        self._live_proc: asyncio.subprocess.Process | None = None     # the one frames go to
        self._live_latest: asyncio.subprocess.Process | None = None   # the one the preview shows
        self._auto: dict[tuple, dict[str, Any]] = {}   # light sets the capture finished, by (night, target, sequence)

    def on_start(self) -> None:
        self._events = self.s.subscribe()
        self._follow_task = self.s.spawn(self._follow(), name="stacking-follow")

    def commands(self) -> dict[str, Any]:
        return {"stack.add": self.cmd_add, "stack.cancel": self.cmd_cancel, "stack.state": self.cmd_state}

    # ----- snapshot --------------------------------------------------------
    def snapshot(self) -> dict[str, Any] | None:
        def brief(j: dict[str, Any]) -> dict[str, Any]:
            return {"id": j["id"], "name": j["name"], "lights": j["n_lights"], "out": j["out"]}
        cur = None
        if self.current is not None:
            cur = brief(self.current) | {k: self.current.get(k) for k in
                                         ("stage", "done", "total", "left_s", "elapsed_s")}
        return {"state": self.state, "reason": self.reason, "queue": [brief(j) for j in self.queue],
                "current": cur, "results": list(self.results), "live": self.live}

    async def cmd_state(self) -> dict[str, Any]:
        return self.snapshot() or {}

    # ----- commands ---------------------------------------------------------
    async def cmd_add(self, lights: list[str] | str = (), darks: list[str] | str = (), flats: list[str] | str = (),
                      biases: list[str] | str = (), dark_flats: list[str] | str = (),
                      options: dict[str, Any] | None = None, name: str | None = None,
                      out: str | None = None, night: str | None = None, calibration: str | None = None,
                      library_root: str | None = None) -> int:
        """Queue a set; raises ValueError (one line) for a missing path or a bad option.

        ``night``: a night's folder whose Light, Dark, Flat, Bias, DarkFlat folders
        fill the sets not given. ``calibration="library"``: the calibration frames the
        frame library gives the lights (after indexing ``library_root``). The options'
        ``library`` is the data root's library unless given (``null``: none)."""
        from ..stacking.pipeline import night_folder
        from .stack_worker import options_from
        given = dict(zip(SETS, (lights, darks, flats, biases, dark_flats)))
        if night:
            if not Path(night).is_dir():
                raise ValueError(f"stack.add: {night}: not a folder")
            for k, v in night_folder(night).items():
                if not given.get(k):
                    given[k] = [str(x) for x in v]
        sets: dict[str, list[str]] = {}
        for k, v in given.items():
            v = [v] if isinstance(v, str) else list(v or [])
            for p in v:
                if not Path(p).exists():
                    raise ValueError(f"stack.add: {p}: no such file or folder")
            sets[k] = [str(Path(p).resolve()) for p in v]
        if not sets["lights"]:
            raise ValueError("stack.add: no light frames (give lights, folders or files, or a night's "
                             "folder with a Light folder)")
        options = dict(options or {})
        options.setdefault("library", self.library_db)
        if "threads" not in options:   # decided when the set starts (guiding may start or stop)
            options["threads"] = None
        options_from(options)  # a bad option is refused now, not in the child
        jid = self._next_id
        self._next_id += 1
        name = name or f"stack_{jid:03d}"
        if out is None:
            out = str(self.s.night_dir / "stacks" / f"{name}.fits")
        from ..stacking.pipeline import frame_files
        job = {"id": jid, "name": name, "out": str(out), "options": options,
               "n_lights": len(frame_files(sets["lights"])), "calibration": calibration,
               "library_root": library_root, **sets}
        self.queue.append(job)
        if self._runner is None or self._runner.done():
            self._runner = self.spawn(self._run(), name="stacking-queue")
        self.set_status(self.state if self.state == "running" else "queued",
                        detail=f"{len(self.queue)} set(s) waiting")
        return jid

    async def cmd_cancel(self, id: int | None = None) -> str:  # noqa: A002 - the command's argument name
        for j in list(self.queue):
            if j["id"] == id:
                self.queue.remove(j)
                self._keep({"id": j["id"], "name": j["name"], "error": "cancelled before it started"})
                self.set_status(self.state, detail=f"set {id} dropped")
                return f"set {id} dropped from the queue"
        cur = self.current
        if cur is None or (id is not None and cur["id"] != id):
            raise ValueError(f"stack.cancel: no set {id} queued or running" if id is not None
                             else "stack.cancel: nothing is running")
        await self.stop_child()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result({"event": "error", "id": cur["id"], "error": "cancelled"})
        return f"set {cur['id']} cancelled"

    # ----- the queue ----------------------------------------------------------
    def _keep(self, result: dict[str, Any]) -> None:
        result.setdefault("at", self.s.clock.now())  # when it was stacked (clock time)
        self.results.append(result)
        del self.results[:-KEEP_RESULTS]

    def _detail(self) -> str:
        c = self.current
        if c is None:
            return ""
        s = f"{c['name']}: {c.get('stage') or 'starting'}"
        if c.get("total"):
            s += f" {c['done']}/{c['total']}"
        if c.get("left_s") is not None:
            s += f", {c['left_s']:.0f} s left"
        if self.queue:
            s += f" ({len(self.queue)} waiting)"
        return s

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_EVERY_S:
            return
        self._last_status = now
        c = self.current or {}
        frac = c["done"] / c["total"] if c.get("total") else 0.0
        self.set_status("running", progress=frac, detail=self._detail())

    async def _run(self) -> None:
        while self.queue:
            job = self.queue.pop(0)
            self.current = dict(job, stage=None, done=0, total=0, left_s=None, elapsed_s=0.0)
            self._answer = asyncio.get_running_loop().create_future()
            self._publish(force=True)
            await self.start_child([sys.executable, "-m", "fieldtui.service.stack_worker"])
            msg = {k: job.get(k) for k in ("id", "out", "options", "calibration", "library_root", *SETS)}
            msg["options"] = dict(job["options"])
            if msg["options"].get("threads") is None:
                msg["options"]["threads"] = self.threads()
            await self.send(msg)
            ans = await self._answer
            proc = self.proc   # it exits after its answer: wait, so the next set's child can start
            if proc is not None and proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), self.term_grace_s)
                except asyncio.TimeoutError:
                    await self.stop_child()
            self.current = None
            self._answer = None
            res: dict[str, Any] = {"id": job["id"], "name": job["name"]}
            if ans.get("event") == "done":
                used = set(ans.get("used") or [])
                frames = [{"file": f, "fwhm": q.get("fwhm"), "roundness": q.get("roundness"),
                           "stars": q.get("stars"), "background": q.get("background"),
                           "noise": q.get("noise"), "used": f in used}
                          for f, q in (ans.get("frames") or {}).items()]
                res |= {k: ans.get(k) for k in ("output", "preview", "frames_used", "frames_rejected",
                                                  "seconds", "warnings", "shape", "masters")}
                res["frames"] = frames
                for old in self.results:  # only the newest set keeps its thumbnail (snapshot stays small)
                    old.pop("thumb", None)
                res["thumb"] = ans.get("thumb")
                self.s.alert("info", self.name, f"{job['name']}: {ans.get('frames_used')} frames stacked "
                             f"in {ans.get('seconds')} s → {ans.get('output')}")
            else:
                res["error"] = ans.get("error") or "no stack"
                if res["error"] != "cancelled":
                    self.s.alert("warning", self.name, f"{job['name']}: no stack: {res['error']}")
            self._keep(res)
            if job.get("auto") in self._auto and "error" not in res:
                self._auto[job["auto"]]["masters"] = sorted(res.get("masters") or {})
            self.set_status("running" if self.queue else "idle",
                            detail=f"{job['name']}: {res.get('error') or 'done'}")
        self._runner = None

    async def on_message(self, msg: dict[str, Any]) -> None:
        ev = msg.get("event")
        cur = self.current
        if cur is None or msg.get("id") != cur["id"]:
            return
        if ev == "progress":
            new_stage = msg.get("stage") != cur.get("stage")
            cur.update({k: msg.get(k) for k in ("stage", "done", "total", "left_s", "elapsed_s")})
            self._publish(force=new_stage)
        elif ev in ("done", "error"):
            if self.proc is not None:
                self._stopping.add(self.proc.pid)  # it exits now: no failure
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(msg)

    def threads(self) -> int:
        """Threads for a set about to start: every core but one while the guider is busy
        (guiding, calibrating, settling), so its loop always finds a free core; every core
        otherwise."""
        from .activity import IDLE_STATES
        cores = os.cpu_count() or 1
        g = getattr(self.s, "guider", None)
        guiding = g is not None and g.state not in IDLE_STATES
        return max(1, cores - 1) if guiding else cores

    # ----- fed by the capture --------------------------------------------------
    async def _follow(self) -> None:
        """Finished capture sets are queued, saved lights join the live stack."""
        from ..events import CaptureFrame, CaptureSetFinished
        assert self._events is not None
        while True:
            ev = await self._events.get()
            try:
                if isinstance(ev, CaptureSetFinished):
                    await self._set_finished(ev)
                elif isinstance(ev, CaptureFrame) and ev.type == "light":
                    await self._live_add(ev)
            except Exception as exc:  # noqa: BLE001 - one bad event must not end the feed
                log.exception("stacking: %s not taken up", type(ev).__name__)
                self.s.alert("warning", self.name, f"{type(ev).__name__} not taken up: {type(exc).__name__}: {exc}")

    async def _set_finished(self, ev: Any) -> None:
        if ev.type == "light":
            await self._live_end()
            if not ev.files:
                return
            key = (ev.night, ev.target, ev.sequence)
            name = f"{ev.target}_{ev.exposure:g}s{'_' + ev.filter if ev.filter else ''}_{ev.sequence + 1}"
            self._auto[key] = {"name": name, "files": list(ev.files), "root": ev.root, "night": ev.night,
                               "masters": None}
            await self._queue_auto(key)
        elif ev.type in CAL_KINDS:
            # the night's sets again: stacked without this calibration, or with the part of the
            # set that was on disk when their stack began (a queued set waits, not twice)
            for key, a in self._auto.items():
                if a["night"] == ev.night:
                    await self._queue_auto(key)

    async def _queue_auto(self, key: tuple) -> None:
        a = self._auto[key]
        a["masters"] = None   # until this stack is done
        if any(j.get("auto") == key for j in self.queue):
            return
        out = str(Path(a["root"]) / a["night"] / "stacks" / f"{a['name']}.fits")
        jid = await self.cmd_add(lights=a["files"], name=a["name"], out=out, calibration="library",
                                 library_root=a["root"])
        for j in self.queue:
            if j["id"] == jid:
                j["auto"] = key
        self.s.alert("info", self.name, f"{a['name']}: {len(a['files'])} lights queued for stacking")

    # ----- live stack ------------------------------------------------------------
    async def _live_add(self, ev: Any) -> None:
        key = (ev.plan, ev.target, round(float(ev.exposure), 3))
        if key != self._live_key or ev.index == 1 or self._live_proc is None \
                or self._live_proc.returncode is not None:
            await self._live_end()
            self._live_key = key
            self.live = {"name": f"{ev.target}_{ev.exposure:g}s live", "frames": 0, "last": None, "thumb": None,
                         "masters": [], "running": True}
            n = self.niceness
            self._live_proc = self._live_latest = proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fieldtui.service.stack_worker", "--live",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                preexec_fn=(lambda: os.nice(n)) if n else None, limit=16 * 1024 * 1024)
            self.s.spawn(self._live_read(proc), name="stacking-live")
        root = self.s.capture.root if getattr(self.s, "capture", None) is not None and \
            getattr(self.s.capture, "root", None) is not None else self.s.cfg.storage.root
        path = Path(ev.path) if Path(ev.path).is_absolute() else Path(root) / ev.path
        assert self._live_proc is not None and self._live_proc.stdin is not None
        self._live_proc.stdin.write((json.dumps({"add": str(path), "library": self.library_db, "root": str(root)}) + "\n").encode())
        await self._live_proc.stdin.drain()

    async def _live_read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") != "live" or proc is not self._live_latest or self.live is None:
                continue
            self.live.update(frames=msg.get("frames", 0), masters=msg.get("masters") or self.live["masters"],
                             last={k: msg.get(k) for k in ("file", "accepted", "reason", "fwhm")},
                             at=self.s.clock.now())
            if msg.get("thumb"):
                self.live["thumb"] = msg["thumb"]
            self._publish_idle()
        await proc.wait()
        if proc is self._live_latest and self.live is not None:
            self.live["running"] = False
            self._publish_idle()

    def _publish_idle(self) -> None:
        """A status with the live stack (at the queue's state)."""
        if self.current is not None:
            self._publish(force=False)
        else:
            self.set_status(self.state if self.state in ("queued", "running") else "idle",
                            detail=f"live: {self.live['frames']} frames" if self.live else "")

    async def _live_end(self, wait: bool = False) -> None:
        """The set is over: the live child finishes the frames sent and exits (not waited
        for unless ``wait``: the next set's stack must not wait on it)."""
        proc, self._live_proc = self._live_proc, None
        self._live_key = None
        if proc is None:
            return
        try:
            if proc.stdin is not None and proc.returncode is None:
                proc.stdin.write(b'{"end": true}\n')
                await proc.stdin.drain()
                proc.stdin.close()
        except (ConnectionError, OSError):
            pass
        if wait:
            await self._live_reap(proc, 5.0)
        else:
            self.s.spawn(self._live_reap(proc, 600.0), name="stacking-live-end")

    async def _live_reap(self, proc: asyncio.subprocess.Process, grace_s: float) -> None:
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except asyncio.TimeoutError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def shutdown(self) -> None:
        await self._live_end(wait=True)
        if self._follow_task is not None:
            self._follow_task.cancel()
        if self._events is not None:
            self.s.unsubscribe(self._events)
        await super().shutdown()

    def on_failure(self, reason: str) -> None:
        if self.current is not None:
            self._keep({"id": self.current["id"], "name": self.current["name"], "error": reason})
            self.current = None
        self._runner = None

    def record(self) -> dict[str, Any] | None:
        if self.current is None and not self.queue:
            return None
        return {"queue": ([self.current] if self.current else []) + self.queue}
