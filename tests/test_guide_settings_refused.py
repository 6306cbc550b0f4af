"""Every [guiding] and [sim] value is range-checked with a one-line error naming the key;
`fieldtui guide` refuses a bad --minutes, and an error in the guide loop reaches the user
with its real message."""

import json

import pytest

from fieldtui.commands.guide import main as guide_main
from fieldtui.config import ConfigError, load_config


def test_every_number_of_the_shipped_guiding_and_sim_tables_is_checked():
    """NaN in any [guiding] or [sim] number of the shipped config is refused naming that key
    (seeing_jitter_shared was not checked: NaN ended in "Cannot pick a guide star", -0.5 and
    3 were silently clamped)."""
    import tomllib
    from importlib import resources
    shipped = tomllib.loads(resources.files("fieldtui").joinpath("resources/config.toml").read_text())
    keys = [(t, k) for t in ("guiding", "sim") for k, v in shipped[t].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert len(keys) > 60
    for table, key in keys:
        with pytest.raises(ConfigError, match=f"{table}.{key}: expected"):
            load_config(user=False, overrides={table: {key: float("nan")}})


@pytest.mark.parametrize("table, key, value, expected", [
    ("guiding", "calibration_steps", 0, "between 2 and 100 steps"),
    ("guiding", "calibration_px", 0.0, "pixels between 2 and 500"),
    ("guiding", "cycle_time_s", -1.0, "seconds, 0 or more"),
    ("guiding", "settle_exposure_s", -0.5, "seconds, 0 (the guide exposure) to 600"),
    ("guiding", "box_px", 0, "a guide box side between 8 and 400 px"),
    ("guiding", "exposure_s", float("nan"), "seconds above 0"),
    ("guiding", "ra_hysteresis", 1.0, "a fraction from 0 to under 1"),
    ("guiding", "dec_aggression", 0.0, "a fraction above 0"),
    ("guiding", "max_ra_pulse_ms", 0, "milliseconds between 1 and 60000"),
    ("guiding", "mass_change", 0.5, "0 (off) or a factor above 1"),
    ("guiding", "ra_period_s", 5.0, "0 (found from the data) or a worm period"),
    ("guiding", "settle_timeout_s", 0.0, "a positive number of seconds"),
    ("guiding", "multi_star", -1, "0 (off) to 32 extra stars"),
    ("sim", "seeing_jitter", -0.2, "a fraction of the seeing FWHM from 0 to 2"),
    ("sim", "seeing_jitter_shared", float("nan"), "a fraction of the jitter's variance from 0 to 1"),
    ("sim", "backlash_arcsec", -5.0, "arc-seconds, 0 or more"),
    ("sim", "backlash_start", 1.5, "a fraction of the play from 0 to 1"),
    ("sim", "seed", -1, "0 or more"),
    ("sim", "vignetting", 1.0, "a fraction from 0 to under 1"),
    ("sim", "gusts_per_hour", -2.0, "0 or more an hour"),
    ("sim", "pe_amplitude_arcsec", float("inf"), "arc-seconds, 0 or more"),
])
def test_bad_values_are_refused_naming_the_key(table, key, value, expected):
    with pytest.raises(ConfigError) as err:
        load_config(user=False, overrides={table: {key: value}})
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{table}.{key}: expected {expected}" in msg and "found" in msg


def test_good_edge_values_are_accepted():
    cfg = load_config(user=False, overrides={
        "guiding": {"calibration_steps": 2, "cycle_time_s": 0.0, "tolerance_px": 0.0, "box_px": 8,
                    "mass_change": 0.0, "ra_period_s": 240.0, "min_pulse_ms": 0},
        "sim": {"seeing_jitter": 0.0, "backlash_start": 1.0, "polar_error_arcmin": -4.0,
                "ra_drift_arcsec_min": -0.5}})
    assert cfg.guiding.calibration_steps == 2 and cfg.sim.polar_error_arcmin == -4.0


def test_bad_value_in_a_file_exits_2_with_one_line(tmp_path, capsys):
    f = tmp_path / "x.toml"
    f.write_text("[guiding]\ncalibration_steps = 0\n")
    assert guide_main(["--minutes", "1", "--fast", "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "guiding.calibration_steps" in err


@pytest.mark.parametrize("minutes", ["-5", "0", "nan"])
def test_guide_refuses_a_bad_duration(minutes, capsys):
    assert guide_main(["--minutes", minutes, "--fast", "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "--minutes" in out.err and "positive number of minutes" in out.err


def test_an_error_in_the_guide_loop_reaches_the_user(monkeypatch, capsys, tmp_path):
    from fieldtui.guiding.engine import GuideEngine

    small = tmp_path / "small.toml"
    small.write_text("[guide_camera]\nwidth = 320\nheight = 240\n")

    def broken(self, data, t, detection=None, exposure_s=None):
        raise RuntimeError("centroid table is corrupt")

    monkeypatch.setattr(GuideEngine, "on_frame", broken)
    assert guide_main(["--minutes", "1", "--fast", "--json", "--config", str(small)]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["error"] == ("the guide loop stopped on an error: RuntimeError: centroid table is "
                            "corrupt")
    assert guide_main(["--minutes", "1", "--fast", "--config", str(small)]) == 1
    assert "Guiding did not start: the guide loop stopped on an error: RuntimeError: centroid " \
           "table is corrupt" in capsys.readouterr().out
