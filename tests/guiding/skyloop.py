"""The guide engine against the simulator's sky, without devices or asyncio.

The cheapest faithful closed loop: the real :class:`~fieldtui.devices.sky.Sky`
(periodic error, drift, backlash, gusts, seeing jitter, noise) renders small
guide frames clipped at the guide camera's white level (the engine knows it,
as the guide worker tells it), the real :class:`~fieldtui.guiding.engine.GuideEngine` decides,
and its pulses go back into the sky at the time they are sent.  The loop is
the guide worker's: expose, measure, pulse (waiting for the longest pulse),
expose again.  Thirty simulated minutes take a few seconds of CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from fieldtui.config import load_config
from fieldtui.devices.sky import Sky
from fieldtui.guiding.engine import GuideEngine
from fieldtui.guiding.events import Alert, CalibrationDone, GuideState, GuideStep
from fieldtui.guiding.settings import GuideSettings


def small_config(width: int = 320, height: int = 240, *, sim: dict | None = None,
                 guiding: dict | None = None, plan: dict | None = None,
                 guide_scope: dict | None = None) -> Any:
    """The shipped config with a small guide sensor and the given table overrides."""
    ov: dict[str, Any] = {"guide_camera": {"width": width, "height": height}}
    for k, v in (("sim", sim), ("guiding", guiding), ("plan", plan), ("guide_scope", guide_scope)):
        if v:
            ov[k] = v
    return load_config(user=False, overrides=ov)


@dataclass
class LoopResult:
    rms_total: float        # measured guiding RMS (arcsec), as the guide statistics report it
    rms_ra: float
    rms_dec: float
    floor: float            # the seeing floor (arcsec)
    frames: int
    alerts: list[Alert]
    calibration: Any
    engine: GuideEngine
    sky: Sky
    true_rms: float         # RMS of the true pointing error about its mean (arcsec), no seeing

    @property
    def ratio(self) -> float:
        return self.rms_total / self.floor


class SkyLoop:
    """Drive ``engine`` on ``sky`` from time ``t0`` (seconds on the sky's clock)."""

    def __init__(self, cfg: Any, settings: GuideSettings | None = None, t0: float = 1000.0,
                 overhead_s: float = 0.05) -> None:
        self.cfg = cfg
        self.sky = Sky(cfg, t0)
        self.t = t0
        self.overhead = overhead_s
        self.settings = settings or GuideSettings.from_config(cfg)
        # The guide camera's white level, as the guide worker gives it: a star that
        # saturates the 12-bit camera is no guide star (at 2-4 s the bright one does).
        self.engine = GuideEngine(self.settings, pixel_scale=cfg.guide_scale,
                                  guide_rate=cfg.mount.guide_rate, dec_deg=cfg.plan.dec_deg,
                                  camera="sim", pier_side="east", seed=cfg.sim.seed,
                                  saturation=float(2 ** cfg.guide_camera.bit_depth - 1))
        self.events: list[Any] = []
        self.truth: list[tuple[float, float]] = []  # true pointing error at guided frames, arcsec
        self.measure_err: list[tuple[float, float]] = []  # measured offset - true shift, px
        self.corrections = True

    def gain(self) -> float:
        g = self.settings.gain if self.settings.gain is not None else self.cfg.guide_camera.gain
        return 3.0 * 10 ** (-g / 200.0)

    def frame(self, exposure: float | None = None):
        e = self.settings.exposure_s if exposure is None else exposure
        data, truth = self.sky.render(self.sky.guide, self.t, e, gain_e_adu=self.gain())
        self.t += e + self.overhead
        return data, truth

    def step(self) -> None:
        t_start = self.t
        exp = self.engine.next_exposure_s  # the worker's choice: shorter while settling, when set
        data, truth = self.frame(exp)
        d = self.engine.on_frame(data, self.t, exposure_s=exp)
        if self.engine.state == GuideState.GUIDING:
            ex, ey = self.sky.mount_error(t_start + exp / 2.0)
            self.truth.append((float(ex), float(ey)))
            st = next((e for e in d.events if isinstance(e, GuideStep)), None)
            if st is not None:
                # Measured offset minus the field's true shift (camera px).
                sx, sy = truth["star_shift_px"]
                self.measure_err.append((st.dx - sx, st.dy - sy))
        self.events.extend(d.events)
        longest = 0.0
        calibrating = self.engine.state == GuideState.CALIBRATING or any(
            p for p in d.pulses) and self.engine.calibrator is not None
        for p in d.pulses:
            if self.corrections or calibrating:
                self.sky.apply_pulse(p.direction, p.ms, self.t)
                longest = max(longest, p.ms / 1000.0)
        self.t += longest + self.settings.cycle_time_s

    def until(self, cond, limit_s: float) -> None:
        end = self.t + limit_s
        while not cond() and self.t < end:
            self.step()

    def start(self, limit_s: float = 1200.0) -> None:
        self.engine.start_guiding()
        self.until(lambda: self.engine.state == GuideState.GUIDING, limit_s)
        if self.engine.state != GuideState.GUIDING:
            msgs = [e.message for e in self.events if isinstance(e, Alert)]
            raise AssertionError(f"guiding did not start: {msgs}")

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end:
            self.step()

    def result(self) -> LoopResult:
        st = self.engine.stats.total()
        return LoopResult(st.rms_total_arcsec, st.rms_ra_arcsec, st.rms_dec_arcsec,
                          self.sky.seeing_floor(self.settings.exposure_s), st.frames,
                          [e for e in self.events if isinstance(e, Alert)],
                          self.engine.calibration, self.engine, self.sky, _true_rms(self.truth))


def _true_rms(truth: list[tuple[float, float]]) -> float:
    if not truth:
        return math.nan
    n = len(truth)
    mx = sum(x for x, _ in truth) / n
    my = sum(y for _, y in truth) / n
    return math.sqrt(sum((x - mx) ** 2 + (y - my) ** 2 for x, y in truth) / n)


def guided(cfg: Any, minutes: float, **settings: Any) -> LoopResult:
    """Calibrate, guide ``minutes`` and return the statistics."""
    # A small frame holds few stars: the bright one the simulator puts near
    # the middle is enough to guide on.
    settings.setdefault("min_stars", 1)
    s = replace(GuideSettings.from_config(cfg), **settings)
    loop = SkyLoop(cfg, s)
    loop.start()
    loop.run(minutes * 60.0)
    return loop.result()


def steps(events: list[Any]) -> list[GuideStep]:
    return [e for e in events if isinstance(e, GuideStep)]


def calibration_done(events: list[Any]) -> CalibrationDone | None:
    return next((e for e in events if isinstance(e, CalibrationDone)), None)


def arcsec_rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0
