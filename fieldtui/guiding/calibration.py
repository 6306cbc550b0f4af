"""Calibration: how a guide pulse moves the star on the guide camera.

The mount is pulsed west for a number of steps (about 25 px in about 12
steps), brought back east, the Dec backlash is taken up with north pulses,
then it is pulsed north and brought back south.  A straight-line fit of
position against accumulated pulse time along each leg gives a rate
*vector* per axis: its direction is the camera angle, its length the rate.
From the two vectors we get the camera angle, whether the camera is
mirrored (the Dec vector is on the "wrong" side of the RA vector), and the
inverse transform from a camera offset to pulse time per axis.

Sanity checks follow PHD2's: the axes should be perpendicular within
12.5°, and the RA/Dec rate ratio should be what the guide rate and cos(Dec)
predict within 20 %.
"""

from __future__ import annotations

from ..atomic import write_json
from .backlash import BacklashMeasurement, measure_backlash

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SIDEREAL_ARCSEC_PER_S = 15.041


def _wrap180(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


@dataclass
class Calibration:
    """Rates are vectors in camera pixels per second of pulse.

    ``ra`` is the star's motion for a West pulse, ``dec`` for a North pulse.
    """

    ra_vx: float
    ra_vy: float
    dec_vx: float
    dec_vy: float
    camera: str = ""
    pier_side: str = "unknown"
    dec_deg: float | None = None
    guide_rate: float | None = None
    pixel_scale: float | None = None
    binning: int = 1
    timestamp: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # Dec backlash measured by the Backlash/North/South legs (ms of guide
    # pulse; None: not measured), and whether it is only a lower bound.
    backlash_ms: float | None = None
    backlash_lower_bound: bool = False
    # Dec pulses move the telescope the other way on the sky than when this was measured
    # (an ST4 calibration carried across a meridian flip): the Dec vector's parity says so,
    # while the camera is no more mirrored than before.
    dec_reversed: bool = False

    # --- derived quantities -------------------------------------------------
    @property
    def ra_angle_deg(self) -> float:
        return math.degrees(math.atan2(self.ra_vy, self.ra_vx))

    @property
    def dec_angle_deg(self) -> float:
        return math.degrees(math.atan2(self.dec_vy, self.dec_vx))

    @property
    def ra_rate(self) -> float:
        """px per second of RA pulse."""
        return math.hypot(self.ra_vx, self.ra_vy)

    @property
    def dec_rate(self) -> float:
        return math.hypot(self.dec_vx, self.dec_vy)

    @property
    def flipped(self) -> bool:
        """Odd parity (PHD2's word): the Dec vector is on the mirrored side of the RA vector.
        That is a mirrored camera, or Dec pulses reversed on the sky (:attr:`dec_reversed`;
        :attr:`mirrored` tells the two apart).

        Angles run from +x toward +y (y down, as images are stored).  In an
        unmirrored view of the sky (north up, east left, as through a
        refractor) a West pulse moves the stars east (left, 180°) and a North
        pulse moves them south (down, 90°): the Dec motion is 90° *before*
        the RA motion.  A mirror reverses that.
        """
        return _wrap180(self.dec_angle_deg - self.ra_angle_deg) > 0

    @property
    def mirrored(self) -> bool:
        """The camera's image is mirrored (a diagonal, an odd number of reflections): the
        parity with any Dec reversal from a meridian flip taken out."""
        return self.flipped != self.dec_reversed

    @property
    def orthogonality_error_deg(self) -> float:
        return abs(abs(_wrap180(self.dec_angle_deg - self.ra_angle_deg)) - 90.0)

    # --- transforms ---------------------------------------------------------
    def _det(self) -> float:
        return self.ra_vx * self.dec_vy - self.dec_vx * self.ra_vy

    def pulse_seconds(self, dx: float, dy: float) -> tuple[float, float]:
        """Seconds of West and North pulse that would have moved the star by
        (dx, dy).  Negative means East / South."""
        det = self._det()
        if det == 0:
            return 0.0, 0.0
        w = (dx * self.dec_vy - dy * self.dec_vx) / det
        n = (self.ra_vx * dy - self.ra_vy * dx) / det
        return w, n

    def mount_from_camera(self, dx: float, dy: float) -> tuple[float, float]:
        """Camera offset → offset along the RA and Dec axes, in pixels."""
        w, n = self.pulse_seconds(dx, dy)
        return w * self.ra_rate, n * self.dec_rate

    def camera_from_mount(self, ra_px: float, dec_px: float) -> tuple[float, float]:
        w = ra_px / self.ra_rate if self.ra_rate else 0.0
        n = dec_px / self.dec_rate if self.dec_rate else 0.0
        return w * self.ra_vx + n * self.dec_vx, w * self.ra_vy + n * self.dec_vy

    #: cos δ is taken no smaller than this (Dec 89.7°) when a calibration is carried to
    #: another declination: closer to the pole a calibration fails anyway, and the pole
    #: itself would divide by zero.
    MIN_COS_DEC = 0.005

    def for_declination(self, dec_deg: float | None) -> "Calibration":
        """The same calibration with the RA rate scaled to a new declination
        (the star's RA motion per pulse goes as cos Dec), near the pole too: a
        calibration made at Dec 89° has 1/50 of the equator's RA rate, and used
        unscaled at Dec 30° it would send RA pulses 50 times too long. The
        scaling keeps the rate's relative error; the declination the mount reports
        adds its own (tan δ per radian: 2′ is 3 % at Dec 89°)."""
        if dec_deg is None or self.dec_deg is None:
            return self
        c0 = max(math.cos(math.radians(self.dec_deg)), self.MIN_COS_DEC)
        c1 = max(math.cos(math.radians(dec_deg)), self.MIN_COS_DEC)
        k = c1 / c0
        d = asdict(self)
        d.update(ra_vx=self.ra_vx * k, ra_vy=self.ra_vy * k, dec_deg=dec_deg)
        return Calibration(**d)

    def after_flip(self, pier_side: str, pier_aware: bool = False) -> "Calibration":
        """The calibration on the other side of the pier, after a meridian flip.

        A German equatorial turns the guide camera 180° on the sky. A West pulse still
        moves the telescope west, so the RA vector reverses in the image. In Dec the
        camera's turn reverses the vector too; with an ST4 cable (``pier_aware`` False)
        the Dec motor now also moves the telescope the other way on the sky, and the two
        cancel: the Dec vector is kept. A mount's own pulse-guide command knows its side
        (``pier_aware`` True: North stays north), so the Dec vector reverses with the
        camera. The rates, the mirroring and the declination stay. PHD2 does the same
        (its calibration flip and the "reverse Dec output after meridian flip" option).
        ``pier_side`` is the new side ("east" or "west").
        """
        d = asdict(self)
        k = -1.0 if pier_aware else 1.0
        d.update(ra_vx=-self.ra_vx, ra_vy=-self.ra_vy, dec_vx=k * self.dec_vx, dec_vy=k * self.dec_vy,
                 pier_side=pier_side, warnings=list(self.warnings),
                 dec_reversed=self.dec_reversed if pier_aware else not self.dec_reversed)
        return Calibration(**d)

    def for_pier_side(self, pier_side: str, pier_aware: bool = False) -> "Calibration":
        """This calibration for ``pier_side``: itself when the side is the same or either side
        is unknown, else :meth:`after_flip`."""
        known = ("east", "west")
        if pier_side in known and self.pier_side in known and pier_side != self.pier_side:
            return self.after_flip(pier_side, pier_aware)
        return self

    def matches(self, camera: str, pier_side: str) -> bool:
        """Still valid for this camera and pier side?"""
        if camera and self.camera and camera != self.camera:
            return False
        known = ("east", "west")
        if pier_side in known and self.pier_side in known and pier_side != self.pier_side:
            return False
        return True

    def summary(self) -> str:
        return (f"camera angle {self.ra_angle_deg:.1f}°, RA {self.ra_rate:.2f} px/s, "
                f"Dec {self.dec_rate:.2f} px/s{', mirrored' if self.mirrored else ''}"
                f"{', Dec reversed by the meridian flip' if self.dec_reversed else ''}")

    # --- storage --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ra_angle_deg=self.ra_angle_deg, dec_angle_deg=self.dec_angle_deg,
                 ra_rate_px_s=self.ra_rate, dec_rate_px_s=self.dec_rate, flipped=self.flipped,
                 mirrored=self.mirrored)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        keys = {f for f in cls.__dataclass_fields__}  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in d.items() if k in keys})


def save_calibration(path: str | Path, cal: Calibration) -> None:
    """Write atomically (temporary file, fsync, rename)."""
    write_json(path, cal.to_dict())


def load_calibration(path: str | Path) -> Calibration | None:
    try:
        with open(path) as f:
            return Calibration.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def expected_rate_px_s(guide_rate: float, pixel_scale: float, dec_deg: float | None = None) -> float:
    """Star speed on the camera for a pulse at the guide rate (px/s);
    with ``dec_deg`` the RA speed (× cos Dec), without it the Dec speed."""
    r = guide_rate * SIDEREAL_ARCSEC_PER_S / pixel_scale
    if dec_deg is not None:
        r *= math.cos(math.radians(dec_deg))
    return r


def sanity_warnings(cal: Calibration, max_ortho_deg: float = 12.5,
                    max_ratio_error: float = 0.20, ra_drift_px: float = 0.0) -> list[str]:
    """PHD2's calibration checks as warnings.  ``ra_drift_px``: how far the
    mount's own motion moved the star over the West and East legs (px; their
    pulses cancel, so anything left is periodic error or drift), which names
    the cause of a bent calibration when it is large."""
    out: list[str] = []
    if cal.orthogonality_error_deg > max_ortho_deg:
        if ra_drift_px >= 1.0:
            why = (f"the mount's own RA motion moved the star {ra_drift_px:.1f} px while the RA legs "
                   "ran (periodic error of the worm, steep on small mounts, or drift) and bent the "
                   "legs; recalibrate with a shorter calibration (a smaller calibration_px) so the "
                   "legs are quick against the worm's swings")
        else:
            why = ("the star was probably disturbed during calibration (wind, cable drag, Dec "
                   "backlash); recalibrate")
        out.append(f"RA and Dec axes are {cal.orthogonality_error_deg:.1f}° from perpendicular "
                   f"(limit {max_ortho_deg:g}°): {why}")
    if cal.dec_deg is not None and cal.dec_rate > 0:
        expected = math.cos(math.radians(cal.dec_deg))
        actual = cal.ra_rate / cal.dec_rate
        if expected > 0.05 and abs(actual / expected - 1.0) > max_ratio_error:
            if ra_drift_px >= 1.0:
                why = (f"the mount's own RA motion moved the star {ra_drift_px:.1f} px while the RA "
                       "legs ran (periodic error, steep on small mounts) and skews the RA rate; "
                       "recalibrate with a smaller calibration_px so the legs are quick")
            else:
                why = "check the declination, the guide rates of both axes, or recalibrate"
            out.append(f"RA/Dec rate ratio is {actual:.2f}, expected {expected:.2f} from cos(Dec) "
                       f"at Dec {cal.dec_deg:.0f}°: {why}")
    if cal.guide_rate and cal.pixel_scale and cal.dec_rate > 0:
        exp_dec = expected_rate_px_s(cal.guide_rate, cal.pixel_scale)
        if abs(cal.dec_rate / exp_dec - 1.0) > 0.5:
            out.append(f"Dec rate {cal.dec_rate:.2f} px/s differs from the {exp_dec:.2f} px/s the "
                       f"guide rate ({cal.guide_rate:g}×) and pixel scale ({cal.pixel_scale:.2f}″/px) "
                       "predict: check those settings")
    return out


# PHD2 (scope.cpp, end of the south leg) wants the south moves to bring the
# star back at least a quarter of the way the north moves took it, along the
# north vector within 30 degrees; under a tenth it speaks of "little or no
# south movement".
SOUTH_MIN_FRACTION = 0.25
SOUTH_NONE_FRACTION = 0.10
SOUTH_MAX_ANGLE_DEG = 30.0


def south_leg_warnings(north: tuple[float, float], south: tuple[float, float],
                       pixel_scale: float | None = None,
                       measured: BacklashMeasurement | None = None) -> list[str]:
    """Dec backlash from the calibration's north and south legs.

    ``north`` is the star's (dx, dy) in px over the north leg, ``south`` over
    the south leg, which sent as many pulses of the same length the other
    way.  With no backlash the south leg comes back as far as the north
    leg went; Dec backlash eats the start of it.  Returns the warnings (an
    empty list when the south leg came back at least ``SOUTH_MIN_FRACTION``
    of the way, along the north vector reversed within
    ``SOUTH_MAX_ANGLE_DEG``); ``pixel_scale`` (″/px) adds arc-seconds.
    ``measured``: the backlash :func:`~fieldtui.guiding.backlash.measure_backlash`
    fitted on the same legs (noise and drift taken into account); when given,
    the warning states that one figure for the play instead of the plain
    north-minus-south difference (the two differed: 113″ against 116″ on the
    ``dec_backlash`` bug case).
    Source: PHD2's south-leg check (scope.cpp, Scope::UpdateCalibrationState).
    """
    n = math.hypot(*north)
    s = math.hypot(*south)
    if n <= 0:
        return []
    frac = s / n

    def px(v: float) -> str:
        return f"{v:.1f} px" + (f" ({v * pixel_scale:.0f}″)" if pixel_scale else "")

    if frac < SOUTH_MIN_FRACTION:
        what = ("little or no south movement" if frac < SOUTH_NONE_FRACTION
                else "little south movement")
        if measured is None:
            play = f"at least {px(n - s)}"
        else:
            play = measured.describe()
        # a return the measurement put down to noise and drift is said to be that
        noise = ", within the noise and drift" if measured is not None and measured.lower_bound else ""
        return [
            f"Dec backlash is very large: {what} (the south leg moved the star {s:.1f} px{noise}, "
            f"{100 * frac:.0f} % of the {n:.1f} px of the north leg; PHD2 warns below "
            f"{100 * SOUTH_MIN_FRACTION:.0f} %), so {play} of play is taken up "
            "whenever Dec reverses and Dec guiding will be poor. To take it out of guiding: "
            "balance the scope a little east-heavy on the Dec axis (or leave the polar alignment "
            "a little off) so Dec always drifts one way, and guide Dec in that direction only "
            "(dec_mode = \"north\" or \"south\" in [guiding]); have the Dec gear mesh adjusted; "
            "if the star never moved south, check the guide cable's south line"]
    back = math.degrees(math.atan2(-south[1], -south[0]) - math.atan2(north[1], north[0]))
    off = abs((back + 180.0) % 360.0 - 180.0)
    if off > SOUTH_MAX_ANGLE_DEG:
        return [
            f"The south leg did not retrace the north leg ({off:.0f}° off, limit "
            f"{SOUTH_MAX_ANGLE_DEG:.0f}°): Dec backlash, a disturbed star (wind, cable drag) or "
            "a mount problem; recalibrate, and if it persists check the Dec axis"]
    return []


# ---------------------------------------------------------------------------
# The state machine
# ---------------------------------------------------------------------------

@dataclass
class CalibrationSettings:
    target_px: float = 25.0  # how far each measuring leg moves the star
    steps: int = 12  # about how many steps a leg should take
    step_ms: int | None = None  # None: from guide rate, pixel scale and Dec, else adaptive
    max_steps: int = 60
    backlash_px: float = 3.0  # north motion that proves the Dec backlash is taken up
    backlash_max_steps: int = 40
    max_ortho_deg: float = 12.5
    max_ratio_error: float = 0.20


class CalibrationError(Exception):
    pass


def _fit_rate(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Least-squares rate vector (px/s) of positions against pulse seconds."""
    n = len(points)
    s_mean = sum(p[0] for p in points) / n
    x_mean = sum(p[1] for p in points) / n
    y_mean = sum(p[2] for p in points) / n
    sxx = sum((p[0] - s_mean) ** 2 for p in points)
    if sxx <= 0:
        return 0.0, 0.0
    vx = sum((p[0] - s_mean) * (p[1] - x_mean) for p in points) / sxx
    vy = sum((p[0] - s_mean) * (p[2] - y_mean) for p in points) / sxx
    return vx, vy


@dataclass
class StepRequest:
    direction: str  # "N", "S", "E", "W"
    ms: int
    leg: str  # "West", "East", "Backlash", "North", "South"
    step: int


class Calibrator:
    """Feed it the star position after every frame; it answers with the next
    pulse, until ``done`` (``result`` set) or ``failed`` (``error`` set).

    ``records`` collects (leg, step, dx, dy, x, y, dist) for the guide log.
    """

    LEGS = ("West", "East", "Backlash", "North", "South")

    def __init__(self, settings: CalibrationSettings | None = None, *, guide_rate: float | None = None,
                 pixel_scale: float | None = None, dec_deg: float | None = None, camera: str = "",
                 pier_side: str = "unknown", t0: float = 0.0) -> None:
        self.s = settings or CalibrationSettings()
        self.guide_rate = guide_rate
        self.pixel_scale = pixel_scale
        self.dec_deg = dec_deg
        self.camera = camera
        self.pier_side = pier_side
        self.t0 = t0
        self.leg = "West"
        self.step = 0
        self.done = False
        self.failed = False
        self.error = ""
        self.result: Calibration | None = None
        self.records: list[tuple[str, int, float, float, float, float, float]] = []
        self._leg_start: tuple[float, float] | None = None
        self._points: list[tuple[float, float, float]] = []  # (pulse s, x, y)
        self._pulse_s = 0.0
        self._ra_vec: tuple[float, float] | None = None
        self._west_steps = 0
        self._north_steps = 0
        self._north_move: tuple[float, float] = (0.0, 0.0)  # (dx, dy) of the north leg
        self._adapted = False
        self._leg_ms: dict[str, list[int]] = {}  # pulse lengths sent on each leg
        self._notes: list[str] = []  # go into the result's warnings
        self.backlash: BacklashMeasurement | None = None
        self.ra_step_ms, self.dec_step_ms = self._initial_steps()
        # The mount's own motion (periodic error, drift) during the legs: frame
        # times per record, the legs' samples (t, signed pulse s, x, y), and
        # whether the North leg takes a pulse-free frame after each pulse.
        self._times: list[float | None] = []
        self._ra_samples: list[tuple[float, float, float, float]] = []
        self._dec_samples: list[tuple[float, float, float, float]] = []
        self._interleave = False
        self._t: float | None = None
        self._hold = False  # the next North frame follows a pulse-free wait
        self.own_motion_px = 0.0  # the mount's own motion over the RA legs (px)

    # Near the pole the star moves only cos(Dec) as far per RA pulse: RA steps
    # may grow to this long, and an RA leg that ends its steps short of
    # target_px but past MIN_RA_PX (and as far as cos(Dec) lets it) is accepted.
    MAX_RA_STEP_MS = 10000
    MAX_STEP_MS = 5000
    MIN_RA_PX = 8.0
    NEAR_POLE_COS = 0.2  # cos(Dec) under this (Dec above ~78°) counts as near the pole

    @property
    def cos_dec(self) -> float | None:
        return abs(math.cos(math.radians(self.dec_deg))) if self.dec_deg is not None else None

    def _initial_steps(self) -> tuple[int, int]:
        if self.s.step_ms:
            return int(self.s.step_ms), int(self.s.step_ms)
        per_step = self.s.target_px / self.s.steps
        if self.guide_rate and self.pixel_scale:
            dec_rate = expected_rate_px_s(self.guide_rate, self.pixel_scale)
            cosd = self.cos_dec if self.cos_dec is not None else 1.0
            ra_rate = dec_rate * max(cosd, 1e-3)
            ra = int(min(max(1000 * per_step / ra_rate, 50), self.MAX_RA_STEP_MS))
            dec = int(min(max(1000 * per_step / dec_rate, 50), self.MAX_STEP_MS))
            return ra, dec
        return 1000, 1000

    def _expected_ra_px(self) -> float | None:
        """How far the west leg's pulses should have moved the star (px), from the
        guide rate, pixel scale and cos(Dec); None when those are unknown."""
        if not (self.guide_rate and self.pixel_scale and self.cos_dec is not None):
            return None
        return expected_rate_px_s(self.guide_rate, self.pixel_scale, self.dec_deg) * self._pulse_s

    def _near_pole_note(self, dist: float) -> str:
        cosd = self.cos_dec or 0.0
        return (f"near the pole RA moves only cos δ as far: at Dec {self.dec_deg:.1f}° a west pulse "
                f"moves the star {100 * cosd:.1f} % as far as on the equator, so {self.step} steps "
                f"of {self.ra_step_ms / 1000:.1f} s moved it {dist:.1f} px")

    @property
    def pulse_ms(self) -> int:
        return self.ra_step_ms if self.leg in ("West", "East") else self.dec_step_ms

    def _fail(self, msg: str) -> None:
        self.failed = True
        self.error = msg

    def _record(self, x: float, y: float) -> None:
        assert self._leg_start is not None
        dx, dy = x - self._leg_start[0], y - self._leg_start[1]
        self.records.append((self.leg, self.step, dx, dy, x, y, math.hypot(dx, dy)))
        self._times.append(self._t)

    def _adapt(self, dist: float) -> None:
        """After three steps without prior knowledge, size the steps so the leg
        takes about ``steps`` steps."""
        if self._adapted or self.s.step_ms or (self.guide_rate and self.pixel_scale):
            return
        self._adapted = True
        if dist < 0.3:
            factor = 4.0
        else:
            factor = min(max((self.s.target_px / self.s.steps) / (dist / self.step), 0.25), 4.0)
        if self.leg == "West":
            self.ra_step_ms = int(min(max(self.ra_step_ms * factor, 50), 5000))
        else:
            self.dec_step_ms = int(min(max(self.dec_step_ms * factor, 50), 5000))

    def update(self, x: float, y: float, t: float | None = None) -> StepRequest | None:
        """Star at (x, y) after the last pulse (``t``: the frame's time, s; given,
        the mount's own motion is taken out of the rates, see :meth:`_own_motion_fit`):
        the next pulse, or ``None`` when finished (see ``done`` / ``failed``).
        A request of 0 ms is a pulse-free frame."""
        if self.done or self.failed:
            return None
        self._t = t
        if t is not None and self.leg in ("West", "East"):
            ra_s = self._signed_pulse_s("West") - self._signed_pulse_s("East")
            self._ra_samples.append((t, ra_s, x, y))
        if t is not None and self.leg == "North":
            self._dec_samples.append((t, self._pulse_s if self.step > 0 else 0.0, x, y))
        if self.leg == "North" and self._hold:
            # A pulse-free frame: only the mount's own motion moved the star.
            self._hold = False
            return StepRequest("N", 0, "North", self.step)
        if self._leg_start is None:
            self._leg_start = (x, y)
            self._points = [(0.0, x, y)]
            self._pulse_s = 0.0
        self._record(x, y)
        dist = self.records[-1][-1]
        leg = self.leg
        if leg in ("West", "North"):
            if self.step > 0:
                self._points.append((self._pulse_s, x, y))
            if self.step == 3:
                self._adapt(dist)
            if dist >= self.s.target_px and self.step >= 2:
                vec = _fit_rate(self._points)
                if leg == "West":
                    self._ra_vec = vec
                    self._west_steps = self.step
                    self._next_leg("East", x, y)
                else:
                    self._north_steps = self.step
                    self._north_move = (self.records[-1][2], self.records[-1][3])
                    if self._interleave:
                        fit = self._own_motion_fit(self._dec_samples)
                        if fit is not None:
                            vec = fit
                    self._finish(vec)
                    self._next_leg("South", x, y)
            elif self.step >= self.s.max_steps:
                near_pole = (leg == "West" and self.cos_dec is not None
                             and self.cos_dec < self.NEAR_POLE_COS)
                expected = self._expected_ra_px() if near_pole else None
                if near_pole and expected is not None and dist >= 0.5 * expected:
                    # The star moved as far as cos(Dec) allows: not a cable fault.
                    if dist >= self.MIN_RA_PX and self.step >= 2:
                        self._ra_vec = _fit_rate(self._points)
                        self._west_steps = self.step
                        self._notes.append(
                            f"RA calibration used a short leg: {self._near_pole_note(dist)} "
                            f"instead of {self.s.target_px:g} px. Accepted; it is less accurate "
                            "than one made further from the pole (calibrate on a star below Dec "
                            "60° and the guider adjusts the calibration for declination)")
                        self._next_leg("East", x, y)
                    else:
                        self._fail(f"RA calibration failed: {self._near_pole_note(dist)}, less than "
                                   f"the {self.MIN_RA_PX:g} px needed to measure RA. Calibrate on a "
                                   "star below Dec 60° (the guider adjusts the calibration for "
                                   "declination), then come back to this target")
                        return None
                else:
                    axis = "RA" if leg == "West" else "Dec"
                    self._fail(f"{axis} calibration failed: the star moved only {dist:.1f} px in "
                               f"{self.step} {leg.lower()} steps; check the guide cable, the guide "
                               "rate, and that the mount is tracking")
                    return None
        elif leg == "East":
            if self.step >= self._west_steps:
                self._after_ra_legs()
                self._next_leg("Backlash", x, y)
        elif leg == "Backlash":
            if dist >= self.s.backlash_px:
                self._next_leg("North", x, y)
            elif self.step >= self.s.backlash_max_steps:
                self._fail(f"Dec backlash not cleared: the star moved only {dist:.1f} px after "
                           f"{self.step} north pulses; the Dec axis does not respond (clutch, cable, "
                           "or very large backlash)")
                return None
        elif leg == "South":
            if self.step >= self._north_steps:
                if self.result is not None:
                    south = (self.records[-1][2], self.records[-1][3])
                    north = self._north_move
                    if self._interleave and self._ra_vec is not None:
                        north, south = self._across_ra([north, south])
                    m = self._measure_backlash()
                    warned = south_leg_warnings(north, south, self.pixel_scale, measured=m)
                    if not warned and m is not None and m.large:
                        warned.append(m.warning() or "")
                    self.result.warnings += warned
                self.done = True
                return None
        if self.failed or self.done:
            return None
        self.step += 1
        direction = {"West": "W", "East": "E", "Backlash": "N", "North": "N", "South": "S"}[self.leg]
        ms = self.pulse_ms
        if self.leg in ("West", "North"):
            self._pulse_s += ms / 1000.0
        if self.leg == "North" and self._interleave:
            self._hold = True
        self._leg_ms.setdefault(self.leg, []).append(ms)
        return StepRequest(direction, ms, self.leg, self.step)

    def _signed_pulse_s(self, leg: str) -> float:
        """Seconds of pulse sent so far on ``leg``."""
        return sum(self._leg_ms.get(leg, [])) / 1000.0

    # The mount's own motion over the RA legs above this (px) is taken out of
    # the rates, and the North leg gets a pulse-free frame after each pulse.
    # Not below: the fit with the motion is noisier than the plain one when
    # there is little to take out (default rig, seed 1: 1.5 px over the legs,
    # 1.2° -> 5.6° from perpendicular and the Dec rate 12 % high with it).
    OWN_MOTION_PX = 3.0

    @staticmethod
    def _own_motion_fit(samples: list[tuple[float, float, float, float]],
                        order: int = 5) -> tuple[float, float] | None:
        """Rate vector (px/s of pulse) from samples (t s, pulse s, x, y) with the
        mount's own motion, a polynomial of ``order`` in time, fitted alongside.

        Separable only when pulse seconds and time do not grow together: the
        West and East legs (pulses out and back) or a leg with pulse-free frames.
        Steep periodic error moves the star along RA while the legs run (±45″ over
        240 s with 4-s exposures: 18 px over the RA legs), which bent the plain fit
        of the North leg by 37° and shrank the RA rate to 0.58 of cos δ."""
        import numpy as np
        if len(samples) < order + 4:
            return None
        a = np.asarray(samples, dtype=float)
        t = a[:, 0] - a[:, 0].mean()
        span = max(float(np.ptp(t)) / 2.0, 1e-9)
        cols = [np.ones_like(t), a[:, 1]] + [(t / span) ** k for k in range(1, order + 1)]
        m = np.column_stack(cols)
        if np.linalg.matrix_rank(m) < m.shape[1]:
            return None
        coef, *_ = np.linalg.lstsq(m, a[:, 2:4], rcond=None)
        return float(coef[1, 0]), float(coef[1, 1])

    def leg_positions(self, leg: str) -> list[tuple[float, float]]:
        """Star positions (px) on a leg: where it started, then after each pulse."""
        return [(r[4], r[5]) for r in self.records if r[0] == leg]

    def leg_times(self, leg: str) -> list[float] | None:
        """The frame times (s) of :meth:`leg_positions`, None when not all were given."""
        ts = [t for r, t in zip(self.records, self._times) if r[0] == leg]
        return None if any(t is None for t in ts) else ts  # type: ignore[return-value]

    def _measure_backlash(self) -> BacklashMeasurement | None:
        """The Dec backlash from the North and South legs (the Backlash leg cleared it
        northward first), into the result; returns it (None when the legs do not allow
        it) for the warning with what to do."""
        assert self.result is not None
        north, south = self.leg_positions("North"), self.leg_positions("South")
        if self._interleave and self._ra_vec is not None:
            # The mount's own motion is along RA: only the part of each position across
            # RA is Dec motion (steep periodic error otherwise reads as 45″ of backlash).
            north, south = self._across_ra(north), self._across_ra(south)
        n_ms, s_ms = self._leg_ms.get("North", []), self._leg_ms.get("South", [])
        if len(north) != len(n_ms) + 1 or len(south) != len(s_ms) + 1 or not n_ms or not s_ms:
            return None
        n_t, s_t = self.leg_times("North"), self.leg_times("South")
        m = measure_backlash(north, n_ms, south, s_ms, self.pixel_scale,
                             north_t=np.asarray(n_t) if n_t else None,
                             south_t=np.asarray(s_t) if s_t else None, drift=self._drift())
        if m is None:
            return None
        self.backlash = m
        self.result.backlash_ms = m.backlash_ms
        self.result.backlash_lower_bound = m.lower_bound
        return m

    def _across_ra(self, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Positions with their component along the RA rate vector removed."""
        assert self._ra_vec is not None
        n = math.hypot(*self._ra_vec) or 1.0
        ux, uy = self._ra_vec[0] / n, self._ra_vec[1] / n
        return [(x - (x * ux + y * uy) * ux, y - (x * ux + y * uy) * uy) for x, y in pts]

    def _after_ra_legs(self) -> None:
        """West and East done: how far the mount's own motion moved the star (their
        pulses cancel); past ``OWN_MOTION_PX``, the RA rate is refitted with that
        motion taken out, and the North leg will measure it with pulse-free frames."""
        west, east = self.leg_positions("West"), self.leg_positions("East")
        if west and east:
            self.own_motion_px = math.hypot(east[-1][0] - west[0][0], east[-1][1] - west[0][1])
        if self.own_motion_px < self.OWN_MOTION_PX or len(self._ra_samples) < 8:
            return
        fit = self._own_motion_fit(self._ra_samples)
        if fit is not None:
            self._ra_vec = fit
            self._interleave = True
            self._notes.append(
                f"the mount's own RA motion (periodic error or drift) moved the star "
                f"{self.own_motion_px:.1f} px while the RA legs ran: it was measured (the legs out "
                "and back, pulse-free frames on the north leg) and taken out of the rates")

    def _drift(self) -> tuple[float, float, float] | None:
        """The star's drift across the RA legs, whose pulses cancel: (vx, vy) px/s and
        its standard error (px/s), from positions = start + RA rate x net RA pulse time +
        drift x time (least squares per coordinate); None without frame times.  The
        drift along RA (periodic error, RA drift) is left out: the calibration's Dec
        legs run across it."""
        rows = [(r, t) for r, t in zip(self.records, self._times) if r[0] in ("West", "East")]
        if len(rows) < 6 or any(t is None for _, t in rows) or self._ra_vec is None:
            return None
        ra_ms = self._leg_ms.get("West", []) + [-m for m in self._leg_ms.get("East", [])]
        # Net RA pulse time before each position: West positions after k pulses, then East.
        net, xs, ys, ts = [], [], [], []
        west = [(r, t) for r, t in rows if r[0] == "West"]
        east = [(r, t) for r, t in rows if r[0] == "East"]
        cum = 0.0
        for i, (r, t) in enumerate(west):
            cum = sum(ra_ms[:i]) / 1000.0
            net.append(cum), xs.append(r[4]), ys.append(r[5]), ts.append(t)
        n_w = len(self._leg_ms.get("West", []))
        for j, (r, t) in enumerate(east):
            net.append(sum(ra_ms[:n_w + j]) / 1000.0)
            xs.append(r[4]), ys.append(r[5]), ts.append(t)
        tt = np.asarray(ts, dtype=float)
        tt = tt - tt.mean()
        a = np.column_stack([np.ones(len(tt)), np.asarray(net), tt])
        if np.linalg.matrix_rank(a) < 3:
            return None
        coef, *_ = np.linalg.lstsq(a, np.column_stack([xs, ys]), rcond=None)
        vx, vy = float(coef[2, 0]), float(coef[2, 1])
        # Only the part across the RA motion.
        ux, uy = self._ra_vec
        norm = math.hypot(ux, uy)
        if norm <= 0:
            return None
        px, py = -uy / norm, ux / norm
        v_perp = vx * px + vy * py
        resid = np.column_stack([xs, ys]) - a @ coef
        noise = float(np.sqrt(np.sum((resid @ np.array([px, py])) ** 2) / max(len(tt) - 3, 1)))
        cov = np.linalg.inv(a.T @ a)
        return v_perp * px, v_perp * py, noise * math.sqrt(float(cov[2, 2]))

    def _next_leg(self, leg: str, x: float, y: float) -> None:
        if leg == "North" and self._t is not None:
            self._dec_samples.append((self._t, 0.0, x, y))
        self.leg = leg
        self.step = 0
        self._leg_start = (x, y)
        self._points = [(0.0, x, y)]
        self._pulse_s = 0.0
        self._record(x, y)

    def _finish(self, dec_vec: tuple[float, float]) -> None:
        assert self._ra_vec is not None
        cal = Calibration(self._ra_vec[0], self._ra_vec[1], dec_vec[0], dec_vec[1],
                          camera=self.camera, pier_side=self.pier_side, dec_deg=self.dec_deg,
                          guide_rate=self.guide_rate, pixel_scale=self.pixel_scale,
                          timestamp=self.t0)
        if cal.ra_rate <= 0 or cal.dec_rate <= 0:
            self._fail("calibration failed: no measurable motion")
            return
        west, east = self.leg_positions("West"), self.leg_positions("East")
        drift = math.hypot(east[-1][0] - west[0][0], east[-1][1] - west[0][1]) if west and east else 0.0
        cal.warnings = list(self._notes) + sanity_warnings(cal, self.s.max_ortho_deg,
                                                           self.s.max_ratio_error, drift)
        if self._west_steps < 4 or self._north_steps < 4:
            cal.warnings.append(f"calibration used only {min(self._west_steps, self._north_steps)} "
                                "steps on an axis: the steps are too long for an accurate result")
        self.result = cal
