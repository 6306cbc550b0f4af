"""Saving an equipment choice to the user's config file: round trip through load_config, the
user's other keys and comments kept, invalid choices refused with the file untouched."""

from __future__ import annotations

import pytest

from fieldtui.config import ConfigError, load_config
from fieldtui.userconfig import ChoiceError, choice_keys, save_choice

USER = """# my rig
[site]
latitude = 45.5  # home
timezone = "Europe/Paris"

[mount]
# the old hand controller
baud = 19200
"""


def test_a_serial_mount_choice_round_trips_and_keeps_the_rest(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(USER)
    role, keys = choice_keys({"kind": "serial", "where": "/dev/ttyUSB0", "what": "NexStar 4.21",
                              "answers": "nexstar"})
    assert (role, keys) == ("mount", {"driver": "nexstar", "port": "/dev/ttyUSB0"})
    save_choice(role, keys, path)
    text = path.read_text()
    for kept in ("# my rig", "latitude = 45.5  # home", "# the old hand controller", "baud = 19200"):
        assert kept in text
    cfg = load_config(path, user=False)
    assert (cfg.mount.driver, cfg.mount.port, cfg.mount.baud) == ("nexstar", "/dev/ttyUSB0", 19200)
    assert (cfg.site.latitude, cfg.site.timezone) == (45.5, "Europe/Paris")


def test_camera_choices_name_the_model_and_create_the_file(tmp_path):
    path = tmp_path / "sub" / "config.toml"
    save_choice(*choice_keys({"kind": "zwo", "where": "index 1", "what": "ZWO ASI120MM Mini"}), path)
    save_choice(*choice_keys({"kind": "gphoto2", "where": "usb:001,004", "what": "Canon EOS 600D"}), path)
    cfg = load_config(path, user=False)
    assert (cfg.guide_camera.driver, cfg.guide_camera.index, cfg.guide_camera.model) == (
        "zwo", 1, "ZWO ASI120MM Mini")
    assert (cfg.main_camera.driver, cfg.main_camera.model) == ("gphoto2", "Canon EOS 600D")


@pytest.mark.parametrize("found", [
    {"kind": "serial", "where": "/dev/ttyS0", "what": "no mount answered", "answers": ""},
    {"kind": "serial", "where": "/dev/ttyUSB0", "what": "in use by the configured mount", "answers": ""},
    {"kind": "-", "where": "-", "what": "discovery failed: boom", "answers": ""},
    {"kind": "zwo", "where": "-", "what": "listing failed (x)", "answers": ""},
])
def test_what_cannot_serve_a_role_is_refused(found):
    with pytest.raises(ChoiceError):
        choice_keys(found)


def test_a_choice_the_config_would_refuse_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "config.toml"
    before = USER + 'emulate = "lx200"\n'  # only the simulated mount is emulated
    path.write_text(before)
    with pytest.raises(ConfigError, match="mount.emulate"):
        save_choice("mount", {"driver": "lx200", "port": "/dev/ttyUSB0"}, path)
    assert path.read_text() == before
    with pytest.raises(ConfigError, match="mount.port"):
        save_choice("mount", {"driver": "lx200", "port": ""}, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no leftover temporary file


def test_a_broken_user_file_is_not_overwritten(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[mount\nbaud = 1\n")
    with pytest.raises(ConfigError, match="syntax"):
        save_choice("mount", {"driver": "lx200", "port": "/dev/ttyUSB0"}, path)
    assert path.read_text() == "[mount\nbaud = 1\n"


def test_a_config_file_given_on_the_command_line_that_sets_the_role_is_named(tmp_path):
    from fieldtui.userconfig import shadowed_by
    night = tmp_path / "night.toml"
    night.write_text('[mount]\ndriver = "lx200"\nport = "/dev/ttyUSB1"\n')
    keys = {"driver": "nexstar", "port": "/dev/ttyUSB0"}
    assert shadowed_by(night, "mount", keys) == f"{night} (mount.driver, mount.port)"
    assert shadowed_by(night, "mount", {"driver": "lx200", "port": "/dev/ttyUSB1"}) == ""
    assert shadowed_by(night, "guide_camera", {"driver": "zwo"}) == ""
    assert shadowed_by(None, "mount", keys) == ""
