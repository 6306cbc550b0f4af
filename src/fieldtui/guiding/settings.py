"""Guiding settings: the ``[guiding]`` table of the config, with defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass
class GuideSettings:
    # Exposure loop.  cycle_time_s (ASICap's "guider cycle time") is an
    # extra wait between guide frames; 0 means back to back.
    exposure_s: float = 1.0
    gain: int | None = None
    cycle_time_s: float = 0.0
    # ASICap's "correction time": corrections at most this often, from the
    # mean offset since the last one; 0 corrects after every frame.
    correction_time_s: float = 0.0
    # ASICap's "tolerance" (px): no correction below it on either axis;
    # None uses each algorithm's minimum move.
    tolerance_px: float | None = None

    # Star selection and tracking
    box_px: int = 25  # side of the guide box
    min_snr: float = 6.0  # auto-selection floor
    min_stars: int = 4  # refuse to guide on fewer visible stars
    multi_star: int = 0  # extra stars averaged with the guide star (0 = off)
    lost_snr: float = 3.0  # below this the star counts as lost
    mass_change: float = 3.0  # star lost when its flux changes by this factor (0 = off)
    lost_alert_s: float = 30.0  # loud alert when lost for this long
    new_star_after_s: float = 120.0  # then try another star (the lock resets)

    # Algorithms (PHD2 defaults)
    # The classic pair here; the shipped config selects "predictive" for both.
    ra_algorithm: str = "hysteresis"  # or "predictive"
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
    dec_algorithm: str = "resist_switch"  # or "predictive"
    dec_aggression: float = 1.0
    dec_min_move: float = 0.2
    # Predictive Dec: feedback gain toward the drift, the window the drift
    # rate is measured over and the share of it fed forward.
    dec_predictive_aggression: float = 0.2
    dec_drift_s: float = 120.0
    dec_drift_gain: float = 0.3
    dec_mode: str = "auto"  # auto | north | south | off
    max_ra_pulse_ms: int = 2500
    max_dec_pulse_ms: int = 2500
    min_pulse_ms: int = 10

    # Calibration
    calibration_px: float = 25.0
    calibration_steps: int = 12
    calibration_step_ms: int | None = None
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
        """Read ``cfg.guiding.<key>`` (a Config, a section object or a dict),
        each key falling back to the default.  The config's spellings
        (``ra_aggressiveness``, ``watchdog_s``, …) map onto these fields."""
        section = getattr(cfg, "guiding", cfg)
        if section is None:
            return cls()

        def get(key: str) -> Any:
            if isinstance(section, dict):
                return section.get(key, _MISSING)
            return getattr(section, key, _MISSING)

        vals: dict[str, Any] = {}
        for f in fields(cls):
            v = get(f.name)
            if v is not _MISSING:
                vals[f.name] = v
        for key, name in CONFIG_KEYS.items():
            v = get(key)
            if v is not _MISSING:
                vals[name] = v
        if "tolerance_px" in vals and not vals["tolerance_px"]:
            vals["tolerance_px"] = None  # 0 means: use the minimum moves
        if isinstance(vals.get("multi_star"), bool):
            vals["multi_star"] = 4 if vals["multi_star"] else 0
        if not vals.get("calibration_step_ms"):
            vals.pop("calibration_step_ms", None)
        if vals.get("gain") is None:
            gain = getattr(getattr(cfg, "guide_camera", None), "gain", None)
            if gain is not None:
                vals["gain"] = gain
        return replace(cls(), **vals)


_MISSING = object()

# Config key (the ``[guiding]`` table of config.toml) → field.
CONFIG_KEYS = {
    "ra_aggressiveness": "ra_aggression",
    "ra_min_move_px": "ra_min_move",
    "dec_direction": "dec_mode",
    "dec_aggressiveness": "dec_aggression",
    "dec_min_move_px": "dec_min_move",
    "ra_predictive_aggressiveness": "ra_predictive_aggression",
    "dec_predictive_aggressiveness": "dec_predictive_aggression",
    "max_pulse_ra_ms": "max_ra_pulse_ms",
    "max_pulse_dec_ms": "max_dec_pulse_ms",
    "calibration_distance_px": "calibration_px",
    "min_select_snr": "min_snr",
    "star_lost_snr": "lost_snr",
    "watchdog_px": "drift_limit_px",
    "watchdog_s": "drift_time_s",
}
