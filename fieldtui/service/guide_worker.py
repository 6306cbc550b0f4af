"""The guide loop with real devices: exposures in, pulses out.

:class:`GuideWorker` runs the :class:`~fieldtui.guiding.engine.GuideEngine`
against a :class:`GuideCamera` and a :class:`GuidePort` on a
:class:`~fieldtui.clock.Clock`.  Every device call awaits with a timeout on
that clock, so the loop never blocks other tasks, and a camera that goes
away is retried (with alerts) until it is back; guiding then resumes where
it was.  Events go to every ``on_event`` callback (the Session forwards
them) and to the night's guide log.

The event loop never waits on computation: the full-frame star detection
and the predictive model's refits run in worker threads through
:meth:`Clock.run_blocking` (a refit in progress never delays a pulse: the
engine predicts with the last finished model).  The engine runs on the
clock's monotonic time, so a wall-clock step cannot break settling; event
times are turned back into wall-clock time for the log and the clients.
A frame that makes the engine raise is logged, counted (``bad_frames``)
and skipped; :data:`MAX_BAD_IN_ROW` of them in a row end the loop with the
error (the Session then reports guiding as failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Coroutine

from ..clock import Clock
from ..devices.base import DeviceDisconnected, DeviceError, GuideCamera, GuidePort, Mount
from ..guiding.calibration import Calibration, load_calibration, save_calibration
from ..guiding.engine import GuideEngine, Pulse
from ..guiding.events import (
    Alert, CalibrationDone, GuideEvent, GuideState, SettleDone,
)
from ..guiding.log import GuideLogWriter
from ..guiding.settings import GuideSettings

EventCallback = Callable[[GuideEvent], Any]
log = logging.getLogger(__name__)

MAX_BAD_IN_ROW = 5      # frames in a row the engine may fail on before the loop gives up
LATENCY_KEEP = 10000    # frame-to-pulse times kept (wall ms)


class GuideWorker:
    def __init__(self, camera: GuideCamera, port: GuidePort, clock: Clock,
                 settings: GuideSettings | None = None, *, mount: Mount | None = None,
                 pixel_scale: float | None = None, dec_deg: float | None = None,
                 log_dir: str | Path | None = None, calibration_path: str | Path | None = None,
                 on_event: EventCallback | None = None, seed: int = 0,
                 expose_timeout_s: float = 15.0, pulse_timeout_s: float = 5.0,
                 retry_s: float = 2.0, max_retry_s: float = 30.0, focal_mm: float | None = None,
                 spawn: Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"] | None = None,
                 darks: Any = None) -> None:
        self.camera = camera
        self.port = port
        self.clock = clock
        self.mount = mount
        self.settings = settings or GuideSettings()
        white = float(2 ** getattr(camera, "bit_depth", 16) - 1)
        self.engine = GuideEngine(self.settings, pixel_scale=pixel_scale,
                                  guide_rate=getattr(port, "guide_rate", None), dec_deg=dec_deg,
                                  camera=getattr(camera, "model", "") or type(camera).__name__,
                                  saturation=white, seed=seed)
        self.engine.pier_aware = bool(getattr(port, "pier_aware", False))
        self.calibration_path = Path(calibration_path) if calibration_path else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.log: GuideLogWriter | None = None
        self._focal_mm = focal_mm
        self._callbacks: list[EventCallback] = [on_event] if on_event else []
        self.expose_timeout_s = expose_timeout_s
        self.pulse_timeout_s = pulse_timeout_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._task: asyncio.Task[None] | None = None
        # Who runs the loop's task: the Session (through the guiding activity, which
        # fails on its exception), or a plain task for the stand-alone `fieldtui guide`.
        self._spawn = spawn or (lambda coro, name: asyncio.get_running_loop().create_task(coro, name=name))
        self._running = False
        self._wake = asyncio.Event()
        self.last_frame = None  # the latest Frame, for previews
        # Frame in → pulses decided, wall ms per frame (detection in its thread included).
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_KEEP)
        self.frames = 0
        self.bad_frames = 0
        self._refits: set[asyncio.Task[None]] = set()
        self._saves: set[asyncio.Task[None]] = set()
        self.engine.defer_refits = True
        self.camera_errors = 0
        self.disconnects = 0
        self._settle_waiters: list[asyncio.Future[SettleDone]] = []
        # A DarkLibrary (fieldtui.service.guide_darks): each frame has the dark of
        # the closest exposure subtracted and the mapped hot pixels replaced.
        self.darks = darks
        self.dark_in_use: Any = None
        if self.calibration_path is not None:
            cal = load_calibration(self.calibration_path)
            if cal is not None:
                self.engine.set_calibration(cal)

    @property
    def corrections(self) -> bool:
        """False: measure only, never pulse (the unguided mount, the guiding assistant):
        the engine then runs no guide algorithm and raises no correction alerts."""
        return self.engine.corrections

    @corrections.setter
    def corrections(self, on: bool) -> None:
        self.engine.corrections = bool(on)

    # ----------------------------------------------------------------- events
    def subscribe(self, cb: EventCallback) -> None:
        self._callbacks.append(cb)

    def _wall(self, t_mono: float) -> float:
        """A time on the clock's monotonic base as wall-clock time (now's offset)."""
        return t_mono + (self.clock.now() - self.clock.monotonic())

    def _dispatch(self, events: list[GuideEvent]) -> None:
        """Forward events whose times are on the monotonic clock (the engine's,
        and the worker's own alerts) with wall-clock times."""
        for ev in events:
            ev.t = self._wall(ev.t)
        for ev in events:
            if self.log is not None:
                try:
                    self.log.handle(ev)
                except OSError as exc:  # a full disk must not stop guiding
                    self.log = None
                    self._dispatch([Alert(self.clock.monotonic(), "warning", "guide-log",
                                          f"Guide log stopped: {exc}")])
            if isinstance(ev, CalibrationDone) and not ev.reused and self.calibration_path is not None:
                cal = self.engine.calibration
                if cal is not None:
                    cal.timestamp = ev.t  # the engine stamped it on the monotonic clock
                    self._save_calibration(cal)
            if isinstance(ev, SettleDone):
                waiters, self._settle_waiters = self._settle_waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_result(ev)
            for cb in list(self._callbacks):
                cb(ev)

    def _save_calibration(self, cal: Calibration) -> None:
        """Store the calibration (an atomic, fsynced write) in a worker thread."""
        path = self.calibration_path
        assert path is not None

        async def save() -> None:
            try:
                await self.clock.run_blocking(save_calibration, path, cal)
            except OSError as exc:
                self._dispatch([Alert(self.clock.monotonic(), "warning", "calibration",
                                      f"Could not store the calibration: {exc}")])

        task = asyncio.get_running_loop().create_task(save(), name="guide-calibration-save")
        self._saves.add(task)  # kept referenced until done (never cancelled: the write is atomic)
        task.add_done_callback(self._saves.discard)

    def _flush_engine_events(self) -> None:
        self._dispatch(self.engine.pop_events())

    # --------------------------------------------------------------- commands
    @property
    def state(self) -> GuideState:
        return self.engine.state

    @property
    def failure(self) -> BaseException | None:
        """The error that ended the exposure loop (None while it runs or after a stop)."""
        t = self._task
        if t is None or not t.done() or t.cancelled():
            return None
        return t.exception()

    @property
    def running(self) -> bool:
        """The exposure loop is going (looping, calibrating, guiding…)."""
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Start the exposure loop (looping, no guiding yet)."""
        if self._task is None or self._task.done():
            self._running = True
            log_error = None
            if self.log_dir is not None and self.log is None:
                try:
                    self.log = GuideLogWriter(self.log_dir, self.clock.now(), camera=self.engine.camera,
                                              exposure_s=self.settings.exposure_s,
                                              gain=self.settings.gain, focal_mm=self._focal_mm)
                except OSError as exc:  # guiding matters more than its log
                    log_error = exc
            self.engine.start_looping()
            self._flush_engine_events()
            if log_error is not None:
                self._dispatch([Alert(self.clock.monotonic(), "warning", "guide-log",
                                      f"No guide log: {log_error}")])
            self._task = self._spawn(self._run(), "guide-worker")
        return self._task

    async def stop(self) -> None:
        self._running = False
        self.engine.stop("guide loop stopped")
        self._flush_engine_events()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.log is not None:
            self.log.close(self.clock.now())
            self.log = None
        for w in self._settle_waiters:
            if not w.done():
                w.cancel()
        self._settle_waiters = []

    async def _refresh_pointing(self) -> None:
        if self.mount is None:
            return
        try:
            st = await self.clock.wait_for(self.mount.state(), 5.0)
        except (DeviceError, TimeoutError):
            return
        self.engine.set_pointing(st.dec_deg, st.pier_side)

    async def start_guiding(self) -> None:
        await self._refresh_pointing()
        self.start()
        self.engine.start_guiding()
        self._flush_engine_events()

    async def calibrate(self, then_guide: bool = False) -> None:
        await self._refresh_pointing()
        self.start()
        self.engine.start_calibration(then_guide=then_guide)
        self._flush_engine_events()

    def select_star(self, x: float | None = None, y: float | None = None) -> None:
        self.engine.select_star(x, y)
        self._flush_engine_events()

    def stop_guiding(self) -> None:
        self.engine.stop_guiding()
        self._flush_engine_events()

    def dither(self, amount_px: float | None = None, ra_only: bool | None = None) -> bool:
        ok = self.engine.dither(amount_px, ra_only)
        self._flush_engine_events()
        return ok

    async def dither_and_settle(self, amount_px: float | None = None,
                                ra_only: bool | None = None) -> SettleDone | None:
        """Dither, then wait (on the clock) until settled or timed out."""
        fut: asyncio.Future[SettleDone] = asyncio.get_running_loop().create_future()
        self._settle_waiters.append(fut)
        if not self.dither(amount_px, ra_only):
            self._settle_waiters.remove(fut)
            return None
        try:
            return await self.clock.wait_for(fut, self.settings.settle_timeout_s + 30.0)
        except TimeoutError:
            return None

    # -------------------------------------------------------------------- loop
    def _mono_of(self, frame: Any, arrival: float, exposure_s: float) -> float:
        """The end of the frame's exposure on the monotonic clock: from its wall
        timestamp when that is plausible (a wall-clock step during the exposure
        is not), else its arrival time."""
        if not frame.timestamp:
            return arrival
        t = frame.timestamp + exposure_s - (self.clock.now() - self.clock.monotonic())
        return t if arrival - exposure_s - 5.0 <= t <= arrival + 1e-6 else arrival

    def _start_refits(self) -> None:
        for job in self.engine.take_refit_jobs():
            task = asyncio.get_running_loop().create_task(self._refit(job), name="guide-refit")
            self._refits.add(task)
            task.add_done_callback(self._refits.discard)

    async def _refit(self, job: Any) -> None:
        try:
            fit = await self.clock.run_blocking(job.run)
        except asyncio.CancelledError:
            self.engine.accept_refit(job, None)
            raise
        except Exception:  # noqa: BLE001 - a failed refit keeps the last model
            log.exception("predictive refit failed; guiding goes on with the last model")
            fit = None
        self.engine.accept_refit(job, fit)

    async def _run(self) -> None:
        s = self.settings
        errors_in_row = 0
        bad_in_row = 0
        try:
            while self._running:
                exp = self.engine.next_exposure_s  # shorter while settling, when set
                try:
                    frame = await self.clock.wait_for(self.camera.expose(exp, s.gain),
                                                      exp + self.expose_timeout_s)
                except asyncio.CancelledError:
                    raise
                except DeviceDisconnected as exc:
                    await self._reconnect(exc)
                    continue
                except (DeviceError, TimeoutError) as exc:
                    errors_in_row += 1
                    self.camera_errors += 1
                    self._dispatch(self.engine.on_frame_missing(self.clock.monotonic(), str(exc)).events)
                    if errors_in_row == 3:
                        self._dispatch([Alert(self.clock.monotonic(), "warning", "camera",
                                              f"Guide camera failed {errors_in_row} frames in a row: {exc}")])
                    await self.clock.sleep(min(1.0, exp))
                    continue
                errors_in_row = 0
                self.frames += 1
                t0 = time.perf_counter()
                t = self._mono_of(frame, self.clock.monotonic(), exp)
                calibrating = self.engine.state == GuideState.CALIBRATING
                try:
                    if self.darks is not None:
                        frame = await self._dark_subtracted(frame, exp)
                    detection: Any = None
                    if self.engine.needs_detection(t):
                        detection = await self.clock.run_blocking(self.engine.detect, frame.data)
                    decision = (self.engine.on_frame(frame.data, t, detection=detection, exposure_s=exp)
                                if detection is not None
                                else self.engine.on_frame(frame.data, t, exposure_s=exp))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad frame must not end guiding
                    bad_in_row += 1
                    self.bad_frames += 1
                    log.exception("guide frame %d could not be measured (%d in a row)",
                                  self.frames, bad_in_row)
                    if bad_in_row >= MAX_BAD_IN_ROW:
                        raise
                    self._dispatch(self.engine.on_frame_missing(
                        t, f"bad frame: {type(exc).__name__}: {exc}").events)
                    if bad_in_row == 1:
                        self._dispatch([Alert(t, "warning", "bad-frame",
                                              f"A guide frame could not be measured ({type(exc).__name__}: "
                                              f"{exc}); skipped it, guiding goes on")])
                    await asyncio.sleep(0)
                    continue
                bad_in_row = 0
                self.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
                self.last_frame = frame  # previews show frames that were measured
                self._start_refits()
                self._dispatch(decision.events)
                if decision.pulses and (self.corrections or calibrating
                                        or self.engine.state == GuideState.CALIBRATING):
                    await self._pulse(decision.pulses)
                if s.cycle_time_s > 0:
                    await self.clock.sleep(s.cycle_time_s)
                else:
                    await asyncio.sleep(0)
        finally:
            for task in list(self._refits):
                task.cancel()

    async def _dark_subtracted(self, frame: Any, exposure_s: float | None = None) -> Any:
        """The frame (of ``exposure_s``, default the guide exposure) with its dark
        subtracted and hot pixels replaced (in a thread)."""
        from dataclasses import replace as dc_replace
        from ..guiding.darks import apply_dark
        s = self.settings
        gain = s.gain if s.gain is not None else getattr(frame, "gain", 0) or 0
        exp = s.exposure_s if exposure_s is None else exposure_s
        gd = self.darks.find(exp, int(gain), tuple(frame.data.shape))
        if gd is not self.dark_in_use:
            self.dark_in_use = gd
            if gd is None:
                msg = (f"No guide dark for gain {gain} at this frame size: guiding without one "
                       "(build the dark library: fieldtui guide --build-darks, or D on the "
                       "Guiding screen)")
            else:
                msg = (f"Guide dark of {gd.exposure_s:g} s at gain {gd.gain} in use "
                       f"({gd.hot_pixels} hot pixels mapped out)")
            self._dispatch([Alert(self.clock.monotonic(), "info" if gd else "warning", "darks", msg)])
        if gd is None:
            return frame
        data = await self.clock.run_blocking(apply_dark, frame.data, gd)
        return dc_replace(frame, data=data)

    async def _pulse(self, pulses: list[Pulse]) -> None:
        """RA and Dec pulses at the same time (ST4 drives both lines)."""
        async def one(p: Pulse) -> None:
            await self.clock.wait_for(self.port.pulse(p.direction, p.ms),  # type: ignore[arg-type]
                                      p.ms / 1000.0 + self.pulse_timeout_s)

        results = await asyncio.gather(*(one(p) for p in pulses), return_exceptions=True)
        for p, r in zip(pulses, results):
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, BaseException):
                self._dispatch([Alert(self.clock.monotonic(), "critical", "guide-port",
                                      f"Guide pulse {p.direction} {p.ms} ms failed: {r}. "
                                      "Check the ST4 cable / mount connection")])

    async def _reconnect(self, exc: Exception) -> None:
        self.disconnects += 1
        t_lost = self.clock.monotonic()
        self._dispatch(self.engine.on_frame_missing(t_lost, f"camera disconnected: {exc}").events)
        self._dispatch([Alert(t_lost, "critical", "camera-disconnected",
                              f"Guide camera disconnected ({exc}); retrying every few seconds. "
                              "Guiding resumes when it is back")])
        delay = self.retry_s
        attempts = 0
        while self._running:
            await self.clock.sleep(delay)
            attempts += 1
            try:
                with contextlib.suppress(Exception):
                    await self.camera.disconnect()
                await self.clock.wait_for(self.camera.connect(), self.expose_timeout_s)
            except asyncio.CancelledError:
                raise
            except (DeviceError, TimeoutError, OSError) as e:
                if attempts % 10 == 0:
                    self._dispatch([Alert(self.clock.monotonic(), "critical", "camera-disconnected",
                                          f"Guide camera still disconnected after "
                                          f"{self.clock.monotonic() - t_lost:.0f} s: {e}")])
                delay = min(delay * 1.5, self.max_retry_s)
                continue
            self._dispatch([Alert(self.clock.monotonic(), "info", "camera-reconnected",
                                  f"Guide camera back after {self.clock.monotonic() - t_lost:.0f} s; "
                                  f"{'guiding resumes' if self.state != GuideState.LOOPING else 'looping'}")])
            return

    # ------------------------------------------------------------------ helpers
    def snapshot(self) -> dict[str, Any]:
        """State for a client connecting mid-night."""
        e = self.engine
        cal: Calibration | None = e.calibration
        return {
            "state": e.state.value,
            "star": None if e.star is None else {"x": e.star.x, "y": e.star.y, "snr": e.star.snr,
                                                  "hfd": e.star.hfd},
            "lock": e.lock,
            "calibration": cal.to_dict() if cal else None,
            "stats": e.stats.window().to_dict(),
            "stats_total": e.stats.total().to_dict(),
            "frames": self.frames,
        }
