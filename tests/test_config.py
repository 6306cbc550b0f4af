import subprocess
import sys

import pytest

from fieldtui.config import ConfigError, load_config


def write(tmp_path, text):
    p = tmp_path / "my.toml"
    p.write_text(text)
    return p


def test_defaults_are_the_simulated_rig():
    cfg = load_config()
    assert cfg.guide_camera.driver == "sim" and cfg.main_camera.driver == "sim"
    # 206.265 x 3.75 um / 180 mm and 206.265 x 4.3 um / 2000 mm
    assert cfg.guide_scale == pytest.approx(4.2972, abs=1e-4)
    assert cfg.main_scale == pytest.approx(0.44347, abs=1e-5)


def test_unknown_key_names_file_key_and_closest(tmp_path):
    p = write(tmp_path, "[guide_camera]\nexposur_s = 2.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg
    assert "guide_camera.exposur_s" in msg
    assert "unknown key" in msg
    assert "did you mean 'guide_camera.exposure_s'" in msg


def test_unknown_section_suggests_closest(tmp_path):
    p = write(tmp_path, "[sit]\nlatitude = 10\n")
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        load_config(p)


def test_wrong_type_says_expected_and_found(tmp_path):
    p = write(tmp_path, '[mount]\nguide_rate = "fast"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.key == "mount.guide_rate"
    assert e.value.expected == "a number"
    assert "'fast'" in e.value.found


def test_choice_and_range(tmp_path):
    with pytest.raises(ConfigError, match="one of 'night', 'day'"):
        load_config(write(tmp_path, '[ui]\ntheme = "blue"\n'))
    with pytest.raises(ConfigError, match="site.latitude: expected degrees between -90 and 90"):
        load_config(write(tmp_path, "[site]\nlatitude = 123.0\n"))
    with pytest.raises(ConfigError, match="site.timezone"):
        load_config(write(tmp_path, '[site]\ntimezone = "Mars/Olympus"\n'))


def test_bool_is_not_a_number(tmp_path):
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(write(tmp_path, "[telescope]\nfocal_length_mm = true\n"))


def test_missing_file_and_bad_syntax(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_config(write(tmp_path, "[site\nlatitude = 1\n"))


def test_layers_override_key_by_key(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text("[telescope]\nfocal_length_mm = 800\naperture_mm = 130\n")
    monkeypatch.setenv("FIELDTUI_USER_CONFIG", str(user))
    cli = write(tmp_path, "[telescope]\nfocal_length_mm = 650\n")
    cfg = load_config(cli)
    assert cfg.telescope.focal_length_mm == 650.0   # --config wins
    assert cfg.telescope.aperture_mm == 130.0       # user file beats the defaults
    assert cfg.guide_camera.pixel_um == 3.75        # defaults remain
    assert cfg.sources[-2:] == [str(user), str(cli)]


def test_user_file_errors_name_the_user_file(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text("[focuser]\nmax_postion = 5\n")
    monkeypatch.setenv("FIELDTUI_USER_CONFIG", str(user))
    with pytest.raises(ConfigError, match=str(user).replace(".", r"\.") + ".*max_position"):
        load_config()


@pytest.mark.parametrize("text, needle", [
    ("[guide_camera]\nexposur_s = 2.0\n", "did you mean 'guide_camera.exposure_s'"),
    ('[mount]\nguide_rate = "fast"\n', "mount.guide_rate: expected a number, found a string ('fast')"),
])
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path, text, needle):
    p = write(tmp_path, text)
    r = subprocess.run([sys.executable, "-m", "fieldtui", "--config", str(p), "check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_missing_config_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fieldtui", "check", "--config", str(tmp_path / "x.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_guiding_table_is_checked_against_the_engine_settings(tmp_path):
    from fieldtui.guiding.settings import GuideSettings
    cfg = load_config(write(tmp_path, '[guiding]\nra_algorithm = "hysteresis"\nmulti_star = 2\n'))
    s = GuideSettings.from_config(cfg)
    assert s.ra_algorithm == "hysteresis" and s.multi_star == 2 and s.gain == cfg.guide_camera.gain
    with pytest.raises(ConfigError, match="did you mean 'guiding.ra_aggression'"):
        load_config(write(tmp_path, "[guiding]\nra_agression = 0.5\n"))
    with pytest.raises(ConfigError, match="guiding.dec_algorithm: expected one of 'resist_switch', 'predictive'"):
        load_config(write(tmp_path, '[guiding]\ndec_algorithm = "pid"\n'))


def test_exposure_limits_are_validated(tmp_path):
    from fieldtui.imaging.advice import RigLimits

    lim = RigLimits.from_config(load_config())
    assert (lim.longest_sub_s, lim.longest_unguided_s, lim.guided, lim.longest) == (600, 60, True, 600)
    cfg = load_config(write(tmp_path, "[exposure]\nlongest_sub_s = 300\nguided = false\n"))
    assert RigLimits.from_config(cfg).longest == 60
    with pytest.raises(ConfigError, match="exposure.longest_sub_s: expected a positive number"):
        load_config(write(tmp_path, "[exposure]\nlongest_sub_s = 0\n"))
    with pytest.raises(ConfigError, match="exposure.longest_unguided_s: expected at most exposure.longest_sub_s"):
        load_config(write(tmp_path, "[exposure]\nlongest_sub_s = 30\n"))
