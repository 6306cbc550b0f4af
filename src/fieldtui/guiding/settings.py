"""Guiding settings: the ``[guiding]`` table of the config, with defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass
class GuideSettings:
    # Exposure loop (ASICap's "cycle time"): one frame every cycle_time_s;
    # 0 means back to back.
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
    mass_change: float = 0.0  # star lost when its flux changes by this factor (0 = off)
    lost_alert_s: float = 30.0  # loud alert when lost for this long
    new_star_after_s: float = 120.0  # then try another star (the lock resets)

    # Algorithms (PHD2 defaults)
    ra_algorithm: str = "hysteresis"
    ra_hysteresis: float = 0.1
    ra_aggression: float = 0.7
    ra_min_move: float = 0.2
    dec_algorithm: str = "resist_switch"
    dec_aggression: float = 1.0
    dec_min_move: float = 0.2
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
        each key falling back to the default."""
        section = getattr(cfg, "guiding", cfg)
        if section is None:
            return cls()
        vals: dict[str, Any] = {}
        for f in fields(cls):
            if isinstance(section, dict):
                if f.name in section:
                    vals[f.name] = section[f.name]
            elif hasattr(section, f.name):
                vals[f.name] = getattr(section, f.name)
        return replace(cls(), **vals)
