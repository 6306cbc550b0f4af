"""Guiding settings: the ``[guiding]`` table of the config, with defaults.

The config validates the table against this dataclass's fields and types,
so a key is named the same in config.toml, here and in the engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal


@dataclass
class GuideSettings:
    # Exposure loop.  cycle_time_s (ASICap's "guider cycle time") is an
    # extra wait between guide frames; 0 means back to back.
    exposure_s: float = 1.0
    # While settling after a dither: this exposure instead (0: exposure_s).
    # Shorter frames correct the dither's step more often and prove the star
    # settled sooner (a PHD2 user request).
    settle_exposure_s: float = 0.0
    gain: int | None = None
    cycle_time_s: float = 0.0
    # ASICap's "correction time": corrections at most this often, from the
    # mean offset since the last one; 0 corrects after every frame.
    correction_time_s: float = 0.0
    # ASICap's "tolerance" (px): no correction below it on either axis;
    # 0 leaves it to each algorithm's minimum move.
    tolerance_px: float = 0.0

    # Star selection and tracking
    box_px: int = 25  # side of the guide box
    min_snr: float = 6.0  # auto-selection floor
    min_stars: int = 4  # refuse to guide on fewer visible stars
    min_hfd_px: float = 1.5  # narrower "stars" are hot pixels (PHD2's minimum star HFD)
    multi_star: int = 4  # extra stars averaged with the guide star (0 = off)
    lost_snr: float = 3.0  # below this the star counts as lost
    mass_change: float = 3.0  # star lost when its flux changes by this factor (0 = off)
    lost_alert_s: float = 30.0  # loud alert when lost for this long
    new_star_after_s: float = 120.0  # then try another star (the lock resets)

    # Algorithms (PHD2 defaults)
    # The classic pair here; the shipped config selects "predictive" for both.
    ra_algorithm: Literal["hysteresis", "predictive"] = "hysteresis"
    ra_hysteresis: float = 0.1
    ra_aggression: float = 0.7
    ra_min_move: float = 0.2
    # Predictive RA: the feedback gain on the displacement (no minimum
    # move: the low gain averages seeing out), the share of the learned
    # gear error's predicted change sent ahead of time, the window of the
    # local trend, and the worm period (0: found from the guiding data).
    ra_predictive_aggression: float = 0.2
    ra_prediction_gain: float = 1.0
    ra_trend_s: float = 20.0
    ra_period_s: float = 0.0
    dec_algorithm: Literal["resist_switch", "predictive"] = "resist_switch"
    dec_aggression: float = 1.0
    dec_min_move: float = 0.2
    # Predictive Dec: feedback gain toward the drift, the window the drift
    # rate is measured over and the share of it fed forward.
    dec_predictive_aggression: float = 0.2
    dec_drift_s: float = 120.0
    dec_drift_gain: float = 0.3
    dec_mode: Literal["auto", "north", "south", "off"] = "auto"
    # Add the Dec backlash the calibration measured to Dec pulses that reverse
    # direction (adapted from what the star does next).
    dec_backlash_comp: bool = True
    max_ra_pulse_ms: int = 2500
    max_dec_pulse_ms: int = 2500
    min_pulse_ms: int = 10

    # Calibration
    calibration_px: float = 25.0
    calibration_steps: int = 12
    calibration_step_ms: int = 0  # 0: from guide rate, pixel scale and Dec
    calibration_max_ortho_deg: float = 12.5
    calibration_max_ratio_error: float = 0.20

    # Drift-away watchdog
    drift_limit_px: float = 3.0
    drift_time_s: float = 60.0

    # Dithering and settling
    dither_px: float = 5.0
    dither_ra_only: bool = False
    settle_px: float = 1.5
    settle_time_s: float = 10.0
    settle_timeout_s: float = 40.0

    # Statistics
    stats_window_s: float = 120.0

    @classmethod
    def from_config(cls, cfg: Any) -> "GuideSettings":
        """The config's ``[guiding]`` table; the gain defaults to the guide camera's."""
        s = replace(cfg.guiding)
        if s.gain is None:
            s.gain = cfg.guide_camera.gain
        return s
