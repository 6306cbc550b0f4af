"""Autoguiding: the service side.

The Session owns one :class:`~fieldtui.service.guide_worker.GuideWorker`
(built on the first guiding command, from the connected guide camera, guide
port and mount). It keeps running whatever the client shows, and with no
client attached. The worker's events come back here and go out as small
events:

- :class:`GuideStatus` when something other than a guide step happens (state
  change, star picked, a calibration step, calibration done, dither, settle,
  star lost or found), with the summary the status bar reads;
- :class:`GuidePoint`, one per guide frame while guiding or settling: the
  error along RA and Dec (″ and px), the pulses sent and the rolling RMS;
- :class:`GuideStar` at most once a second: a cut-out of the guide box with the
  star and the lock position, its SNR and HFD.

Alerts (star lost, drift-away, calibration warnings, camera lost) go through
:meth:`Session.alert`. The night's guide log (PHD2 format) is written into
the night folder; the calibration is stored there too and reused until the
camera changes: the engine scales it for the declination and flips it after a
meridian flip. ``trouble`` counts guide-star losses and drift-away alarms and
``in_trouble`` says one is going on (the capture sequencer pauses on them).

``guide.dither`` returns once the mount has settled (or the settle timed
out), so a capture schedule can ``await session.commands["guide.dither"]()``
between frames.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import value_range
from ..devices.base import DeviceError
from ..devices.proxy import DeviceBusy
from ..events import GuidePoint, GuideStar, GuideStatus
from ..guiding import events as ge
from ..guiding.events import GuideState
from ..guiding.progress import CalibrationProgress, SettleProgress
from ..guiding.settings import GuideSettings
from .activity import Activity
from .args import flag, number, optional_number

if TYPE_CHECKING:
    from .guide_worker import GuideWorker
    from .session import Session

HISTORY = 3600          # guide points kept (an hour at 1 s exposures)
STAR_EVERY_S = 1.0      # at most one star cut-out a second
STATUS_EVERY = 5        # guide frames between status updates (the RMS the status bar shows)
ACTIVE = ("looping", "calibrating", "guiding", "settling", "star lost")  # GuideState values while the loop runs
CUT = 24                # cut-out side in sensor pixels (the guide box is 25)
LEVELS = {"critical": "error", "warning": "warning", "info": "info"}
MAX_DITHER_PX = value_range("guiding.dither_px")[1]   # the largest dither a command may ask for
MAX_EXPOSURE_S = value_range("guiding.exposure_s")[1]  # the longest guide dark
MAX_ASSISTANT_MIN = 240.0  # the longest guiding assistant run


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def cutout(data: np.ndarray, x: float, y: float, side: int = CUT) -> tuple[int, int, np.ndarray]:
    """A side×side 8-bit view around (x, y): sky black, the star's peak white."""
    h, w = data.shape[:2]
    x0 = int(np.clip(round(x) - side // 2, 0, max(0, w - side)))
    y0 = int(np.clip(round(y) - side // 2, 0, max(0, h - side)))
    sub = np.asarray(data[y0:y0 + side, x0:x0 + side], dtype=np.float32)
    if sub.size == 0:
        return x0, y0, np.zeros((side, side), np.uint8)
    sky = float(np.median(sub))
    peak = float(sub.max()) - sky
    img = np.clip((sub - sky) / max(peak, 1e-6), 0, 1)
    out = np.zeros((side, side), np.uint8)
    out[:img.shape[0], :img.shape[1]] = (np.sqrt(img) * 255).astype(np.uint8)
    return x0, y0, out


class Guider(Activity):
    """The guider as an activity: it leases the guide camera and the guide port
    while its loop runs (from ``guide.loop``, ``guide.calibrate`` or
    ``guide.start`` until ``guide.stop``) and owns the loop's task; an
    exception in it ends guiding as ``failed`` with an alert."""

    name = "guiding"
    attribute = "guider"
    resumable = True

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.settings = GuideSettings.from_config(session.cfg)
        self.pixel_scale: float | None = session.cfg.guide_scale or None
        self.worker: GuideWorker | None = None
        self.history: deque[list[Any]] = deque(maxlen=HISTORY)
        self.detail = ""
        self._n = 0
        self._star_task: Any = None
        self._assistant: Any = None  # the guiding assistant's task while it runs
        self._assist_progress: Any = None  # its AssistantProgress (service/assistant.py)
        self._failed = ""            # why the loop ended on an error ("" while it did not)
        self.guiding_since: float | None = None  # clock time guiding (last) began
        st = self.settings
        self._cal_progress = CalibrationProgress(target_px=st.calibration_px, steps=st.calibration_steps)
        self._settle_progress = SettleProgress(settle_px=st.settle_px, settle_time_s=st.settle_time_s,
                                               timeout_s=st.settle_timeout_s)
        # Guiding trouble the capture sequencer watches: a count of guide-star losses and
        # drift-away alarms (a frame exposed across a change is spoiled), and whether the
        # star is away from its lock position now.
        self.trouble = 0
        self.trouble_reason = ""
        self.drifting = False

    def commands(self) -> dict[str, Any]:
        return {
            "guide.loop": self.cmd_loop,
            "guide.select": self.cmd_select,
            "guide.calibrate": self.cmd_calibrate,
            "guide.start": self.cmd_start,
            "guide.dither": self.cmd_dither,
            "guide.lock": self.cmd_lock,
            "guide.stop": self.cmd_stop,
            "guide.clear_calibration": self.cmd_clear_calibration,
            "guide.state": self.cmd_state,
            "guide.resume": self.cmd_resume,
            "guide.darks": self.cmd_darks,
            "guide.assistant": self.cmd_assistant,
        }

    # ----- the worker -----------------------------------------------------
    @property
    def calibration_path(self):  # noqa: ANN201 - Path
        return self.s.night_dir / "guide_calibration.json"

    def _ensure_worker(self) -> "GuideWorker":
        """The worker, with the guide camera and guide port leased to guiding.

        Raises ValueError (saying who holds it) when another activity has one
        of them, DeviceDisconnected when one is not connected."""
        from .guide_worker import GuideWorker
        self.s.device("guide_camera")  # connected? (DeviceDisconnected when not)
        self.s.device("guide_port")
        try:
            camera = self.lease("guide_camera")
            port = self.lease("guide_port")
        except DeviceBusy as exc:
            self.release()
            raise ValueError(f"{exc}: stop it first") from None
        self._failed = ""
        if self.worker is not None:
            if not self.worker.running and self.worker.log_dir != self.s.night_dir:
                # A new night began since the worker was built: its log and calibration go there.
                self.worker.log_dir = self.s.night_dir
                self.worker.calibration_path = self.calibration_path
            return self.worker
        mount = None
        with contextlib.suppress(DeviceError):
            mount = self.s.device("mount")
        cfg = self.s.cfg
        try:  # the guide log goes into the night folder
            self.s.night_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.s.alert("warning", "guiding", f"no guide log: cannot create {self.s.night_dir}: {exc}")
        self.worker = GuideWorker(
            camera, port, self.s.clock, self.settings,  # type: ignore[arg-type]
            mount=mount, pixel_scale=self.pixel_scale, log_dir=self.s.night_dir,
            calibration_path=self.calibration_path, on_event=self._on_event,
            focal_mm=cfg.guide_scope.focal_length_mm, seed=getattr(cfg.sim, "seed", 0) or 0,
            spawn=lambda coro, name: self.spawn(coro, name), darks=self._dark_library())
        return self.worker

    def _running(self) -> bool:
        w = self.worker
        return w is not None and w.running

    def _start_star_feed(self) -> None:
        if self._star_task is None or self._star_task.done():
            self._star_task = self.spawn(self._star_feed(), name="guide-star")

    def _assisting(self) -> bool:
        """The guiding assistant runs (it may be calibrating first)."""
        return self._assistant is not None and not self._assistant.done()

    @property
    def state(self) -> str:
        """The guide engine's state, except "assistant" while the guiding assistant
        watches the star unguided or pulses Dec for backlash (the engine guides then with
        its corrections off: nothing is guided)."""
        if self._failed:
            return "failed"
        st = self.worker.state.value if self.worker is not None else GuideState.STOPPED.value
        if st in ("guiding", "settling") and self._assisting():
            return "assistant"
        return st

    def on_failure(self, reason: str) -> None:
        self._failed = reason
        self.detail = f"failed: {reason}"
        if self.worker is not None:  # close the guide log, stop the engine
            self.s.spawn(self._stop_worker(), name="guiding-cleanup")

    async def _stop_worker(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        self.guiding_since = None

    def record(self) -> dict[str, Any] | None:
        """What the flight recorder keeps while the guide loop runs: state, since
        when, the star and lock position, the calibration."""
        w = self.worker
        if w is None or not self._running() or self.state not in ACTIVE:
            return None
        e = w.engine
        cal = e.calibration
        return {"state": self.state, "since": self.since, "guiding_since": self.guiding_since,
                "lock": [_r(e.lock[0], 2), _r(e.lock[1], 2)] if e.lock else None,
                "calibration": None if cal is None else {
                    "angle_deg": _r(cal.ra_angle_deg, 1), "ra_rate_px_s": _r(cal.ra_rate),
                    "dec_rate_px_s": _r(cal.dec_rate), "pier_side": cal.pier_side},
                "calibration_file": str(self.calibration_path), "exposure_s": self.settings.exposure_s}

    # ----- state ----------------------------------------------------------
    def progress(self) -> dict[str, Any] | None:
        """While calibrating or settling: since when, steps done of about how many, and about
        how many seconds are left as of ``at`` (the last frame's clock time); else None."""
        st = self.state
        if st == "calibrating":
            p = self._cal_progress
            if p.started is None:
                return None
            left = p.left_s()
            exp = p.expected()
            return {"what": "calibrating", "since": _r(p.started, 2), "at": _r(p.last_t, 2),
                    "left_s": _r(left, 1), "done": p.done, "total": sum(exp.values()),
                    "leg": p.leg, "fraction": _r(p.fraction())}
        if st == "assistant" and self._assist_progress is not None:
            a = self._assist_progress
            now = self.s.clock.now()
            left = a.left_s(now)
            frac = a.fraction(now)
            return {"what": "assistant", "phase": a.phase,
                    "since": _r(a.watch_from if a.watch_from is not None else a.started, 2),
                    "at": _r(now, 2), "left_s": None if left is None else _r(left, 1),
                    "fraction": None if frac is None else _r(frac), "minutes": a.minutes,
                    "pulses": a.pulses, "pulses_total": a.pulses_total}
        if st == "settling":
            q = self._settle_progress
            if q.dithered is None:
                return None
            return {"what": "settling", "since": _r(q.dithered, 2), "at": _r(q.last_t, 2),
                    "left_s": _r(q.left_s(), 1), "timeout_s": self.settings.settle_timeout_s,
                    "distance_px": _r(q.samples[-1][1], 2) if q.samples else None,
                    "settle_px": self.settings.settle_px}
        return None

    def summary(self) -> dict[str, Any]:
        """What the snapshot carries under "guiding" (and the status bar reads)."""
        w = self.worker
        out: dict[str, Any] = {"state": self.state, "detail": self.detail,
                               "pixel_scale": self.pixel_scale, "exposure_s": self.settings.exposure_s,
                               "progress": self.progress()}
        if w is None:
            out.update(rms_total_arcsec=None, calibration=None, star=None, lock=None, frames=0)
            return out
        e = w.engine
        win, tot = e.stats.window(), e.stats.total()
        cal = e.calibration
        assisting = out["state"] == "assistant"  # unguided frames: no guiding RMS to show
        out.update({
            "rms_ra_arcsec": _r(win.rms_ra_arcsec), "rms_dec_arcsec": _r(win.rms_dec_arcsec),
            "rms_total_arcsec": _r(win.rms_total_arcsec) if win.frames and not assisting else None,
            "rms_ra_px": _r(win.rms_ra_px), "rms_dec_px": _r(win.rms_dec_px),
            "rms_total_px": _r(win.rms_total_px),
            "peak_ra_arcsec": _r(win.peak_ra_arcsec), "peak_dec_arcsec": _r(win.peak_dec_arcsec),
            "peak_ra_px": _r(win.peak_ra_px), "peak_dec_px": _r(win.peak_dec_px),
            "window_frames": win.frames, "window_s": e.stats.window_s,
            "total": {"frames": tot.frames, "rms_ra_arcsec": _r(tot.rms_ra_arcsec),
                      "rms_dec_arcsec": _r(tot.rms_dec_arcsec), "rms_total_arcsec": _r(tot.rms_total_arcsec),
                      "rms_total_px": _r(tot.rms_total_px), "star_lost": tot.star_lost_events,
                      "dropped": tot.dropped_frames},
            "snr": _r(e.star.snr, 1) if e.star else None, "hfd": _r(e.star.hfd, 2) if e.star else None,
            "star": [_r(e.star.x, 2), _r(e.star.y, 2)] if e.star else None,
            "lock": [_r(e.lock[0], 2), _r(e.lock[1], 2)] if e.lock else None,
            "calibration": None if cal is None else {
                "angle_deg": _r(cal.ra_angle_deg, 1), "ra_rate_px_s": _r(cal.ra_rate),
                "dec_rate_px_s": _r(cal.dec_rate), "flipped": cal.flipped, "mirrored": cal.mirrored,
                "dec_reversed": cal.dec_reversed,
                "ortho_err_deg": _r(cal.orthogonality_error_deg, 1), "pier_side": cal.pier_side,
                "warnings": list(cal.warnings)},
            "frames": w.frames,
        })
        if assisting:
            for k in ("rms_ra_arcsec", "rms_dec_arcsec", "rms_ra_px", "rms_dec_px", "rms_total_px",
                      "peak_ra_arcsec", "peak_dec_arcsec", "peak_ra_px", "peak_dec_px"):
                out[k] = None
            out["window_frames"] = 0
        return out

    def snapshot(self) -> dict[str, Any] | None:
        """The snapshot's "guiding" entry: None until the guider was first used."""
        return None if self.worker is None else self.summary()

    def state_full(self, minutes: float = 60.0) -> dict[str, Any]:
        since = self.s.clock.now() - minutes * 60.0
        return {**self.summary(), "history": [p for p in self.history if p[0] >= since]}

    def _status(self, detail: str | None = None) -> None:
        """The generic status (with the summary every client folds in), then the guider's own."""
        if detail is not None:
            self.detail = detail
        self._activity()
        self.s.publish(GuideStatus(state=self.state, detail=self.detail, summary=self.summary()))

    def _activity(self) -> None:
        st = self.state
        rms = self.summary().get("rms_total_arcsec")
        detail = self.detail if rms is None else f"{rms:.2f}″ RMS · {self.detail}".rstrip(" ·")
        self.set_status(st, progress=float(self._n), detail=detail, reason=self._failed)

    # ----- worker events --------------------------------------------------
    def _to_arcsec(self, px: float) -> float:
        return px * self.pixel_scale if self.pixel_scale else px

    def _on_event(self, ev: ge.GuideEvent) -> None:
        if isinstance(ev, ge.GuideStep):
            self._point(ev)
            if self.state == "settling":
                self._settle_progress.on_frame(ev.t, math.hypot(ev.dx, ev.dy))
                self._activity()  # the time left, every frame of a settle (at most its timeout)
            return
        if isinstance(ev, ge.FrameDropped):
            self._n = ev.frame
            self.history.append([round(ev.t, 2), None, None, 0, 0])
            self.s.publish(GuidePoint(t=ev.t, n=ev.frame, state=self.state, dropped=True))
            return
        if isinstance(ev, ge.Alert):
            if ev.code == "drift":
                if ev.level == "critical" and not self.drifting:
                    self._trouble(ev.message)
                self.drifting = ev.level == "critical"
            self.s.alert(LEVELS.get(ev.level, "warning"), "guiding", ev.message)
            return
        detail: str | None = None
        if isinstance(ev, ge.StateChanged):
            detail = ev.reason
        elif isinstance(ev, ge.StarSelected):
            detail = f"star at {ev.x:.0f},{ev.y:.0f} SNR {ev.snr:.0f} ({ev.candidates} candidates)"
        elif isinstance(ev, ge.CalibrationStarted):
            detail = "calibration starting"
            self._cal_progress.start(ev.t)
        elif isinstance(ev, ge.CalibrationStep):
            detail = f"calibrating {ev.direction} step {ev.step}, {ev.dist:.1f} px"
            self._cal_progress.on_step(ev.t, ev.direction, ev.step, ev.dist)
        elif isinstance(ev, ge.CalibrationDone):
            detail = (f"calibration {'reused' if ev.reused else 'done'}: angle {ev.ra_angle_deg:.1f}°, "
                      f"RA {ev.ra_rate_px_s:.2f} px/s, Dec {ev.dec_rate_px_s:.2f} px/s")
        elif isinstance(ev, ge.CalibrationFailed):
            detail = f"calibration failed: {ev.reason}"
        elif isinstance(ev, ge.GuidingStarted):
            detail = "guiding"
            self.guiding_since = ev.t
            self.drifting = False
        elif isinstance(ev, ge.DitherStarted):
            detail = f"dither {math.hypot(ev.ra_px, ev.dec_px):.1f} px, settling"
            self._settle_progress.start(ev.t)
        elif isinstance(ev, ge.SettleDone):
            detail = (f"settled in {ev.settle_time_s:.0f} s" if ev.ok
                      else f"settle failed: {ev.reason or 'timeout'}")
        elif isinstance(ev, ge.StarLost):
            detail = f"star lost: {ev.reason}"
            self._trouble(f"guide star lost ({ev.reason})")
            self.s.alert("warning", "guiding", f"Guide star lost ({ev.reason}); waiting for it to come back")
        elif isinstance(ev, ge.StarFound):
            detail = f"star back after {ev.lost_for_s:.0f} s"
            self.s.alert("info", "guiding", f"Guide star back after {ev.lost_for_s:.0f} s; "
                         f"{'guiding resumes' if self.state in ('guiding', 'settling') else self.state}")
        elif isinstance(ev, ge.GuidingStopped):
            detail = ev.reason
            self.guiding_since = None
        if detail is not None and self.state == "assistant":
            detail = self._assistant_detail()  # "guiding started" is the assistant's watch
        self._status(detail)

    def _assistant_detail(self) -> str:
        """What the running guiding assistant does now, in a few words."""
        a = self._assist_progress
        if a is None:
            return "guiding assistant"
        if a.phase == "calibrating":
            return "guiding assistant: calibrating first"
        if a.phase == "watching":
            return f"guiding assistant: measuring, the star unguided for {a.minutes:g} min, then Dec backlash"
        if a.phase == "backlash":
            return f"guiding assistant: measuring Dec backlash, pulse {a.pulses} of about {a.pulses_total}"
        if a.phase == "analysing":
            return "guiding assistant: working out its findings"
        return "guiding assistant"

    def _trouble(self, reason: str) -> None:
        self.trouble += 1
        self.trouble_reason = reason

    @property
    def in_trouble(self) -> bool:
        """The guide star is lost, or away from its lock position (drift-away alarm)."""
        return self.state == GuideState.STAR_LOST.value or (self.drifting and self.state in ACTIVE)

    def _point(self, ev: ge.GuideStep) -> None:
        self._n = ev.frame
        ra, dec = self._to_arcsec(ev.ra_px), self._to_arcsec(ev.dec_px)
        ra_ms = ev.ra_ms if ev.ra_dir == "W" else -ev.ra_ms if ev.ra_dir == "E" else 0
        dec_ms = ev.dec_ms if ev.dec_dir == "N" else -ev.dec_ms if ev.dec_dir == "S" else 0
        self.history.append([round(ev.t, 2), round(ra, 3), round(dec, 3), ra_ms, dec_ms])
        e = self.worker.engine if self.worker is not None else None
        win = e.stats.window() if e is not None and self.state != "assistant" else None
        rms = [_r(win.rms_ra_arcsec), _r(win.rms_dec_arcsec), _r(win.rms_total_arcsec)] if win else []
        rms_px = [_r(win.rms_ra_px), _r(win.rms_dec_px), _r(win.rms_total_px)] if win else []
        self.s.publish(GuidePoint(t=ev.t, n=ev.frame, state=self.state, ra=round(ra, 3), dec=round(dec, 3),
                                  ra_px=round(ev.ra_px, 3), dec_px=round(ev.dec_px, 3), ra_ms=ra_ms,
                                  dec_ms=dec_ms, snr=round(ev.snr, 1), hfd=round(ev.hfd, 2),
                                  rms=rms, rms_px=rms_px))  # type: ignore[arg-type]
        if ev.frame % STATUS_EVERY == 0:
            self._activity()

    async def _star_feed(self) -> None:
        """The guide box, at most once a second, while the loop runs."""
        last = None
        while True:
            w = self.worker
            frame = w.last_frame if w is not None and self._running() else None
            if w is not None and frame is not None and frame is not last:
                last = frame
                await self._publish_star(w, frame)
            await self.s.clock.sleep(STAR_EVERY_S)

    async def _publish_star(self, w: "GuideWorker", frame: Any) -> None:
        e = w.engine
        star = e.star
        cx, cy = (star.x, star.y) if star else (e.lock if e.lock else (None, None))
        if cx is None:
            return
        x0, y0, img = await self.s.clock.run_blocking(cutout, frame.data, cx, cy)
        self.s.publish(GuideStar(
            state=self.state, x0=x0, y0=y0, side=CUT, pixels=base64.b64encode(img.tobytes()).decode(),
            star=[round(star.x, 2), round(star.y, 2)] if star else None,
            lock=[round(e.lock[0], 2), round(e.lock[1], 2)] if e.lock else None,
            snr=round(star.snr, 1) if star else 0.0, hfd=round(star.hfd, 2) if star else 0.0))

    def _dark_library(self) -> Any:
        from .guide_darks import DarkLibrary
        return DarkLibrary()

    # ----- commands -------------------------------------------------------
    async def cmd_darks(self, exposures: list[float] | None = None, frames: int = 10) -> dict[str, Any]:
        """Build the guide camera's dark library (the guide scope must be capped;
        the simulated rig caps itself) at the guiding gain; not while the loop runs."""
        from .guide_darks import DEFAULT_EXPOSURES, build_dark_library
        frames = int(number("guide.darks", "frames", frames, 3, 1000,
                            "a whole number of darks per exposure from 3 to 1000", integer=True))
        if exposures is not None and (not isinstance(exposures, list) or not exposures):
            raise ValueError(f"guide.darks: exposures must be a list of seconds, not {exposures!r}")
        exps = tuple(number("guide.darks", "exposures", e, 0, MAX_EXPOSURE_S,
                            f"seconds above 0, at most {MAX_EXPOSURE_S:g}", lo_open=True)
                     for e in (exposures or DEFAULT_EXPOSURES))
        if self._running():
            raise ValueError("stop the guide loop first (x): darks need the guide camera")
        self.s.device("guide_camera")
        try:
            camera = self.lease("guide_camera")
        except DeviceBusy as exc:
            raise ValueError(f"{exc}: stop it first") from None
        sim = self.s.rig.sim
        lib = self._dark_library()
        gain = self.settings.gain if self.settings.gain is not None else self.s.cfg.guide_camera.gain

        def cover(on: bool) -> None:
            if sim is not None:
                sim.guide_covered = on

        try:
            self._status("taking guide darks")
            darks = await build_dark_library(camera, self.s.clock, lib, gain=gain, exposures=exps,
                                             frames=frames, cover=cover)
        finally:
            self.release()
        hot = ", ".join(f"{d.exposure_s:g} s: {d.hot_pixels}" for d in darks)
        self.s.alert("info", "guiding", f"Guide dark library built at gain {gain} (hot pixels mapped "
                     f"{hot}); guiding subtracts them from now on")
        if self.worker is not None:
            self.worker.darks = lib
        self._status("guide darks ready")
        return {"folder": str(lib.folder), "gain": gain,
                "darks": [{"exposure_s": d.exposure_s, "hot_pixels": d.hot_pixels} for d in darks]}

    async def cmd_assistant(self, minutes: float = 10.0) -> str:
        """Start the guiding assistant (unguided for ``minutes``, then Dec backlash);
        its findings come as alerts and go into the guide log."""
        from .assistant import AssistantError, run_assistant
        minutes = number("guide.assistant", "minutes", minutes, 0, MAX_ASSISTANT_MIN,
                         f"minutes above 0, at most {MAX_ASSISTANT_MIN:g}", lo_open=True)
        if self._assisting():
            raise ValueError("the guiding assistant is already running: its findings come as alerts")
        if self._running() and self.state in ("guiding", "settling", "calibrating", "star lost"):
            raise ValueError(f"stop guiding first (x): the assistant watches the star unguided "
                             f"(now {self.state})")
        w = self._ensure_worker()
        from .assistant import AssistantProgress
        prog = self._assist_progress = AssistantProgress()
        prog.changed = lambda: self._status(self._assistant_detail() if prog.phase != "done" else None)

        async def run() -> None:
            try:
                f = await run_assistant(w, self.s.clock, minutes=minutes,
                                        pixel_scale=self.pixel_scale or 1.0,
                                        dec_deg=self.s.cfg.plan.dec_deg, progress=prog)
            except AssistantError as exc:
                self.s.alert("warning", "guiding", str(exc))
                self._status("guiding assistant failed (! shows why)")
                return
            except asyncio.CancelledError:
                self._status("guiding assistant stopped")
                raise
            for line in f.lines():
                self.s.alert("info", "guiding", line)
            self._status("guiding assistant done: ! lists its findings (also in the guide log)")

        self._start_star_feed()
        self._assistant = self.spawn(run(), name="guide-assistant")
        self._status(f"guiding assistant: {minutes:g} min unguided, then Dec backlash")
        return self.state

    async def cmd_loop(self) -> str:
        w = self._ensure_worker()
        w.start()
        self._start_star_feed()
        self._status()
        return self.state

    async def cmd_select(self, x: float | None = None, y: float | None = None) -> str:
        """Pick the guide star: the one at (``x``, ``y``) guide-camera px, or (neither
        given) the best one."""
        x, y = self._position("guide.select", x, y)
        if (x is None) != (y is None):
            raise ValueError("guide.select: give both x and y (px), or neither for the best star")
        w = self._ensure_worker()
        if not self._running():
            w.start()
            self._start_star_feed()
        w.select_star(x, y)
        self._status("selecting a star" if x is None else f"selecting the star at {x:.0f},{y:.0f}")
        return self.state

    async def cmd_calibrate(self, then_guide: bool = False) -> str:
        """Calibrate; ``then_guide``: guide again once calibrated (a recalibration while guiding)."""
        flag("guide.calibrate", "then_guide", then_guide)
        w = self._ensure_worker()
        await w.calibrate(then_guide=then_guide)
        self._start_star_feed()
        self._activity()
        return self.state

    async def cmd_start(self) -> str:
        """Guide; selects a star and calibrates first when needed."""
        w = self._ensure_worker()
        await w.start_guiding()
        self._start_star_feed()
        self._activity()
        return self.state

    async def cmd_dither(self, amount_px: float | None = None, ra_only: bool | None = None,
                         wait: bool = True) -> dict[str, Any]:
        """Dither by ``amount_px`` guide-camera px (None: the configured dither_px; 0: only
        settle, after a ``guide.lock``); with ``wait`` return once settled (or the settle
        timed out). Raises ValueError for an amount that is not 0 to MAX_DITHER_PX px."""
        amount_px = optional_number("guide.dither", "amount_px", amount_px, 0, MAX_DITHER_PX,
                                    f"pixels from 0 to {MAX_DITHER_PX:g}")
        flag("guide.dither", "ra_only", ra_only, optional=True)
        flag("guide.dither", "wait", wait)
        w = self.worker
        if w is None or w.state not in (GuideState.GUIDING, GuideState.SETTLING):
            return {"ok": False, "reason": f"not guiding ({self.state})", "distance_px": None,
                    "settle_time_s": 0.0}
        if not wait:
            ok = w.dither(amount_px, ra_only)
            return {"ok": ok, "reason": "dithering" if ok else "dither refused", "distance_px": None,
                    "settle_time_s": 0.0}
        t0 = self.s.clock.monotonic()
        try:
            done = await w.dither_and_settle(amount_px, ra_only)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this command was cancelled
            done = None  # guiding stopped (or failed) while settling: answer, do not vanish
        if done is None:
            return {"ok": False, "reason": "no settle result (guiding stopped or timed out)",
                    "distance_px": None, "settle_time_s": self.s.clock.monotonic() - t0}
        return {"ok": done.ok, "reason": done.reason, "distance_px": round(done.distance_px, 3),
                "settle_time_s": round(done.settle_time_s, 2)}

    async def cmd_lock(self, x: float | None = None, y: float | None = None,
                       dx: float = 0.0, dy: float = 0.0) -> list[float]:
        """Move the lock position (guide-camera px) to (``x``, ``y``), or by (``dx``, ``dy``):
        guiding then moves the telescope until the star sits there (``guide.dither`` with
        ``amount_px=0`` waits for it to settle). Returns the lock position. Raises ValueError
        when not guiding, for a number that is not one (NaN, infinite) or when the position
        is off the frame."""
        x, y = self._position("guide.lock", x, y)
        span = float(max(self.s.cfg.guide_camera.width, self.s.cfg.guide_camera.height))
        dx = number("guide.lock", "dx", dx, -span, span, f"pixels between -{span:g} and {span:g}")
        dy = number("guide.lock", "dy", dy, -span, span, f"pixels between -{span:g} and {span:g}")
        w = self.worker
        if w is None or w.state not in (GuideState.GUIDING, GuideState.SETTLING) or w.engine.lock is None:
            raise ValueError(f"not guiding ({self.state}): no lock position to move")
        e = w.engine
        nx = (e.lock[0] if x is None else float(x)) + dx
        ny = (e.lock[1] if y is None else float(y)) + dy
        if not e._inside(nx, ny):
            raise ValueError(f"lock position ({nx:.1f}, {ny:.1f}) is too close to the frame's edge")
        e.move_lock_position(nx, ny, "moved by a command")
        w._flush_engine_events()
        return [round(nx, 3), round(ny, 3)]

    async def cmd_stop(self, keep_looping: bool = False) -> str:
        """Stop guiding (``keep_looping``: the exposures go on) or stop everything
        (the guide camera and port are given back)."""
        flag("guide.stop", "keep_looping", keep_looping)
        w = self.worker
        if w is None:
            return self.state
        assisted = self._assisting()
        if assisted:  # stopping the assistant: its watch ends, nothing is found
            self._assistant.cancel()
            with contextlib.suppress(BaseException):
                await self._assistant
        if keep_looping and self._running():
            w.stop_guiding()
        else:
            await self.shutdown()
            self._failed = ""  # stopping acknowledges a failure: the guider is stopped
        self._status("guiding assistant stopped" if assisted else None)
        return self.state

    async def shutdown(self) -> None:
        if self._star_task is not None:
            self._star_task.cancel()
            with contextlib.suppress(BaseException):
                await self._star_task
        if self.worker is not None:
            await self.worker.stop()
        self.guiding_since = None
        self.release()

    async def resume(self, record: dict[str, Any]) -> str:
        """Take up a recorded run: loop, pick the recorded star again (the one
        nearest its position), then guide with the stored calibration (or
        calibrate) when the record was guiding."""
        w = self._ensure_worker()
        w.start()
        self._start_star_feed()
        star = record.get("lock")
        if star:
            w.select_star(float(star[0]), float(star[1]))
        else:
            w.select_star()
        if record.get("state") in ("guiding", "settling", "star lost", "calibrating"):
            self.spawn(self._guide_when_star(), name="guide-resume")
        self._status("resuming the interrupted guiding")
        return self.state

    async def _guide_when_star(self) -> None:
        w = self.worker
        assert w is not None
        end = self.s.clock.monotonic() + max(30.0, 10 * self.settings.exposure_s)
        while w.engine.star is None and self.s.clock.monotonic() < end and self._running():
            await self.s.clock.sleep(min(1.0, self.settings.exposure_s))
        if self._running():
            await w.start_guiding()
            self._status()

    async def cmd_resume(self) -> str:
        """Take up the guiding an interrupted service was doing (see the interruption alert)."""
        prev = self.s.interrupted or {}
        rec = (prev.get("activities") or {}).get("guiding")
        if not rec:
            raise ValueError("no interrupted guiding to resume")
        if "guiding" in prev.get("resumed", []):
            raise ValueError("the interrupted guiding was resumed already")
        state = await self.resume(rec)
        prev.setdefault("resumed", []).append("guiding")
        return state

    async def cmd_clear_calibration(self) -> str:
        if self.worker is not None:
            self.worker.engine.set_calibration(None)
        with contextlib.suppress(FileNotFoundError):
            self.calibration_path.unlink()
        self._status("calibration cleared: the next guiding start calibrates")
        return "cleared"

    async def cmd_state(self, minutes: float = 60.0) -> dict[str, Any]:
        """The guider's state with ``minutes`` of history (0 to 1440)."""
        minutes = number("guide.state", "minutes", minutes, 0, 1440, "minutes from 0 to 1440")
        return self.state_full(minutes)

    def _position(self, command: str, x: Any, y: Any) -> tuple[float | None, float | None]:
        """``x``, ``y`` (guide-camera px, each None or on the frame) checked for ``command``."""
        cam = self.s.cfg.guide_camera
        return (optional_number(command, "x", x, 0, cam.width, f"a column from 0 to {cam.width} px"),
                optional_number(command, "y", y, 0, cam.height, f"a row from 0 to {cam.height} px"))
