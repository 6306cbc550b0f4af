"""Configuration: defaults ← the user's file ← ``--config FILE``.

Every key is typed. A wrong value or an unknown key stops with one message
naming the file, the key, what was expected, what was found and the closest
valid key (:class:`ConfigError`; the CLI exits with status 2).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .guiding.settings import GuideSettings

RESOURCES = Path(__file__).parent / "resources"
DEFAULT_CONFIG = RESOURCES / "config.toml"


class ConfigError(Exception):
    """One clear problem with a configuration file."""

    def __init__(self, file: str | Path, key: str, expected: str, found: str,
                 suggestion: str | None = None) -> None:
        self.file, self.key, self.expected, self.found, self.suggestion = (
            str(file), key, expected, found, suggestion)
        msg = f"{file}: {key}: expected {expected}, found {found}"
        if suggestion:
            msg += f" (did you mean '{suggestion}'?)"
        super().__init__(msg)


@dataclass
class Site:
    latitude: float = 0.0
    longitude: float = 0.0
    elevation_m: float = 0.0
    timezone: str = "UTC"
    min_altitude_deg: float = 30.0


@dataclass
class Optics:
    focal_length_mm: float = 1000.0
    aperture_mm: float = 100.0


@dataclass
class GuideCameraCfg:
    driver: Literal["sim", "zwo", "indi"] = "sim"
    indi_device: str = ""
    model: str = ""
    width: int = 1280
    height: int = 960
    pixel_um: float = 3.75
    bit_depth: int = 12
    gain: int = 50
    exposure_s: float = 1.0
    index: int = 0
    sdk_library: str = ""
    offset: int = 8
    bandwidth: int = 40
    high_speed: bool = False
    binning: int = 1
    video: bool = True


@dataclass
class MainCameraCfg:
    driver: Literal["sim", "gphoto2", "indi"] = "sim"
    indi_device: str = ""
    model: str = ""
    width: int = 5184
    height: int = 3456
    pixel_um: float = 4.3
    bit_depth: int = 14
    bayer: Literal["RGGB", "BGGR", "GRBG", "GBRG", ""] = "RGGB"
    black_level: int = 2048
    white_level: int = 15000
    iso: int = 800
    raw_format: Literal["dng"] = "dng"


SERIAL_MOUNTS = ("lx200", "nexstar", "synscan")
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)


@dataclass
class MountCfg:
    driver: Literal["sim", "lx200", "nexstar", "synscan", "indi"] = "sim"
    indi_device: str = ""
    port: str = ""
    baud: int = 9600
    timeout_s: float = 1.0
    emulate: Literal["", "lx200", "nexstar", "synscan"] = ""
    guide_rate: float = 0.5
    slew_rate_deg_s: float = 3.0


@dataclass
class GuidePortCfg:
    via: Literal["camera", "mount"] = "camera"


@dataclass
class FocuserCfg:
    driver: Literal["sim", "none", "indi"] = "sim"
    indi_device: str = ""
    max_position: int = 10000
    step_um: float = 5.0


@dataclass
class IndiCfg:
    """Where the INDI server of the ``driver = "indi"`` devices listens."""
    host: str = "127.0.0.1"
    port: int = 7624
    timeout_s: float = 10.0


@dataclass
class StorageCfg:
    data_root: str = "~/astro"
    min_free_gb: float = 2.0

    @property
    def root(self) -> Path:
        return Path(os.path.expandvars(self.data_root)).expanduser()


@dataclass
class CaptureCfg:
    """What the capture sequencer does by itself between frames (service/capture.py)."""

    meridian_flip: bool = True        # flip when the target passes the meridian (false: pause instead)
    flip_after_min: float = 5.0       # minutes past the meridian the flip is done (between frames)
    meridian_limit_min: float = 10.0  # minutes past the meridian the mount may track before a flip
    refocus_hfr_pct: float = 20.0     # refocus when the HFR grows by this much (0: never)
    refocus_temp_c: float = 2.0       # refocus when the temperature changes by this much (0: never)
    autofocus_points: int = 7         # focuser positions of an autofocus run
    autofocus_step: int = 100         # focuser steps between them
    autofocus_exposure_s: float = 5.0 # main-camera exposure at each position
    recentre_exposure_s: float = 10.0 # after a flip: a light to measure how far the framing moved (0: none)


@dataclass
class PlanCfg:
    target: str = "M33"
    ra_deg: float = 23.4621
    dec_deg: float = 30.6602
    light_exposure_s: float = 120.0
    light_count: int = 40
    calibration_count: int = 20
    file: str = ""
    dark_temp_tolerance_c: float = 2.0


@dataclass
class ExposureCfg:
    """What the rig can do for a light sub: exposure advice never asks for more."""
    longest_sub_s: float = 600.0
    longest_unguided_s: float = 60.0
    guided: bool = True


@dataclass
class ServiceCfg:
    connect_timeout_s: float = 10.0
    retry_interval_s: float = 15.0
    resume_guiding: bool = False


@dataclass
class UiCfg:
    theme: Literal["night", "day"] = "night"
    colours: Literal["auto", "8", "16", "256", "truecolor"] = "auto"


@dataclass
class SimCfg:
    seed: int = 7
    seeing_fwhm_arcsec: float = 2.5
    seeing_jitter: float = 0.2
    seeing_jitter_shared: float = 0.3
    sky_mag_arcsec2: float = 20.5
    temperature_c: float = 13.0
    pe_amplitude_arcsec: float = 15.0
    pe_period_s: float = 480.0
    polar_error_arcmin: float = 4.0
    ra_drift_arcsec_min: float = 0.5
    backlash_arcsec: float = 8.0
    backlash_start: float = 0.5
    gusts_per_hour: float = 2.0
    gust_arcsec: float = 4.0
    guide_angle_deg: float = 17.0
    guide_flipped: bool = False
    guide_blur_arcsec: float = 8.0
    main_angle_deg: float = 2.0
    best_focus: int = 5130
    focus_blur_arcsec_per_step: float = 0.02
    vignetting: float = 0.3
    hot_pixels: int = 60
    mount_flips: bool = True


@dataclass
class Config:
    site: Site = field(default_factory=Site)
    telescope: Optics = field(default_factory=Optics)
    guide_scope: Optics = field(default_factory=lambda: Optics(180.0, 50.0))
    guide_camera: GuideCameraCfg = field(default_factory=GuideCameraCfg)
    main_camera: MainCameraCfg = field(default_factory=MainCameraCfg)
    mount: MountCfg = field(default_factory=MountCfg)
    guide_port: GuidePortCfg = field(default_factory=GuidePortCfg)
    focuser: FocuserCfg = field(default_factory=FocuserCfg)
    indi: IndiCfg = field(default_factory=IndiCfg)
    storage: StorageCfg = field(default_factory=StorageCfg)
    plan: PlanCfg = field(default_factory=PlanCfg)
    capture: CaptureCfg = field(default_factory=CaptureCfg)
    exposure: ExposureCfg = field(default_factory=ExposureCfg)
    service: ServiceCfg = field(default_factory=ServiceCfg)
    ui: UiCfg = field(default_factory=UiCfg)
    sim: SimCfg = field(default_factory=SimCfg)
    guiding: GuideSettings = field(default_factory=GuideSettings)
    sources: list[str] = field(default_factory=list)

    @property
    def guide_scale(self) -> float:
        """Guide camera arcseconds per pixel."""
        return 206.265 * self.guide_camera.pixel_um / self.guide_scope.focal_length_mm

    @property
    def main_scale(self) -> float:
        """Main camera arcseconds per pixel."""
        return 206.265 * self.main_camera.pixel_um / self.telescope.focal_length_mm

    @property
    def uses_simulator(self) -> bool:
        return "sim" in (self.guide_camera.driver, self.main_camera.driver,
                         self.mount.driver, self.focuser.driver)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("sources", None)
        return d


def user_config_path() -> Path:
    """The user's own file: $FIELDTUI_USER_CONFIG, else the platform config dir."""
    env = os.environ.get("FIELDTUI_USER_CONFIG")
    if env is not None:
        return Path(env)
    from platformdirs import user_config_dir
    return Path(user_config_dir("fieldtui")) / "config.toml"


def _describe(value: Any) -> str:
    name = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    return f"{name} ({value!r})" if not isinstance(value, dict) else name


def _expected(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp) and type(value) is not bool, value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _coerce(arg, value)
            if ok:
                return True, v
        return False, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return True, value


def _apply(target: Any, table: dict[str, Any], file: str, prefix: str) -> None:
    hints = typing.get_type_hints(type(target))
    names = [f.name for f in dataclasses.fields(target) if f.name != "sources"]
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            suggestion = f"{prefix}{close[0]}" if close else None
            where = f"one of the keys of [{prefix[:-1]}]" if prefix else "a known section"
            raise ConfigError(file, dotted, f"{where}", "an unknown key", suggestion)
        tp = hints[key]
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(file, dotted, f"a table [{dotted}]", _describe(value))
            _apply(current, value, file, dotted + ".")
            continue
        ok, coerced = _coerce(tp, value)
        if not ok:
            raise ConfigError(file, dotted, _expected(tp), _describe(value))
        setattr(target, key, coerced)


def _validate(cfg: Config) -> None:
    """Range checks that types alone cannot express."""
    src = cfg.sources[-1] if cfg.sources else str(DEFAULT_CONFIG)
    positive = [
        ("telescope.focal_length_mm", cfg.telescope.focal_length_mm),
        ("telescope.aperture_mm", cfg.telescope.aperture_mm),
        ("guide_scope.focal_length_mm", cfg.guide_scope.focal_length_mm),
        ("guide_scope.aperture_mm", cfg.guide_scope.aperture_mm),
        ("guide_camera.pixel_um", cfg.guide_camera.pixel_um),
        ("guide_camera.width", cfg.guide_camera.width),
        ("guide_camera.height", cfg.guide_camera.height),
        ("main_camera.pixel_um", cfg.main_camera.pixel_um),
        ("main_camera.width", cfg.main_camera.width),
        ("main_camera.height", cfg.main_camera.height),
        ("mount.guide_rate", cfg.mount.guide_rate),
        ("guiding.exposure_s", cfg.guiding.exposure_s),
        ("sim.seeing_fwhm_arcsec", cfg.sim.seeing_fwhm_arcsec),
        ("sim.pe_period_s", cfg.sim.pe_period_s),
        ("service.connect_timeout_s", cfg.service.connect_timeout_s),
        ("exposure.longest_sub_s", cfg.exposure.longest_sub_s),
        ("exposure.longest_unguided_s", cfg.exposure.longest_unguided_s),
    ]
    for key, value in positive:
        if value <= 0:
            raise ConfigError(src, key, "a positive number", _describe(value))
    _validate_guiding_and_sim(cfg, src)
    g = cfg.guide_camera
    if not 40 <= g.bandwidth <= 100:
        raise ConfigError(src, "guide_camera.bandwidth", "a USB bandwidth share between 40 and 100 (%)",
                          _describe(g.bandwidth))
    if g.binning not in (1, 2, 3, 4):
        raise ConfigError(src, "guide_camera.binning", "1, 2, 3 or 4", _describe(g.binning))
    if g.offset < 0:
        raise ConfigError(src, "guide_camera.offset", "0 or more", _describe(g.offset))
    m = cfg.mount
    if m.driver in SERIAL_MOUNTS and not m.port.strip():
        raise ConfigError(src, "mount.port", f"the serial port of the {m.driver} mount, such as "
                          "'/dev/ttyUSB0' (`fieldtui check` lists the ports)", "an empty string")
    if m.baud not in BAUD_RATES:
        raise ConfigError(src, "mount.baud", "one of " + ", ".join(map(str, BAUD_RATES)), _describe(m.baud))
    if m.timeout_s <= 0:
        raise ConfigError(src, "mount.timeout_s", "a positive number", _describe(m.timeout_s))
    if m.emulate and m.driver != "sim":
        raise ConfigError(src, "mount.emulate", f"'' with driver '{m.driver}' (only the simulated "
                          "mount is emulated)", _describe(m.emulate))
    if not 0.05 <= m.guide_rate <= 1.0:
        raise ConfigError(src, "mount.guide_rate", "a fraction of sidereal between 0.05 and 1",
                          _describe(m.guide_rate))
    if not -90 <= cfg.site.latitude <= 90:
        raise ConfigError(src, "site.latitude", "degrees between -90 and 90", _describe(cfg.site.latitude))
    if not -180 <= cfg.site.longitude <= 360:
        raise ConfigError(src, "site.longitude", "degrees between -180 and 360", _describe(cfg.site.longitude))
    if not 0 <= cfg.site.min_altitude_deg < 90:
        raise ConfigError(src, "site.min_altitude_deg", "degrees from 0 up to (not including) 90",
                          _describe(cfg.site.min_altitude_deg))
    if not -90 <= cfg.plan.dec_deg <= 90:
        raise ConfigError(src, "plan.dec_deg", "degrees between -90 and 90", _describe(cfg.plan.dec_deg))
    if not cfg.main_camera.black_level < cfg.main_camera.white_level <= 2 ** cfg.main_camera.bit_depth - 1:
        raise ConfigError(src, "main_camera.white_level",
                          f"a level above black_level ({cfg.main_camera.black_level}) and at most "
                          f"{2 ** cfg.main_camera.bit_depth - 1} for {cfg.main_camera.bit_depth} bits",
                          _describe(cfg.main_camera.white_level))
    if cfg.exposure.longest_unguided_s > cfg.exposure.longest_sub_s:
        raise ConfigError(src, "exposure.longest_unguided_s",
                          f"at most exposure.longest_sub_s ({cfg.exposure.longest_sub_s:g} s): guiding "
                          "never shortens the longest sub", _describe(cfg.exposure.longest_unguided_s))
    for role in ("guide_camera", "main_camera", "mount", "focuser"):
        rc = getattr(cfg, role)
        if rc.driver == "indi" and not rc.indi_device.strip():
            raise ConfigError(src, f"{role}.indi_device", "the INDI device name of this role "
                              "(`fieldtui check` lists the server's devices)", "an empty string")
    if not cfg.indi.host.strip():
        raise ConfigError(src, "indi.host", "a host name or address, such as '127.0.0.1'", "an empty string")
    if not 1 <= cfg.indi.port <= 65535:
        raise ConfigError(src, "indi.port", "a TCP port between 1 and 65535", _describe(cfg.indi.port))
    if cfg.indi.timeout_s <= 0:
        raise ConfigError(src, "indi.timeout_s", "a positive number", _describe(cfg.indi.timeout_s))
    c = cfg.capture
    if not 0 <= c.flip_after_min <= 60:
        raise ConfigError(src, "capture.flip_after_min", "minutes past the meridian between 0 and 60",
                          _describe(c.flip_after_min))
    if not c.flip_after_min <= c.meridian_limit_min <= 120:
        raise ConfigError(src, "capture.meridian_limit_min",
                          f"minutes past the meridian from capture.flip_after_min ({c.flip_after_min:g}) "
                          "to 120", _describe(c.meridian_limit_min))
    if not 0 <= c.refocus_hfr_pct <= 500:
        raise ConfigError(src, "capture.refocus_hfr_pct", "a percentage between 0 (never) and 500",
                          _describe(c.refocus_hfr_pct))
    if not 0 <= c.refocus_temp_c <= 30:
        raise ConfigError(src, "capture.refocus_temp_c", "degrees between 0 (never) and 30",
                          _describe(c.refocus_temp_c))
    if not 5 <= c.autofocus_points <= 21:
        raise ConfigError(src, "capture.autofocus_points", "5 to 21 positions (a V curve needs 5)",
                          _describe(c.autofocus_points))
    if not 1 <= c.autofocus_step * (c.autofocus_points - 1) <= cfg.focuser.max_position:
        raise ConfigError(src, "capture.autofocus_step",
                          f"1 or more steps, the run's span (step × {c.autofocus_points - 1}) within "
                          f"focuser.max_position ({cfg.focuser.max_position})", _describe(c.autofocus_step))
    if not 0 <= c.recentre_exposure_s <= 300:
        raise ConfigError(src, "capture.recentre_exposure_s", "seconds between 0 (no check) and 300",
                          _describe(c.recentre_exposure_s))
    if not 0 < c.autofocus_exposure_s <= 120:
        raise ConfigError(src, "capture.autofocus_exposure_s", "seconds above 0 and at most 120",
                          _describe(c.autofocus_exposure_s))
    try:
        from zoneinfo import ZoneInfo
        ZoneInfo(cfg.site.timezone)
    except Exception:
        raise ConfigError(src, "site.timezone", "an IANA time zone name such as 'Europe/Paris'",
                          _describe(cfg.site.timezone)) from None


INF = float("inf")
# [guiding] and [sim] ranges: key -> (low, high, inclusive low, what is expected).
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "guiding.exposure_s": (0, 600, False, "seconds above 0, at most 600"),
    "sim.seeing_fwhm_arcsec": (0, 60, False, "arc-seconds above 0, at most 60"),
    "sim.pe_period_s": (0, 86400, False, "seconds above 0"),
    "guiding.settle_exposure_s": (0, 600, True, "seconds, 0 (the guide exposure) to 600"),
    "guiding.cycle_time_s": (0, 3600, True, "seconds, 0 or more (0 = back to back)"),
    "guiding.correction_time_s": (0, 3600, True, "seconds, 0 or more (0 = every frame)"),
    "guiding.tolerance_px": (0, 100, True, "pixels, 0 or more (0 = off)"),
    "guiding.box_px": (8, 400, True, "a guide box side between 8 and 400 px"),
    "guiding.min_snr": (0, 1000, False, "a positive signal-to-noise ratio"),
    "guiding.min_stars": (1, 1000, True, "1 or more stars"),
    "guiding.min_hfd_px": (0, 100, True, "pixels, 0 or more"),
    "guiding.multi_star": (0, 32, True, "0 (off) to 32 extra stars"),
    "guiding.lost_snr": (0, 1000, False, "a positive signal-to-noise ratio"),
    "guiding.lost_alert_s": (0, INF, False, "a positive number of seconds"),
    "guiding.new_star_after_s": (0, INF, False, "a positive number of seconds"),
    "guiding.ra_hysteresis": (0, 1, True, "a fraction from 0 to under 1"),
    "guiding.ra_aggression": (0, 2, False, "a fraction above 0, at most 2"),
    "guiding.ra_min_move": (0, 100, True, "pixels, 0 or more"),
    "guiding.ra_predictive_aggression": (0, 1, True, "a fraction from 0 to 1"),
    "guiding.ra_prediction_gain": (0, 2, True, "a fraction from 0 to 2"),
    "guiding.ra_trend_s": (2, 3600, True, "seconds, at least 2"),
    "guiding.dec_aggression": (0, 2, False, "a fraction above 0, at most 2"),
    "guiding.dec_min_move": (0, 100, True, "pixels, 0 or more"),
    "guiding.dec_predictive_aggression": (0, 1, True, "a fraction from 0 to 1"),
    "guiding.dec_drift_s": (10, 7200, True, "seconds, at least 10"),
    "guiding.dec_drift_gain": (0, 1, True, "a fraction from 0 to 1"),
    "guiding.max_ra_pulse_ms": (1, 60000, True, "milliseconds between 1 and 60000"),
    "guiding.max_dec_pulse_ms": (1, 60000, True, "milliseconds between 1 and 60000"),
    "guiding.min_pulse_ms": (0, 10000, True, "milliseconds, 0 or more"),
    "guiding.calibration_px": (2, 500, True, "pixels between 2 and 500"),
    "guiding.calibration_steps": (2, 100, True, "between 2 and 100 steps"),
    "guiding.calibration_step_ms": (0, 60000, True, "milliseconds, 0 (automatic) to 60000"),
    "guiding.calibration_max_ortho_deg": (0, 45, False, "degrees above 0, at most 45"),
    "guiding.calibration_max_ratio_error": (0, 1, False, "a fraction above 0, at most 1"),
    "guiding.drift_limit_px": (0, 1000, False, "a positive number of pixels"),
    "guiding.drift_time_s": (0, INF, False, "a positive number of seconds"),
    "guiding.dither_px": (0, 500, True, "pixels, 0 or more"),
    "guiding.settle_px": (0, 100, False, "a positive number of pixels"),
    "guiding.settle_time_s": (0, 3600, True, "seconds, 0 or more"),
    "guiding.settle_timeout_s": (0, 3600, False, "a positive number of seconds"),
    "guiding.stats_window_s": (0, INF, False, "a positive number of seconds"),
    "sim.seed": (0, INF, True, "0 or more"),
    "sim.seeing_jitter": (0, 2, True, "a fraction of the seeing FWHM from 0 to 2"),
    "sim.seeing_jitter_shared": (0, 1, True, "a fraction of the jitter's variance from 0 to 1"),
    "sim.sky_mag_arcsec2": (10, 25, True, "a sky brightness between 10 and 25 mag/arcsec²"),
    "sim.temperature_c": (-50, 60, True, "°C between -50 and 60"),
    "sim.pe_amplitude_arcsec": (0, 600, True, "arc-seconds, 0 or more"),
    "sim.polar_error_arcmin": (-1200, 1200, True, "arc-minutes between -1200 and 1200 (the sign sets "
                               "the drift's direction)"),
    "sim.ra_drift_arcsec_min": (-600, 600, True, "arc-seconds per minute between -600 and 600"),
    "sim.backlash_arcsec": (0, 3600, True, "arc-seconds, 0 or more"),
    "sim.backlash_start": (0, 1, True, "a fraction of the play from 0 to 1"),
    "sim.gusts_per_hour": (0, 3600, True, "0 or more an hour"),
    "sim.gust_arcsec": (0, 3600, True, "arc-seconds, 0 or more"),
    "sim.guide_angle_deg": (-INF, INF, True, "degrees"),
    "sim.main_angle_deg": (-INF, INF, True, "degrees"),
    "sim.guide_blur_arcsec": (0, 600, True, "arc-seconds, 0 or more"),
    "sim.focus_blur_arcsec_per_step": (0, 10, True, "arc-seconds per step, 0 or more"),
    "sim.vignetting": (0, 1, True, "a fraction from 0 to under 1"),
    "sim.hot_pixels": (0, 100000, True, "0 or more"),
}
_OPEN_HIGH = {"guiding.ra_hysteresis", "sim.vignetting"}  # the high end itself is refused


def value_range(key: str) -> tuple[float, float]:
    """The (low, high) bounds a ``table.name`` number of [guiding] or [sim] must lie
    within, as the config check uses them (e.g. ``"guiding.dither_px"`` → (0, 500)), so
    a command taking the same quantity checks it against the same limits.  KeyError for
    a key with no range."""
    lo, hi, _, _ = _RANGES[key]
    return lo, hi


def _validate_guiding_and_sim(cfg: Config, src: str) -> None:
    """Every [guiding] and [sim] number in its range (NaN and infinities refused)."""
    import math
    for key, (lo, hi, incl, expected) in _RANGES.items():
        table, name = key.split(".")
        value = getattr(getattr(cfg, table), name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        ok = (math.isfinite(value) and (value >= lo if incl else value > lo)
              and (value < hi if key in _OPEN_HIGH else value <= hi))
        if not ok:
            raise ConfigError(src, key, expected, _describe(value))
    g = cfg.guiding
    if g.gain is not None and g.gain < 0:
        raise ConfigError(src, "guiding.gain", "a gain of 0 or more", _describe(g.gain))
    if g.mass_change != 0 and not (math.isfinite(g.mass_change) and g.mass_change > 1):
        raise ConfigError(src, "guiding.mass_change", "0 (off) or a factor above 1",
                          _describe(g.mass_change))
    if g.ra_period_s != 0 and not (math.isfinite(g.ra_period_s) and 30 <= g.ra_period_s <= 3600):
        raise ConfigError(src, "guiding.ra_period_s", "0 (found from the data) or a worm period "
                          "between 30 and 3600 s", _describe(g.ra_period_s))
    if g.min_pulse_ms > min(g.max_ra_pulse_ms, g.max_dec_pulse_ms):
        raise ConfigError(src, "guiding.min_pulse_ms", "at most max_ra_pulse_ms and max_dec_pulse_ms "
                          f"({g.max_ra_pulse_ms}, {g.max_dec_pulse_ms})", _describe(g.min_pulse_ms))
    if not 0 <= cfg.sim.best_focus <= cfg.focuser.max_position:
        raise ConfigError(src, "sim.best_focus", f"a focuser position from 0 to focuser.max_position "
                          f"({cfg.focuser.max_position})", _describe(cfg.sim.best_focus))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "an existing TOML file", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(path, "(file)", "a TOML file", "a directory") from None
    except PermissionError:
        raise ConfigError(path, "(file)", "a readable file", "permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", "valid TOML", str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "(file)", "UTF-8 text", "binary data") from None


def load_config(path: str | Path | None = None, *, user: bool = True,
                overrides: dict[str, Any] | None = None) -> Config:
    """Defaults ← user file (when present) ← ``path`` ← ``overrides``."""
    cfg = Config()
    layers: list[tuple[Path | str, dict[str, Any]]] = [(DEFAULT_CONFIG, _read_toml(DEFAULT_CONFIG))]
    if user:
        up = user_config_path()
        if up.is_file():
            layers.append((up, _read_toml(up)))
    if path is not None:
        layers.append((Path(path), _read_toml(Path(path))))
    if overrides:
        layers.append(("(overrides)", overrides))
    for src, table in layers:
        _apply(cfg, table, str(src), "")
        cfg.sources.append(str(src))
        _validate(cfg)
    return cfg
