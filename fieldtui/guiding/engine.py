"""The guide engine: frames and times in, pulses and events out.

No asyncio, no devices, no wall clock.  The worker (or a test) calls
:meth:`GuideEngine.on_frame` with every guide frame and its time, performs
the pulses in the returned :class:`Decision`, and forwards the events.
Commands (:meth:`start_guiding`, :meth:`dither`, …) take effect on the next
frame.

States: stopped → looping → (calibrating →) guiding ⇄ settling, and star
lost from any of the tracking states, back to where it was when the star
comes back.  Nothing fails silently: every state change, step and problem
is an event, and problems that need the user are :class:`Alert` events.

Times are seconds on a clock that never steps (the worker passes monotonic
time), so a wall-clock correction cannot break settling or the predictive
model.

Two costly steps can run elsewhere so a caller on an event loop never waits
for them: the full-frame star detection (when a star is picked, or searched
for after it was lost: :meth:`GuideEngine.needs_detection` says when,
:func:`detect_guide_star` is the pure function, its result goes to
:meth:`GuideEngine.on_frame` as ``detection``) and the predictive model's
periodic refits (``defer_refits``; :meth:`GuideEngine.take_refit_jobs` hands
them out, :meth:`GuideEngine.accept_refit` installs the finished model; the
last finished model keeps predicting meanwhile).  Without a caller doing
so, both run inline as before.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from .algorithms import GuideAlgorithm, make_algorithm
from .backlash import BacklashCompensator
from .predictive import GearModel, PeriodicFit, PredictiveDec, RefitJob
from .calibration import Calibration, CalibrationSettings, Calibrator
from .centroid import StarMeasurement, measure_star
from .events import (
    Alert, CalibrationDone, CalibrationFailed, CalibrationStarted, CalibrationStep, DitherStarted,
    FrameDropped, GuideEvent, GuideState, GuideStep, GuidingStarted, GuidingStopped,
    LockPositionSet, SettleDone, StarFound, StarLost, StarSelected, StateChanged,
)
from .select import NoGuideStar, Selection, select_guide_star
from .settings import GuideSettings
from .stats import GuideStats

UNDERSAMPLED_NOTE_HFD = 1.6  # px: a guide star this narrow gets the "undersampled" note


@dataclass
class Pulse:
    direction: str  # "N", "S", "E", "W"
    ms: int


@dataclass
class Decision:
    """What to do after a frame: the pulses (one per axis at most; RA and Dec
    may run at the same time) and the events to forward."""

    pulses: list[Pulse] = field(default_factory=list)
    events: list[GuideEvent] = field(default_factory=list)


@dataclass
class _Star:
    x: float
    y: float
    ref_dx: float = 0.0  # extras: offset from the guide star (at selection, then at guiding start)
    ref_dy: float = 0.0
    mass: float = 0.0
    snr: float = 0.0
    hfd: float = 0.0


TRACKING = (GuideState.GUIDING, GuideState.SETTLING)
_NOT_GIVEN = object()


def detect_guide_star(data: np.ndarray, settings: GuideSettings, box_half: int,
                      saturation: float | None) -> Selection | NoGuideStar:
    """The full-frame guide-star detection the engine needs when it picks a
    star: :func:`~fieldtui.guiding.select.select_guide_star` with the
    engine's settings.  Pure (safe in a worker thread); returns the
    :class:`NoGuideStar` error instead of raising it.  ``data``: (h, w)."""
    try:
        return select_guide_star(data, min_snr=settings.min_snr, min_stars=settings.min_stars,
                                 box_half=box_half, saturation=saturation,
                                 min_hfd=settings.min_hfd_px, extra_stars=settings.multi_star)
    except NoGuideStar as exc:
        return exc


class GuideEngine:
    def __init__(self, settings: GuideSettings | None = None, *, pixel_scale: float | None = None,
                 guide_rate: float | None = None, dec_deg: float | None = None, camera: str = "",
                 pier_side: str = "unknown", saturation: float | None = None,
                 calibration: Calibration | None = None, seed: int = 0) -> None:
        self.settings = settings or GuideSettings()
        self.pixel_scale = pixel_scale
        self.guide_rate = guide_rate
        self.dec_deg = dec_deg
        self.camera = camera
        self.pier_side = pier_side
        self.pier_aware = False  # the guide port's N/S follow the pier side (see GuidePort.pier_aware)
        self.saturation = saturation
        self.calibration: Calibration | None = calibration
        self.state = GuideState.STOPPED
        self.stats = GuideStats(pixel_scale=pixel_scale, window_s=self.settings.stats_window_s)
        self.ra_algo, self.dec_algo = self._make_algorithms()
        self.star: _Star | None = None
        self.extras: list[_Star] = []
        self.lock: tuple[float, float] | None = None
        self.calibrator: Calibrator | None = None
        self.frame_no = 0
        self.guide_frame = 0
        self.guide_start_t: float | None = None
        self.last_t = 0.0
        self._rng = random.Random(seed)
        self._events: list[GuideEvent] = []
        self._pending: str | None = None  # "select", "calibrate", "guide"
        self._select_at: tuple[float, float] | None = None
        self._after_cal: str | None = None  # "guide" or "resume"
        self._lost_from: GuideState | None = None
        self._lost_since = 0.0
        self._lost_alert_at: float | None = None
        self._new_star_try_at = 0.0
        self._drift_since: float | None = None
        self._recovering_since: float | None = None
        self._recover_alert_at = 0.0
        self._dither_t = 0.0
        self._settle_since: float | None = None
        self._acc: list[tuple[float, float]] = []
        self._last_corr_t: float | None = None
        self._shape: tuple[int, int] | None = None
        self._last_data: np.ndarray | None = None
        self._detection: object = _NOT_GIVEN
        self._defer_refits = False
        # Exposure timing: this frame's exposure, the last frame's end, and the
        # time between frames beyond their exposures (readout, pulses, cycle time).
        self._frame_exp = self.settings.exposure_s
        self._prev_frame_t: float | None = None
        self._overheads: deque[float] = deque(maxlen=15)
        # The same without the pulses sent after the frame before (s), that pulse, and
        # the recent Dec pulses (s; 0 for none).
        self._bare_overheads: deque[float] = deque(maxlen=15)
        self._last_pulse_s = 0.0
        self._dec_pulses_s: deque[float] = deque(maxlen=15)
        # Limits that bind: corrections in a row, last alert time, tolerance side.
        self._limit_run: dict[str, int] = {"RA": 0, "Dec": 0}
        self._limit_alert_at: dict[str, float] = {}
        self._tol_side: dict[str, int] = {}
        # Dec drifting the way dec_mode cannot correct: since when, alerted when.
        self._wrong_way_since: float | None = None
        self._wrong_way_alert_at: float | None = None
        self._wrong_way_alert_px = 0.0  # how far off Dec was when that alert went out
        self._dec_ms2 = 0.0  # Dec offset's running mean square while guiding (px²)
        # Dec backlash compensation, from the calibration's measurement.
        self.backlash_comp: BacklashCompensator | None = None
        self._comp_from_cal: Calibration | None = None
        self._live: dict[str, str] = {}
        self._extras_ref_due = False
        # After a lost star: the predictive guiders' comparison waits until the star
        # has been settled again (since when it is, None: not yet).
        self._hold_after_lost = False
        self._hold_ok_since: float | None = None
        # False: measure only (the guiding assistant's unguided watch, `guide
        # --no-corrections`): tracking frames are measured and reported, nothing is corrected.
        self.corrections = True

    # ------------------------------------------------------------------ setup
    def _make_algorithms(self) -> tuple[GuideAlgorithm, GuideAlgorithm]:
        s = self.settings
        ra_pred = s.ra_algorithm.lower() == "predictive"
        dec_pred = s.dec_algorithm.lower() == "predictive"
        ra = make_algorithm(s.ra_algorithm, hysteresis=s.ra_hysteresis,
                            aggression=s.ra_predictive_aggression if ra_pred else s.ra_aggression,
                            min_move=s.ra_min_move, prediction_gain=s.ra_prediction_gain,
                            trend_s=s.ra_trend_s, period_s=s.ra_period_s or None,
                            classic_hysteresis=s.ra_hysteresis, classic_aggression=s.ra_aggression,
                            classic_min_move=s.ra_min_move)
        dec = make_algorithm(s.dec_algorithm, axis="dec",
                             aggression=s.dec_predictive_aggression if dec_pred else s.dec_aggression,
                             min_move=s.dec_min_move, hysteresis=s.ra_hysteresis,
                             drift_s=s.dec_drift_s, drift_gain=s.dec_drift_gain,
                             classic_min_move=s.dec_min_move, classic_aggression=s.dec_aggression)
        ra_gust, dec_gust = getattr(ra, "gust", None), getattr(dec, "gust", None)
        if ra_gust is not None and dec_gust is not None:
            dec_gust.rates = ra_gust.rates  # one tube: a gust relaxes alike on both axes
        if isinstance(dec, PredictiveDec):
            # The Dec mode blocks the replayed classic's pulses as it blocks the live ones.
            dec.directions = {"north": -1, "south": 1, "off": None}.get(s.dec_mode.lower(), 0)
        return ra, dec

    # ------------------------------------------------------- off-loop work
    @property
    def defer_refits(self) -> bool:
        """When True, predictive refits wait for :meth:`take_refit_jobs`."""
        return self._defer_refits

    @defer_refits.setter
    def defer_refits(self, on: bool) -> None:
        self._defer_refits = bool(on)
        for m in self._gear_models():
            m.defer = self._defer_refits

    def _gear_models(self) -> list[GearModel]:
        return [m for m in (getattr(a, "model", None) for a in (self.ra_algo, self.dec_algo))
                if isinstance(m, GearModel)]

    def take_refit_jobs(self) -> list[RefitJob]:
        """Refits due since the last call (run each ``job.run()`` anywhere, then
        give the result to :meth:`accept_refit`).  At most one per axis at a time."""
        return [j for j in (m.refit_job() for m in self._gear_models()) if j is not None]

    def accept_refit(self, job: RefitJob, fit: PeriodicFit | None) -> bool:
        """Install a finished refit (None: it failed, the last model stays)."""
        return job.model.accept(job, fit)

    def needs_detection(self, t: float) -> bool:
        """The frame at time ``t`` will need the full-frame star detection."""
        if self.state == GuideState.STOPPED:
            return False
        if self._select_at is None and (self._pending == "select" or (
                self.star is None and self._pending in ("calibrate", "guide"))):
            return True
        return self.state == GuideState.STAR_LOST and t >= self._new_star_try_at

    def detect(self, data: np.ndarray) -> Selection | NoGuideStar:
        """:func:`detect_guide_star` with this engine's settings."""
        return detect_guide_star(data, self.settings, self.box_half, self.saturation)

    def _detected(self, data: np.ndarray) -> Selection:
        """The detection given with this frame, else computed here; raises NoGuideStar."""
        d = self._detection if self._detection is not _NOT_GIVEN else self.detect(data)
        if isinstance(d, NoGuideStar):
            raise d
        return d  # type: ignore[return-value]

    @property
    def box_half(self) -> int:
        return max(4, self.settings.box_px // 2)

    def _emit(self, ev: GuideEvent) -> None:
        self._events.append(ev)

    def _alert(self, level: str, code: str, message: str) -> None:
        self._emit(Alert(self.last_t, level, code, message))

    def _set_state(self, new: GuideState, reason: str = "") -> None:
        if new != self.state:
            old = self.state
            self.state = new
            self._emit(StateChanged(self.last_t, old, new, reason))

    def pop_events(self) -> list[GuideEvent]:
        """Events emitted by commands since the last frame."""
        ev, self._events = self._events, []
        return ev

    # --------------------------------------------------------------- commands
    def start_looping(self) -> None:
        if self.state == GuideState.STOPPED:
            self._set_state(GuideState.LOOPING, "looping exposures")

    def stop(self, reason: str = "stopped by the user") -> None:
        if self.state in TRACKING or (self.state == GuideState.STAR_LOST and self._lost_from in TRACKING):
            self._emit(GuidingStopped(self.last_t, reason))
        self._pending = None
        self._after_cal = None
        self.calibrator = None
        self._set_state(GuideState.STOPPED, reason)

    def stop_guiding(self, reason: str = "guiding stopped") -> None:
        """Back to looping (the star stays selected)."""
        if self.state in TRACKING or self.state == GuideState.STAR_LOST:
            self._emit(GuidingStopped(self.last_t, reason))
        self._pending = None
        self._after_cal = None
        self.calibrator = None
        self._set_state(GuideState.LOOPING, reason)

    def select_star(self, x: float | None = None, y: float | None = None) -> None:
        """Pick the guide star on the next frame: at (x, y), or automatically."""
        self.start_looping()
        self._select_at = (x, y) if x is not None and y is not None else None
        self.star = None
        self._pending = "select"

    def start_calibration(self, then_guide: bool = False) -> None:
        self.start_looping()
        self._pending = "calibrate"
        self._after_cal = "guide" if then_guide else None

    def start_guiding(self) -> None:
        """Guide on the next frame; selects a star and calibrates first when
        needed (a stored calibration is reused while the camera is the same:
        adjusted for the declination and flipped after a meridian flip)."""
        self.start_looping()
        if self.calibration is not None and self.calibration.matches(self.camera, ""):
            self._flip_calibration(self.pier_side)
        if self.calibration is not None and not self.calibration.matches(self.camera, self.pier_side):
            self._alert("info", "calibration", "The stored calibration is for another camera: "
                        "calibrating again")
            self.calibration = None
        if self.calibration is None:
            self.start_calibration(then_guide=True)
        else:
            self._pending = "guide"

    def set_calibration(self, cal: Calibration | None) -> None:
        """Use ``cal`` (None: forget it), adjusted to the declination (cos δ) and flipped to the
        pier side the mount reports."""
        self.calibration = cal.for_declination(self.dec_deg) if cal is not None else None
        self._flip_calibration(self.pier_side)

    def _flip_calibration(self, pier_side: str) -> None:
        """A calibration made on the other side of the pier is flipped rather than redone
        (:meth:`Calibration.after_flip`; ``pier_aware`` says how the guide port's Dec behaves)."""
        cal = self.calibration
        if cal is None:
            return
        new = cal.for_pier_side(pier_side, self.pier_aware)
        if new is not cal:
            self.calibration = new
            self._alert("info", "calibration", f"Pier side is now {pier_side}: calibration flipped "
                        f"(RA reversed, Dec {'reversed' if self.pier_aware else 'kept'}), not redone")

    def set_pointing(self, dec_deg: float | None = None, pier_side: str | None = None) -> None:
        """The mount's declination and pier side changed (after a slew or a
        meridian flip)."""
        if dec_deg is not None:
            self.dec_deg = dec_deg
            if self.calibration is not None:
                self.calibration = self.calibration.for_declination(dec_deg)
        if pier_side is not None and pier_side != self.pier_side:
            self.pier_side = pier_side
            self._flip_calibration(pier_side)

    def set_lock_position(self, x: float, y: float, reason: str = "set by the user") -> None:
        self.lock = (x, y)
        self._emit(LockPositionSet(self.last_t, x, y, reason))

    def move_lock_position(self, x: float, y: float, reason: str = "moved by a command") -> None:
        """Move the lock position (camera px) while guiding: the mount is to follow it, as
        after a dither, so the algorithms are told the shift along the mount axes (a
        predictive guider's gear error would otherwise jump by it: the re-centring after a
        meridian flip moved the lock 11 px in Dec, read as a drift the wrong way)."""
        if self.lock is not None and self.calibration is not None:
            ra, dec = self.calibration.mount_from_camera(x - self.lock[0], y - self.lock[1])
            self.ra_algo.lock_moved(ra)
            self.dec_algo.lock_moved(dec)
        self.set_lock_position(x, y, reason)

    def dither(self, amount_px: float | None = None, ra_only: bool | None = None) -> bool:
        """Move the lock position by ``amount_px`` in a random direction (or
        along RA only) and settle.  Returns False when not guiding."""
        if self.state not in TRACKING or self.lock is None or self.calibration is None:
            self._alert("warning", "dither", f"Cannot dither while {self.state.value}")
            return False
        s = self.settings
        a = s.dither_px if amount_px is None else amount_px
        ra_only = s.dither_ra_only if ra_only is None else ra_only
        if ra_only:
            ra, dec = (a if self._rng.random() < 0.5 else -a), 0.0
        else:
            ang = self._rng.uniform(0.0, 2.0 * math.pi)
            ra, dec = a * math.cos(ang), a * math.sin(ang)
        cdx, cdy = self.calibration.camera_from_mount(ra, dec)
        nx, ny = self.lock[0] + cdx, self.lock[1] + cdy
        if not self._inside(nx, ny):
            ra, dec, cdx, cdy = -ra, -dec, -cdx, -cdy
            nx, ny = self.lock[0] + cdx, self.lock[1] + cdy
        self.lock = (nx, ny)
        self.ra_algo.lock_moved(ra)
        self.dec_algo.lock_moved(dec)
        self._emit(DitherStarted(self.last_t, cdx, cdy, ra, dec, nx, ny))
        self._emit(LockPositionSet(self.last_t, nx, ny, "dither"))
        self._dither_t = self.last_t
        self._settle_since = None
        self._acc.clear()
        self._last_corr_t = None
        self._set_state(GuideState.SETTLING, "dither")
        return True

    def _inside(self, x: float, y: float) -> bool:
        if self._shape is None:
            return True
        h, w = self._shape
        m = self.box_half + 2
        return m <= x < w - m and m <= y < h - m

    # ----------------------------------------------------------------- frames
    def on_frame_missing(self, t: float, reason: str) -> Decision:
        """No frame this cycle (camera error, timeout)."""
        self.frame_no += 1
        self.last_t = t
        if self.state in TRACKING or (self.state == GuideState.STAR_LOST and self._lost_from in TRACKING):
            self.stats.dropped_frames += 1
            self.guide_frame += 1
            self._emit(FrameDropped(t, self.guide_frame, self._elapsed(t), reason, error_code=2))
        return Decision([], self.pop_events())

    def _elapsed(self, t: float) -> float:
        return t - self.guide_start_t if self.guide_start_t is not None else 0.0

    @property
    def next_exposure_s(self) -> float:
        """The exposure (s) the next guide frame should have: ``settle_exposure_s``
        while settling after a dither (when set), else ``exposure_s``."""
        s = self.settings
        if self.state == GuideState.SETTLING and s.settle_exposure_s > 0:
            return s.settle_exposure_s
        return s.exposure_s

    def on_frame(self, data: np.ndarray, t: float, detection: object = _NOT_GIVEN,
                 exposure_s: float | None = None) -> Decision:
        """One guide frame: ``data`` (h, w) ADU, ``t`` the end of its exposure (s,
        monotonic).  ``detection``: the result of :meth:`detect` on this frame,
        when the caller ran it elsewhere (see :meth:`needs_detection`).
        ``exposure_s``: the frame's exposure (default the settings' ``exposure_s``;
        give it when the frame followed :attr:`next_exposure_s`)."""
        exp = self.settings.exposure_s if exposure_s is None else float(exposure_s)
        if self._prev_frame_t is not None and t > self._prev_frame_t:
            gap = max(t - self._prev_frame_t - exp, 0.0)
            self._overheads.append(gap)
            self._bare_overheads.append(max(gap - self._last_pulse_s, 0.0))
        self._prev_frame_t = t
        self._last_pulse_s = 0.0
        if exp != self._frame_exp and self.star is not None and self._frame_exp > 0:
            # The star's flux goes with the exposure: a shorter frame is not a lost star.
            self.star.mass *= exp / self._frame_exp
        self._frame_exp = exp
        self._detection = detection
        try:
            d = self._on_frame(data, t)
        finally:
            self._detection = _NOT_GIVEN
        # RA and Dec pulses run at once: the next frame starts after the longest.
        self._last_pulse_s = max((p.ms for p in d.pulses), default=0) / 1000.0
        if self.state in TRACKING:
            self._dec_pulses_s.append(max((p.ms for p in d.pulses if p.direction in "NS"),
                                          default=0) / 1000.0)
        return d

    def _on_frame(self, data: np.ndarray, t: float) -> Decision:
        self.frame_no += 1
        self.last_t = t
        self._shape = (int(data.shape[0]), int(data.shape[1]))
        self._last_data = data
        if self.state == GuideState.STOPPED:
            return Decision([], self.pop_events())
        if self._pending == "select" or (self.star is None and self._pending in ("calibrate", "guide")):
            if not self._select(data, t):
                return Decision([], self.pop_events())
            if self._pending == "select":
                self._pending = None
        if self.star is None:
            return Decision([], self.pop_events())

        if self.state == GuideState.STAR_LOST:
            if not self._search_lost(data, t):
                return Decision([], self.pop_events())
        else:
            m = measure_star(data, self.star.x, self.star.y, self.box_half, self.saturation)
            why = self._bad(m)
            if why:
                self._enter_lost(t, why, m)
                return Decision([], self.pop_events())
            assert m is not None
            self._update_star(m)

        pulses: list[Pulse] = []
        if self._pending == "calibrate":
            self._pending = None
            self._begin_calibration(t)
        elif self._pending == "guide":
            self._pending = None
            self._begin_guiding(t, keep_lock=False)

        if self.state == GuideState.CALIBRATING:
            pulses = self._calibration_step(t)
        elif self.state in TRACKING:
            pulses = self._guide_step(data, t)
        return Decision(pulses, self.pop_events())

    # --------------------------------------------------------------- star
    def _bad(self, m: StarMeasurement | None) -> str:
        if m is None:
            return "no star in the guide box"
        if m.snr < self.settings.lost_snr:
            return f"low SNR ({m.snr:.1f})"
        mc = self.settings.mass_change
        if mc > 1.0 and self.star is not None and self.star.mass > 0:
            if m.mass < self.star.mass / mc or m.mass > self.star.mass * mc:
                return f"star flux changed {m.mass / self.star.mass:.2f}×"
        return ""

    def _update_star(self, m: StarMeasurement) -> None:
        assert self.star is not None
        s = self.star
        s.x, s.y, s.snr, s.hfd = m.x, m.y, m.snr, m.hfd
        s.mass = m.mass if s.mass <= 0 else 0.9 * s.mass + 0.1 * m.mass

    def _select(self, data: np.ndarray, t: float) -> bool:
        s = self.settings
        if self._select_at is not None:
            x, y = self._select_at
            m = measure_star(data, x, y, self.box_half, self.saturation)
            if m is None or m.snr < s.lost_snr:
                self._fail_start(f"No star at ({x:.0f}, {y:.0f}): pick a brighter star or select "
                                 "automatically")
                return False
            self.star = _Star(m.x, m.y, mass=m.mass, snr=m.snr, hfd=m.hfd)
            self.extras = []
            self._select_at = None
            self._emit(StarSelected(t, m.x, m.y, m.snr, m.hfd, 0, 0, auto=False))
            self._note_undersampled(m.hfd)
            return True
        try:
            sel = self._detected(data)
        except NoGuideStar as exc:
            self._fail_start(f"Cannot pick a guide star: {exc}")
            return False
        p = sel.primary
        self.star = _Star(p.x, p.y, mass=p.mass, snr=p.snr, hfd=p.hfd)
        self.extras = [_Star(c.x, c.y, c.x - p.x, c.y - p.y, c.mass, c.snr, c.hfd) for c in sel.extras]
        self._emit(StarSelected(t, p.x, p.y, p.snr, p.hfd, sel.visible, len(self.extras), auto=True))
        self._note_undersampled(p.hfd)
        return True

    def _note_undersampled(self, hfd: float) -> None:
        # The Gaussian-fit centroid takes over below HFD 2 px, where it starts to help; the
        # note waits for stars clearly undersampled (FWHM ~1.3 px and less), since the
        # default guide scope's stars measure HFD 1.9-2.0 px and guide as well as wider ones.
        if 0 < hfd < UNDERSAMPLED_NOTE_HFD:
            self._alert("info", "undersampled", f"The guide star is undersampled (HFD {hfd:.1f} px, "
                        f"FWHM about {hfd / 1.2:.1f} px): its centre comes from a "
                        "Gaussian fit, which stays unbiased. A longer guide scope (or a camera "
                        "with smaller pixels) would put more pixels on each star")

    def _fail_start(self, msg: str) -> None:
        what = self._pending
        self._pending = None
        self._after_cal = None
        self._alert("critical" if what in ("calibrate", "guide") else "warning", "no-star", msg)
        if what == "calibrate":
            self._emit(CalibrationFailed(self.last_t, msg))

    def _enter_lost(self, t: float, reason: str, m: StarMeasurement | None) -> None:
        self._lost_from = self.state
        self._lost_since = t
        self._lost_alert_at = None
        self._new_star_try_at = t + self.settings.new_star_after_s
        self.stats.star_lost_events += 1
        snr = m.snr if m is not None else 0.0
        mass = m.mass if m is not None else 0.0
        self._emit(StarLost(t, reason, snr))
        if self.state in TRACKING:
            self.guide_frame += 1
            self._emit(FrameDropped(t, self.guide_frame, self._elapsed(t), f"Star lost - {reason}",
                                    snr, mass, 1))
        self._set_state(GuideState.STAR_LOST, reason)

    def _search_lost(self, data: np.ndarray, t: float) -> bool:
        """One frame while lost: look near the last position, then wider,
        then (after a while) anywhere.  True when the star is back."""
        assert self.star is not None
        s = self.settings
        ref_mass = self.star.mass
        found: StarMeasurement | None = None
        centres = [(self.star.x, self.star.y)]
        if self.lock is not None:
            centres.append(self.lock)
        for half in (self.box_half, 3 * self.box_half):
            for cx, cy in centres:
                m = measure_star(data, cx, cy, half, self.saturation)
                if m is None or m.snr < s.lost_snr * 1.34:
                    continue
                if ref_mass > 0 and not (ref_mass / 4 <= m.mass <= ref_mass * 4):
                    continue
                found = m
                break
            if found:
                break
        lost_for = t - self._lost_since
        if found is not None:
            self._update_star(found)
            self._emit(StarFound(t, found.x, found.y, found.snr, lost_for, True))
            self._resume_after_lost(t)
            return True
        if t >= self._new_star_try_at:
            self._new_star_try_at = t + 10.0
            try:
                sel = self._detected(data)  # only its primary star is used here
            except NoGuideStar:
                sel = None
            if sel is not None:
                p = sel.primary
                self.star = _Star(p.x, p.y, mass=p.mass, snr=p.snr, hfd=p.hfd)
                self.extras = []
                self._emit(StarFound(t, p.x, p.y, p.snr, lost_for, False))
                if self.lock is not None:
                    self.set_lock_position(p.x, p.y, "new guide star")
                self._alert("warning", "new-star", f"The guide star did not come back after "
                            f"{lost_for:.0f} s; guiding resumed on another star at ({p.x:.0f}, "
                            f"{p.y:.0f}). The lock position was reset, so the framing may have "
                            "shifted")
                self._resume_after_lost(t)
                return True
        if self._lost_from in TRACKING:
            self.stats.dropped_frames += 1
            self.guide_frame += 1
            self._emit(FrameDropped(t, self.guide_frame, self._elapsed(t), "Star lost", 0.0, 0.0, 1))
        if lost_for >= s.lost_alert_s and (self._lost_alert_at is None or t - self._lost_alert_at >= 300):
            self._lost_alert_at = t
            doing = "guiding is paused" if self._lost_from in TRACKING else "nothing is being tracked"
            self._alert("critical", "star-lost", f"Guide star lost for {lost_for:.0f} s (clouds, "
                        f"an obstruction or a big bump): {doing}, still searching. Check the sky "
                        "and the guide camera")
        return False

    def _resume_after_lost(self, t: float) -> None:
        back = self._lost_from or GuideState.LOOPING
        self._lost_from = None
        self._drift_since = None
        if back == GuideState.CALIBRATING:
            self._alert("warning", "calibration", "The star was lost during calibration: starting "
                        "the calibration again")
            self._set_state(GuideState.LOOPING, "star found")
            self._pending = "calibrate"
            return
        if back in TRACKING:
            self._hold_after_lost = True
            self._hold_ok_since = None
        self._set_state(back, "star found")

    # ------------------------------------------------------------ calibration
    def _begin_calibration(self, t: float) -> None:
        assert self.star is not None
        s = self.settings
        cs = CalibrationSettings(target_px=s.calibration_px, steps=s.calibration_steps,
                                 step_ms=s.calibration_step_ms or None, max_ortho_deg=s.calibration_max_ortho_deg,
                                 max_ratio_error=s.calibration_max_ratio_error,
                                 max_steps=max(60, 5 * s.calibration_steps))
        self.calibrator = Calibrator(cs, guide_rate=self.guide_rate, pixel_scale=self.pixel_scale,
                                     dec_deg=self.dec_deg, camera=self.camera, pier_side=self.pier_side,
                                     t0=t)
        self._set_state(GuideState.CALIBRATING, "calibration started")
        self._emit(CalibrationStarted(t, self.star.x, self.star.y, self.star.hfd,
                                      self.calibrator.ra_step_ms, self.calibrator.dec_step_ms))

    def _calibration_step(self, t: float) -> list[Pulse]:
        assert self.star is not None and self.calibrator is not None
        cal = self.calibrator
        n_before = len(cal.records)
        # The frame shows the star mid-exposure: the calibration takes the mount's
        # own motion out of the rates with these times.
        req = cal.update(self.star.x, self.star.y, t - self._frame_exp / 2.0)
        for rec in cal.records[n_before:]:
            leg, step, dx, dy, x, y, dist = rec
            ms = cal.pulse_ms if req is None else req.ms
            self._emit(CalibrationStep(t, leg, step, dx, dy, x, y, dist, ms))
        if cal.failed:
            self.calibrator = None
            self._emit(CalibrationFailed(t, cal.error))
            self._alert("critical", "calibration", cal.error)
            self._after_cal = None
            self._set_state(GuideState.LOOPING, "calibration failed")
            return []
        # Done once the south leg is back: its Dec backlash check is in the warnings.
        if cal.done and cal.result is not None and self.calibration is not cal.result:
            res = cal.result
            self.calibration = res
            # The calibration ends with its south leg: the Dec gear rests on its south side.
            self._setup_backlash_comp(res, gear_at=0.0)
            self._emit(CalibrationDone(t, res.ra_angle_deg, res.dec_angle_deg, res.ra_rate, res.dec_rate,
                                       res.flipped, res.orthogonality_error_deg, list(res.warnings)))
            for w in res.warnings:
                self._alert("warning", "calibration", w)
        if cal.done:
            self.calibrator = None
            after = self._after_cal
            self._after_cal = None
            if after in ("guide", "resume"):
                self._begin_guiding(t, keep_lock=(after == "resume"))
            else:
                self._set_state(GuideState.LOOPING, "calibration complete")
            return []
        return [Pulse(req.direction, req.ms)] if req is not None and req.ms > 0 else []

    # ---------------------------------------------------------------- guiding
    def _begin_guiding(self, t: float, keep_lock: bool) -> None:
        assert self.star is not None
        if self.calibration is None:
            self.start_calibration(then_guide=True)
            return
        if not keep_lock or self.lock is None or not self._inside(*self.lock):
            self.lock = (self.star.x, self.star.y)
            self._emit(LockPositionSet(t, self.star.x, self.star.y, "guiding started"))
        # The extras' offsets from the guide star are taken again on the first
        # guiding frame (calibration moved the field since they were picked).
        self._extras_ref_due = True
        self.ra_algo.reset()
        self.dec_algo.reset()
        self.guide_start_t = t
        self.guide_frame = 0
        self._drift_since = None
        self._recovering_since = None
        self._wrong_way_since = None
        self._wrong_way_alert_at = None
        self._wrong_way_alert_px = 0.0
        self._acc.clear()
        self._last_corr_t = None
        s = self.settings
        self._set_state(GuideState.GUIDING, "guiding started")
        self._emit(GuidingStarted(
            t, self.lock[0], self.lock[1], self.star.x, self.star.y, self.star.hfd, self.pixel_scale,
            s.exposure_s, self.calibration.to_dict(), asdict(s),
            f"{self.ra_algo.name}, {self.ra_algo.summary()}",
            f"{self.dec_algo.name}, {self.dec_algo.summary()}", self.dec_deg, self.pier_side,
            guiding_enabled=self.corrections))

    def _comp_threshold_px(self) -> float:
        """Smallest Dec miss (px) the backlash compensator adapts to: the predictive Dec
        guider corrects an averaged error from half the minimum move, so a compensation
        off by less than the minimum move (a 65-ms excess of 8 s: 0.11 px) made it reverse
        every ~17 s through the whole play, never adapted (60″, no drift: 1.17 -> 1.48)."""
        s = self.settings
        if s.dec_algorithm.lower() != "predictive":
            return s.dec_min_move
        # Not below what seeing alone puts into the mean of the compensator's last misses
        # (2.5 standard errors): 0.2-s frames scatter ~0.3 px, and adapting from 0.1 px
        # followed the noise (0.2-s exposures, seeds 7/0/1: 1.124 -> 1.147).
        noise = 2.5 * math.sqrt(self._dec_ms2) / math.sqrt(BacklashCompensator.HISTORY)
        return min(s.dec_min_move, max(0.5 * s.dec_min_move, noise))

    def _setup_backlash_comp(self, cal: Calibration | None, gear_at: float | None = None) -> None:
        """Backlash compensation from the calibration's measured play (none when it
        was not measured, is negligible, or only a lower bound: too large to add blindly)."""
        self._comp_from_cal = cal
        ms = cal.backlash_ms if cal is not None else None
        if (not self.settings.dec_backlash_comp or ms is None or cal is None
                or cal.backlash_lower_bound or ms < 100.0):
            self.backlash_comp = None
        else:
            self.backlash_comp = BacklashCompensator(ms, gear_at=gear_at)
        if isinstance(self.dec_algo, PredictiveDec):
            # The play no compensation adds back: the replayed classic's reversals lose it.
            play = 0.0
            if self.backlash_comp is None and ms is not None and cal is not None:
                play = ms / 1000.0 * cal.dec_rate
            # gear_at 0: resting on its south side, where positive (south) corrections left it.
            self.dec_algo.set_play(play, resting=(1 if gear_at == 0.0 else -1 if gear_at == 1.0
                                                  else None))

    def _offset(self, data: np.ndarray) -> tuple[float, float, int]:
        """Star offset from the lock position (camera px), averaged over the
        extra stars that agree with the guide star."""
        assert self.star is not None and self.lock is not None
        dx, dy = self.star.x - self.lock[0], self.star.y - self.lock[1]
        if not self.extras:
            return dx, dy, 1
        def weight(snr: float, hfd: float) -> float:
            # Inverse variance: the star's own seeing jitter (~0.1 px, the
            # same for every star) plus its centroid noise (measured on the
            # simulator: about 4 HFD / SNR px).  SNR alone let a bright guide
            # star drown the others, whose own jitter averaging is for.
            noise = 4.0 * hfd / max(snr, 1e-6)
            return 1.0 / (0.1 ** 2 + noise * noise)

        wsum = weight(self.star.snr, self.star.hfd)
        sx, sy = dx * wsum, dy * wsum
        used = 1
        keep: list[_Star] = []
        fresh = self._extras_ref_due
        self._extras_ref_due = False
        for e in self.extras:
            # Search where the guide star says it is: an extra keeps its
            # offset from the guide star however the mount moved.
            m = measure_star(data, self.star.x + e.ref_dx, self.star.y + e.ref_dy, self.box_half,
                             self.saturation)
            if m is None or m.snr < self.settings.lost_snr:
                continue  # dropped from averaging from now on
            e.x, e.y, e.snr = m.x, m.y, m.snr
            keep.append(e)
            if fresh:
                e.ref_dx, e.ref_dy = m.x - self.star.x, m.y - self.star.y
            ex = m.x - (self.lock[0] + e.ref_dx)
            ey = m.y - (self.lock[1] + e.ref_dy)
            if math.hypot(ex - dx, ey - dy) > 1.5:
                continue  # disagrees: a neighbour or a hot pixel got in its box
            w = weight(m.snr, m.hfd)
            sx += ex * w
            sy += ey * w
            wsum += w
            used += 1
        self.extras = keep
        return sx / wsum, sy / wsum, used

    def _guide_step(self, data: np.ndarray, t: float) -> list[Pulse]:
        assert self.star is not None and self.lock is not None and self.calibration is not None
        s = self.settings
        cal = self.calibration
        self.guide_frame += 1
        dx, dy, used = self._offset(data)
        ra_px, dec_px = cal.mount_from_camera(dx, dy)
        dist = math.hypot(dx, dy)
        if not self.corrections:
            return self._watch_step(t, dx, dy, ra_px, dec_px, dist, used)

        self._acc.append((ra_px, dec_px))
        if self.state == GuideState.GUIDING:
            # Dec's mean square over ~50 frames (px²): the scatter seeing gives it.
            self._dec_ms2 += (dec_px * dec_px - self._dec_ms2) / 50.0
        held = self._comparison_held(t, dist)
        self.ra_algo.hold_comparison(held)
        self.dec_algo.hold_comparison(held)
        correct = (s.correction_time_s <= 0 or self._last_corr_t is None
                   or t - self._last_corr_t >= s.correction_time_s - 1e-6
                   or self.state == GuideState.SETTLING)
        ra_out = dec_out = 0.0
        algo_out: tuple[float, float] | None = None
        if correct:
            ra_in = sum(a[0] for a in self._acc) / len(self._acc)
            dec_in = sum(a[1] for a in self._acc) / len(self._acc)
            self._acc.clear()
            self._last_corr_t = t
            if self._recovering_since is not None:
                ra_out, dec_out = ra_in, dec_in  # full corrections until it is back
            else:
                t_mid = t - self._frame_exp / 2.0  # the frame shows the star mid-exposure
                self._plan_cycle()
                ra_out = (self.ra_algo.result(ra_in, t=t_mid) if self.ra_algo.uses_time
                          else self.ra_algo.result(ra_in))
                dec_out = (self.dec_algo.result(dec_in, t=t_mid) if self.dec_algo.uses_time
                           else self.dec_algo.result(dec_in))
                algo_out = (ra_out, dec_out)
                self._note_live(t)
            if s.tolerance_px > 0:
                # The tolerance holds back feedback on small errors, never a
                # predictive algorithm's feed-forward of the mount's own error.
                held = [False, False]
                if abs(ra_in) < s.tolerance_px:
                    held[0] = ra_out != 0.0
                    ra_out = self.ra_algo.feed_forward() if algo_out is not None else 0.0
                if abs(dec_in) < s.tolerance_px:
                    held[1] = dec_out != 0.0
                    dec_out = self.dec_algo.feed_forward() if algo_out is not None else 0.0
                self._check_tolerance(held, (ra_in, dec_in))

        pulses: list[Pulse] = []
        ra_ms, ra_dir, ra_lim = self._to_pulse(ra_out, cal.ra_rate, "E", "W", s.max_ra_pulse_ms, s.min_pulse_ms)
        dec_ms, dec_dir, dec_lim = self._to_pulse(dec_out, cal.dec_rate, "S", "N", s.max_dec_pulse_ms,
                                                  s.min_pulse_ms)
        mode = s.dec_mode.lower()
        if dec_ms and (mode == "off" or (mode == "north" and dec_dir != "N")
                       or (mode == "south" and dec_dir != "S")):
            dec_ms, dec_dir, dec_lim = 0, "", False
        if algo_out is not None:
            # Tell the algorithms what was really sent (tolerance, rounding,
            # pulse limits, Dec mode): the predictive one keeps the sum.
            sent_ra = math.copysign(ra_ms / 1000.0 * cal.ra_rate, ra_out) if ra_ms else 0.0
            sent_dec = math.copysign(dec_ms / 1000.0 * cal.dec_rate, dec_out) if dec_ms else 0.0
            self.ra_algo.applied(algo_out[0], sent_ra)
            self.dec_algo.applied(algo_out[1], sent_dec)
        if self._comp_from_cal is not cal:
            self._setup_backlash_comp(cal)  # a reused calibration: the gear's place is unknown
        comp = self.backlash_comp
        dec_extra = 0
        if comp is not None:
            if correct:
                comp.outcome(-dec_in, cal.dec_rate, self._comp_threshold_px())
            if dec_ms:
                d = 1 if dec_dir == "N" else -1
                dec_extra = int(round(comp.extra_ms(d)))
                dec_ms += dec_extra
                comp.sent(d, dec_ms, dec_extra, limited=dec_lim)
        if ra_ms:
            pulses.append(Pulse(ra_dir, ra_ms))
        if dec_ms:
            pulses.append(Pulse(dec_dir, dec_ms))
        if correct:
            self._check_limit("RA", ra_lim, s.max_ra_pulse_ms, "max_ra_pulse_ms")
            self._check_limit("Dec", dec_lim, s.max_dec_pulse_ms, "max_dec_pulse_ms")

        step = GuideStep(t, self.guide_frame, self._elapsed(t), self.star.x, self.star.y,
                         self.lock[0], self.lock[1], dx, dy, ra_px, dec_px, ra_out, dec_out,
                         ra_ms, ra_dir, dec_ms, dec_dir, self.star.snr, self.star.mass, self.star.hfd,
                         used, ra_lim, dec_lim, dec_extra)
        self._emit(step)
        if self.state == GuideState.GUIDING:
            self.stats.add(step)
            wrong_way = self._check_dec_mode(t, dec_px)
            if wrong_way and abs(ra_px) <= s.drift_limit_px:
                # Only Dec is away, the way dec_mode forbids: full-strength corrections
                # or a new calibration cannot help, the dec-mode alert says what will.
                self._drift_since = None
                self._recovering_since = None
            else:
                self._watchdog(t, dist)
        elif self.state == GuideState.SETTLING:
            self._settle(t, dist)
        return pulses

    def _watch_step(self, t: float, dx: float, dy: float, ra_px: float, dec_px: float,
                    dist: float, used: int) -> list[Pulse]:
        """A tracking frame with :attr:`corrections` off: the star's error (camera ``dx``,
        ``dy`` and mount ``ra_px``, ``dec_px``, px) is reported with no correction.  No
        algorithm runs, so nothing alerts about corrections that are not sent (pulse
        limits, tolerance, the predictive model, Dec mode); the star's own troubles (lost,
        low SNR, saturated) still do, and so does a star away from its lock position
        (``drift_time_s``; the guiding assistant sets it to infinity)."""
        assert self.star is not None and self.lock is not None
        for key in self._limit_run:
            self._limit_run[key] = 0
        step = GuideStep(t, self.guide_frame, self._elapsed(t), self.star.x, self.star.y,
                         self.lock[0], self.lock[1], dx, dy, ra_px, dec_px, 0.0, 0.0,
                         0, "", 0, "", self.star.snr, self.star.mass, self.star.hfd, used,
                         False, False, 0)
        self._emit(step)
        if self.state == GuideState.GUIDING:
            self.stats.add(step)
            self._watchdog(t, dist)
        elif self.state == GuideState.SETTLING:
            self._settle(t, dist)
        return []

    def _plan_cycle(self) -> None:
        """Tell the algorithms how far the next frame's middle is from this one's,
        when the exposures change (settling on shorter ones): the usual cycle
        (exposure plus overhead) plus half the change of exposure.  With one
        exposure throughout they go by the cycles they saw (None)."""
        s = self.settings
        hint: float | None = None
        if s.settle_exposure_s > 0 and s.settle_exposure_s != s.exposure_s and self._overheads:
            ovh = float(np.median(self._overheads))
            hint = ovh + 0.5 * (self._frame_exp + self.next_exposure_s)
        for algo in (self.ra_algo, self.dec_algo):
            algo.next_cycle_s = hint
        if hasattr(self.ra_algo, "pulse_s_per_px"):
            # The predictive RA guider predicts to the next frame's middle, which its own
            # pulse delays: the cycle without pulses, and the pulse per px of correction.
            cal = self.calibration
            known = (len(self._bare_overheads) >= 3 and s.correction_time_s <= 0
                     and cal is not None and cal.ra_rate > 0)
            self.ra_algo.cycle_base_s = (float(np.median(self._bare_overheads))
                                         + 0.5 * (self._frame_exp + self.next_exposure_s)
                                         if known else None)
            self.ra_algo.pulse_s_per_px = 1.0 / cal.ra_rate if known and cal is not None else None
            self.ra_algo.max_pulse_s = s.max_ra_pulse_ms / 1000.0
            # The Dec pulse (decided after RA's) delays the next frame when it is the
            # longer one: the RA guider counts the recent Dec pulses' median.
            self.ra_algo.other_pulse_s = (float(np.median(self._dec_pulses_s))
                                          if self._dec_pulses_s else 0.0)

    def _comparison_held(self, t: float, dist: float) -> bool:
        """Frames that say nothing about a guider (settling after a dither, and after a
        lost star until the star has stayed within settle_px for settle_time_s) are not
        scored by the predictive guiders' replay of the classic ones."""
        if self.state == GuideState.SETTLING:
            return True
        if not self._hold_after_lost:
            return False
        s = self.settings
        if dist > s.settle_px:
            self._hold_ok_since = None
            return True
        if self._hold_ok_since is None:
            self._hold_ok_since = t
        if t - self._hold_ok_since >= s.settle_time_s:
            self._hold_after_lost = False
            return False
        return True

    def _note_live(self, t: float) -> None:
        """Say when an axis's predictive guider hands over to the classic one or takes back."""
        for axis, algo in (("RA", self.ra_algo), ("Dec", self.dec_algo)):
            live = getattr(algo, "live", None)
            if live is None:
                continue
            was = self._live.get(axis)
            self._live[axis] = live
            if was is not None and was != live:
                if live == "predictive":
                    msg = (f"{axis}: the predictive model would have guided better than "
                           "the classic guider over the last minutes; it is in charge again")
                else:
                    why = ("gusts, Dec backlash no compensation takes up, or no drift to learn"
                           if axis == "Dec" else "gusts, or no periodic error or drift to learn")
                    msg = (f"{axis}: the predictive model is not predicting ({why}); {live} "
                           "guides this axis until the model would do better")
                self._alert("info", "predictive", msg)

    @staticmethod
    def _to_pulse(out_px: float, rate: float, pos_dir: str, neg_dir: str,
                  max_ms: int, min_ms: int = 1) -> tuple[int, str, bool]:
        """A correction in pixels as a pulse; shorter than ``min_ms`` is not sent."""
        if out_px == 0.0 or rate <= 0:
            return 0, "", False
        ms = abs(out_px) / rate * 1000.0
        limited = ms > max_ms
        ms = min(ms, max_ms)
        if ms < max(1, min_ms):
            return 0, "", False
        return int(round(ms)), (pos_dir if out_px > 0 else neg_dir), limited

    LIMIT_IN_ROW = 5  # corrections in a row held by a limit before it alerts (as PHD2)
    LIMIT_REPEAT_S = 300.0

    def _limit_alert(self, key: str, message: str) -> None:
        last = self._limit_alert_at.get(key)
        if last is None or self.last_t - last >= self.LIMIT_REPEAT_S:
            self._limit_alert_at[key] = self.last_t
            self._alert("warning", "guide-limit", message)

    def _check_limit(self, axis: str, limited: bool, max_ms: int, key: str) -> None:
        """A pulse limit that binds LIMIT_IN_ROW corrections in a row alerts."""
        n = self._limit_run[axis] = self._limit_run[axis] + 1 if limited else 0
        if n >= self.LIMIT_IN_ROW:
            self._limit_alert(key, f"{axis} corrections hit the {max_ms} ms limit ({key}) "
                              f"{n} times in a row: the mount needs longer pulses than allowed, "
                              "so the star lags behind (steep periodic error, a gust, or a guide "
                              f"rate set low). Raise {key} in [guiding], or the mount's guide rate")

    def _check_tolerance(self, held: list[bool], errors: tuple[float, float]) -> None:
        """The tolerance holding back LIMIT_IN_ROW corrections in a row on one side,
        with the star near its edge (at least 3/4 of it off), alerts."""
        tol = self.settings.tolerance_px
        for i, axis in enumerate(("RA", "Dec")):
            e = errors[i]
            side = (e > 0) - (e < 0)
            key = f"tolerance-{axis}"
            run, last_side = self._limit_run.get(key, 0), self._tol_side.get(axis, 0)
            if held[i] and abs(e) >= 0.75 * tol and (run == 0 or side == last_side):
                run += 1
            else:
                run = 0
            self._limit_run[key], self._tol_side[axis] = run, side
            if run >= self.LIMIT_IN_ROW:
                self._limit_alert(key, f"The tolerance (tolerance_px = {tol:g}) held back {axis} "
                                  f"corrections {run} times in a row with the star {abs(e):.2f} px "
                                  "off: it rides the tolerance's edge. Lower tolerance_px in "
                                  "[guiding] (0 leaves small errors to the algorithm's minimum move)")

    WRONG_WAY_S = 30.0  # Dec off on the side dec_mode cannot correct this long: alert
    WRONG_WAY_WORSE = 2.0  # and again only once it is this many times as far off ...
    WRONG_WAY_REPEAT_S = 300.0  # ... and this long after the last time

    def _check_dec_mode(self, t: float, dec_px: float) -> bool:
        """In a one-direction Dec mode (or "off"), is Dec drifting the way the mode
        cannot correct?  Alerts with what to change, once, and again only when it has
        got materially worse (:attr:`WRONG_WAY_WORSE` times as far off as at the last
        alert, and :attr:`WRONG_WAY_REPEAT_S` after it; every 5 minutes alone, it said
        the same six times in 30 minutes).  ``dec_px``:
        this frame's Dec offset (+ wants a south pulse)."""
        s = self.settings
        mode = s.dec_mode.lower()
        if mode == "auto":
            return False
        thr = max(s.dec_min_move, 0.1)
        blocked = (mode == "off" or (mode == "north" and dec_px > thr)
                   or (mode == "south" and dec_px < -thr))
        correctable = (mode == "north" and dec_px < -thr) or (mode == "south" and dec_px > thr)
        if correctable:
            self._wrong_way_since = None
            return False
        if not blocked:
            return self._wrong_way_alert_at is not None and self._wrong_way_since is not None
        if self._wrong_way_since is None:
            self._wrong_way_since = t
        away = t - self._wrong_way_since
        if away < self.WRONG_WAY_S or abs(dec_px) < 3.0 * thr:
            return False
        if (self._wrong_way_alert_at is None
                or (abs(dec_px) >= self.WRONG_WAY_WORSE * self._wrong_way_alert_px
                    and t - self._wrong_way_alert_at >= self.WRONG_WAY_REPEAT_S)):
            again = self._wrong_way_alert_at is not None
            self._wrong_way_alert_at = t
            self._wrong_way_alert_px = abs(dec_px)
            need = "south" if dec_px > 0 else "north"
            arcsec = f" ({abs(dec_px) * self.pixel_scale:.1f}″)" if self.pixel_scale else ""
            if mode == "off":
                msg = (f"Dec guiding is off (dec_mode = \"off\") and Dec has drifted "
                       f"{abs(dec_px):.1f} px{arcsec} in {away:.0f} s: set dec_mode = \"auto\" "
                       f"(or \"{need}\") in [guiding] to guide Dec")
            else:
                msg = (f"Dec is {'still ' if again else ''}drifting the way dec_mode = \"{mode}\" "
                       f"cannot correct: the star is "
                       f"{abs(dec_px):.1f} px{arcsec} off in Dec after {away:.0f} s and needs "
                       f"{need} pulses, which this mode never sends. Switch the Dec mode to "
                       f"\"{need}\" or \"auto\" in [guiding] (or change the polar alignment or "
                       f"balance so Dec drifts the other way)")
            self._alert("warning", "dec-mode", msg)
        return True

    def _watchdog(self, t: float, dist: float) -> None:
        s = self.settings
        if dist <= s.drift_limit_px:
            self._drift_since = None
            if self._recovering_since is not None and dist <= s.drift_limit_px / 2:
                self._recovering_since = None
                self.ra_algo.reset()
                self.dec_algo.reset()
                self._alert("info", "drift", f"The guide star is back at the lock position "
                            f"({dist:.1f} px): normal guiding resumed")
            return
        if self._drift_since is None:
            self._drift_since = t
            return
        away = t - self._drift_since
        if self._recovering_since is None:
            if away >= s.drift_time_s:
                self._recovering_since = t
                self._recover_alert_at = t
                self.ra_algo.reset()
                self.dec_algo.reset()
                self._alert("critical", "drift", f"The guide star has been {dist:.1f} px from its "
                            f"lock position for {away:.0f} s: "
                            + ("correcting at full strength to bring it back" if self.corrections
                               else "guide corrections are off, nothing brings it back"))
        elif self.corrections and t - self._recovering_since >= 2 * s.drift_time_s:
            self._alert("critical", "drift", f"The guide star is still {dist:.1f} px from its lock "
                        "position after full-strength corrections: the calibration no longer fits "
                        "(camera moved? meridian flip?). Recalibrating, then guiding back to the "
                        "same lock position")
            self._recovering_since = None
            self._drift_since = None
            self.calibration = None
            self._emit(GuidingStopped(t, "recalibrating after drift"))
            self._set_state(GuideState.LOOPING, "drift recovery failed")
            self._pending = "calibrate"
            self._after_cal = "resume"

    def _settle(self, t: float, dist: float) -> None:
        s = self.settings
        if dist <= s.settle_px:
            if self._settle_since is None:
                self._settle_since = t
            if t - self._settle_since >= s.settle_time_s:
                self._emit(SettleDone(t, True, dist, t - self._dither_t))
                self._set_state(GuideState.GUIDING, "settled")
                self._drift_since = None
                return
        else:
            self._settle_since = None
        if t - self._dither_t >= s.settle_timeout_s:
            msg = (f"Did not settle within {s.settle_timeout_s:g} s (still {dist:.1f} px from the "
                   f"lock position, need {s.settle_px:g} px for {s.settle_time_s:g} s)")
            self._emit(SettleDone(t, False, dist, t - self._dither_t, msg))
            self._alert("warning", "settle", msg)
            self._set_state(GuideState.GUIDING, "settle timeout")
            self._drift_since = None
