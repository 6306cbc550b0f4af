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
camera or the pier side changes (the engine checks).

``guide.dither`` returns once the mount has settled (or the settle timed
out), so a capture schedule can ``await session.commands["guide.dither"]()``
between frames.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from ..devices.base import DeviceDisconnected
from ..events import GuidePoint, GuideStar, GuideStatus
from ..guiding import events as ge
from ..guiding.events import GuideState
from ..guiding.settings import GuideSettings

if TYPE_CHECKING:
    from .guide_worker import GuideWorker
    from .session import Session

HISTORY = 3600          # guide points kept (an hour at 1 s exposures)
STAR_EVERY_S = 1.0      # at most one star cut-out a second
CUT = 24                # cut-out side in sensor pixels (the guide box is 25)
LEVELS = {"critical": "error", "warning": "warning", "info": "info"}


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


class _SharedCamera:
    """The guide camera, taking turns with the focus loop (one exposure at a time)."""

    def __init__(self, session: "Session", camera: Any) -> None:
        self._session = session
        self._camera = camera

    def __getattr__(self, name: str) -> Any:
        return getattr(self._camera, name)

    async def expose(self, seconds: float, gain: int | None = None, **kw: Any) -> Any:
        focus = getattr(self._session, "focus", None)
        lock = focus.lock("guide_camera") if focus is not None and hasattr(focus, "lock") else None
        try:
            if lock is None:
                return await self._camera.expose(seconds, gain, **kw)
            async with lock:
                return await self._camera.expose(seconds, gain, **kw)
        except DeviceDisconnected as exc:
            # The Session reports it (Equipment screen, alert) and is the one that reconnects.
            self._session.device_lost("guide_camera", exc)
            raise

    async def connect(self) -> None:
        """Wait until the Session has the camera back (the worker retries with a timeout)."""
        slot = self._session.slots["guide_camera"]
        while slot.status.state != "connected":
            await self._session.clock.sleep(0.5)

    async def disconnect(self) -> None:
        return None


class Guider:
    def __init__(self, session: "Session") -> None:
        self.s = session
        self.settings = GuideSettings.from_config(session.cfg)
        self.pixel_scale: float | None = session.cfg.guide_scale or None
        self.worker: GuideWorker | None = None
        self.history: deque[list[Any]] = deque(maxlen=HISTORY)
        self.detail = ""
        self._n = 0
        self._star_task: Any = None

    # ----- the worker -----------------------------------------------------
    @property
    def calibration_path(self):  # noqa: ANN201 - Path
        return self.s.night_dir / "guide_calibration.json"

    def _ensure_worker(self) -> "GuideWorker":
        from ..devices.base import DeviceError
        from .guide_worker import GuideWorker
        camera = self.s.device("guide_camera")
        port = self.s.device("guide_port")
        if self.worker is not None and self.worker.camera._camera is camera and self.worker.port is port:
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
            _SharedCamera(self.s, camera), port, self.s.clock, self.settings,  # type: ignore[arg-type]
            mount=mount, pixel_scale=self.pixel_scale, log_dir=self.s.night_dir,
            calibration_path=self.calibration_path, on_event=self._on_event,
            focal_mm=cfg.guide_scope.focal_length_mm, seed=getattr(cfg.sim, "seed", 0) or 0)
        return self.worker

    def _running(self) -> bool:
        w = self.worker
        return w is not None and w.running

    def _start_star_feed(self) -> None:
        if self._star_task is None or self._star_task.done():
            self._star_task = self.s.spawn(self._star_feed(), name="guide-star")

    @property
    def state(self) -> str:
        return self.worker.state.value if self.worker is not None else GuideState.STOPPED.value

    # ----- state ----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What the snapshot carries under "guiding" (and the status bar reads)."""
        w = self.worker
        out: dict[str, Any] = {"state": self.state, "detail": self.detail,
                               "pixel_scale": self.pixel_scale, "exposure_s": self.settings.exposure_s}
        if w is None:
            out.update(rms_total_arcsec=None, calibration=None, star=None, lock=None, frames=0)
            return out
        e = w.engine
        win, tot = e.stats.window(), e.stats.total()
        cal = e.calibration
        out.update({
            "rms_ra_arcsec": _r(win.rms_ra_arcsec), "rms_dec_arcsec": _r(win.rms_dec_arcsec),
            "rms_total_arcsec": _r(win.rms_total_arcsec) if win.frames else None,
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
                "dec_rate_px_s": _r(cal.dec_rate), "flipped": cal.flipped,
                "ortho_err_deg": _r(cal.orthogonality_error_deg, 1), "pier_side": cal.pier_side,
                "warnings": list(cal.warnings)},
            "frames": w.frames,
        })
        return out

    def snapshot(self) -> dict[str, Any] | None:
        """The snapshot's "guiding" entry: None until the guider was first used."""
        return None if self.worker is None else self.summary()

    def state_full(self, minutes: float = 60.0) -> dict[str, Any]:
        since = self.s.clock.now() - minutes * 60.0
        return {**self.summary(), "history": [p for p in self.history if p[0] >= since]}

    def _status(self, detail: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        self.s.publish(GuideStatus(state=self.state, detail=self.detail, summary=self.summary()))

    def _activity(self) -> None:
        st = self.state
        rms = self.summary().get("rms_total_arcsec")
        detail = self.detail if rms is None else f"{rms:.2f}″ RMS · {self.detail}".rstrip(" ·")
        self.s.set_activity("guiding", st, progress=float(self._n), detail=detail)

    # ----- worker events --------------------------------------------------
    def _to_arcsec(self, px: float) -> float:
        return px * self.pixel_scale if self.pixel_scale else px

    def _on_event(self, ev: ge.GuideEvent) -> None:
        if isinstance(ev, ge.GuideStep):
            self._point(ev)
            return
        if isinstance(ev, ge.FrameDropped):
            self._n = ev.frame
            self.history.append([round(ev.t, 2), None, None, 0, 0])
            self.s.publish(GuidePoint(t=ev.t, n=ev.frame, state=self.state, dropped=True))
            return
        if isinstance(ev, ge.Alert):
            self.s.alert(LEVELS.get(ev.level, "warning"), "guiding", ev.message)
            return
        detail: str | None = None
        if isinstance(ev, ge.StateChanged):
            detail = ev.reason
        elif isinstance(ev, ge.StarSelected):
            detail = f"star at {ev.x:.0f},{ev.y:.0f} SNR {ev.snr:.0f} ({ev.candidates} candidates)"
        elif isinstance(ev, ge.CalibrationStarted):
            detail = "calibration starting"
        elif isinstance(ev, ge.CalibrationStep):
            detail = f"calibrating {ev.direction} step {ev.step}, {ev.dist:.1f} px"
        elif isinstance(ev, ge.CalibrationDone):
            detail = (f"calibration {'reused' if ev.reused else 'done'}: angle {ev.ra_angle_deg:.1f}°, "
                      f"RA {ev.ra_rate_px_s:.2f} px/s, Dec {ev.dec_rate_px_s:.2f} px/s")
        elif isinstance(ev, ge.CalibrationFailed):
            detail = f"calibration failed: {ev.reason}"
        elif isinstance(ev, ge.GuidingStarted):
            detail = "guiding"
        elif isinstance(ev, ge.DitherStarted):
            detail = f"dither {math.hypot(ev.ra_px, ev.dec_px):.1f} px, settling"
        elif isinstance(ev, ge.SettleDone):
            detail = (f"settled in {ev.settle_time_s:.0f} s" if ev.ok
                      else f"settle failed: {ev.reason or 'timeout'}")
        elif isinstance(ev, ge.StarLost):
            detail = f"star lost: {ev.reason}"
            self.s.alert("warning", "guiding", f"Guide star lost ({ev.reason}); waiting for it to come back")
        elif isinstance(ev, ge.StarFound):
            detail = f"star back after {ev.lost_for_s:.0f} s"
            self.s.alert("info", "guiding", f"Guide star back after {ev.lost_for_s:.0f} s; "
                         f"{'guiding resumes' if self.state in ('guiding', 'settling') else self.state}")
        elif isinstance(ev, ge.GuidingStopped):
            detail = ev.reason
        self._status(detail)
        if isinstance(ev, (ge.StateChanged, ge.CalibrationDone, ge.SettleDone, ge.StarFound)):
            self._activity()

    def _point(self, ev: ge.GuideStep) -> None:
        self._n = ev.frame
        ra, dec = self._to_arcsec(ev.ra_px), self._to_arcsec(ev.dec_px)
        ra_ms = ev.ra_ms if ev.ra_dir == "W" else -ev.ra_ms if ev.ra_dir == "E" else 0
        dec_ms = ev.dec_ms if ev.dec_dir == "N" else -ev.dec_ms if ev.dec_dir == "S" else 0
        self.history.append([round(ev.t, 2), round(ra, 3), round(dec, 3), ra_ms, dec_ms])
        e = self.worker.engine if self.worker is not None else None
        win = e.stats.window() if e is not None else None
        rms = [_r(win.rms_ra_arcsec), _r(win.rms_dec_arcsec), _r(win.rms_total_arcsec)] if win else []
        rms_px = [_r(win.rms_ra_px), _r(win.rms_dec_px), _r(win.rms_total_px)] if win else []
        self.s.publish(GuidePoint(t=ev.t, n=ev.frame, state=self.state, ra=round(ra, 3), dec=round(dec, 3),
                                  ra_px=round(ev.ra_px, 3), dec_px=round(ev.dec_px, 3), ra_ms=ra_ms,
                                  dec_ms=dec_ms, snr=round(ev.snr, 1), hfd=round(ev.hfd, 2),
                                  rms=rms, rms_px=rms_px))  # type: ignore[arg-type]
        if ev.frame % 30 == 0:
            self._activity()

    async def _star_feed(self) -> None:
        """The guide box, at most once a second, while the loop runs. This task also
        ties the worker to the Session: stopping the Session stops the guide loop."""
        last = None
        try:
            while True:
                w = self.worker
                frame = w.last_frame if w is not None and self._running() else None
                if w is not None and frame is not None and frame is not last:
                    last = frame
                    await self._publish_star(w, frame)
                await self.s.clock.sleep(STAR_EVERY_S)
        finally:
            if self.worker is not None:
                with contextlib.suppress(Exception):
                    await self.worker.stop()

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

    # ----- commands -------------------------------------------------------
    async def cmd_loop(self) -> str:
        w = self._ensure_worker()
        w.start()
        self._start_star_feed()
        self._status()
        self._activity()
        return self.state

    async def cmd_select(self, x: float | None = None, y: float | None = None) -> str:
        w = self._ensure_worker()
        if not self._running():
            w.start()
            self._start_star_feed()
        w.select_star(x, y)
        self._status("selecting a star" if x is None else f"selecting the star at {x:.0f},{y:.0f}")
        return self.state

    async def cmd_calibrate(self) -> str:
        w = self._ensure_worker()
        await w.calibrate(then_guide=False)
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
        """Dither; with ``wait`` return once settled (or the settle timed out)."""
        w = self.worker
        if w is None or w.state not in (GuideState.GUIDING, GuideState.SETTLING):
            return {"ok": False, "reason": f"not guiding ({self.state})", "distance_px": None,
                    "settle_time_s": 0.0}
        if not wait:
            ok = w.dither(amount_px, ra_only)
            return {"ok": ok, "reason": "dithering" if ok else "dither refused", "distance_px": None,
                    "settle_time_s": 0.0}
        t0 = self.s.clock.now()
        done = await w.dither_and_settle(amount_px, ra_only)
        if done is None:
            return {"ok": False, "reason": "no settle result (guiding stopped or timed out)",
                    "distance_px": None, "settle_time_s": self.s.clock.now() - t0}
        return {"ok": done.ok, "reason": done.reason, "distance_px": round(done.distance_px, 3),
                "settle_time_s": round(done.settle_time_s, 2)}

    async def cmd_stop(self, keep_looping: bool = False) -> str:
        """Stop guiding (``keep_looping``: the exposures go on) or stop everything."""
        w = self.worker
        if w is None:
            return self.state
        if keep_looping and self._running():
            w.stop_guiding()
        else:
            await w.stop()
        self._status()
        self._activity()
        return self.state

    async def cmd_clear_calibration(self) -> str:
        if self.worker is not None:
            self.worker.engine.set_calibration(None)
        with contextlib.suppress(FileNotFoundError):
            self.calibration_path.unlink()
        self._status("calibration cleared: the next guiding start calibrates")
        return "cleared"

    async def cmd_state(self, minutes: float = 60.0) -> dict[str, Any]:
        return self.state_full(minutes)


def install(session: "Session") -> None:
    """Register the guiding commands and state on a Session."""
    g = Guider(session)
    session.guider = g  # type: ignore[attr-defined]
    session.commands.update({
        "guide.loop": g.cmd_loop,
        "guide.select": g.cmd_select,
        "guide.calibrate": g.cmd_calibrate,
        "guide.start": g.cmd_start,
        "guide.dither": g.cmd_dither,
        "guide.stop": g.cmd_stop,
        "guide.clear_calibration": g.cmd_clear_calibration,
        "guide.state": g.cmd_state,
    })
