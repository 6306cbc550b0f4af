"""The command line: subcommands in one place, --version, --config with a running service."""

import subprocess
import sys

import pytest

import fieldtui
from fieldtui.commands import COMMANDS, build_parser
from fieldtui.commands.running import config_notice


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fieldtui", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_version_is_the_installed_packages():
    r = _run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"fieldtui {fieldtui.__version__}"
    assert fieldtui.__version__[0].isdigit()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_its_module_and_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser(only=name).parse_args([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fieldtui {name}")
    assert "--config FILE" in out


def test_engines_never_import_the_command_line():
    code = ("import sys, fieldtui.imaging.analyze, fieldtui.imaging.metrics, fieldtui.guiding.engine, "
            "fieldtui.guiding.log; bad = [m for m in ('argparse', 'fieldtui.service', 'fieldtui.devices', "
            "'textual') if m in sys.modules]; print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_config_notice_names_the_services_files_and_an_unused_option(tmp_path):
    used = tmp_path / "night.toml"
    other = tmp_path / "other.toml"
    status = {"pid": 4242, "config": ["/defaults/config.toml", str(used)]}
    same = config_notice(status, str(used))
    assert "pid 4242" in same and str(used) in same and "not used" not in same
    diff = config_notice(status, str(other))
    assert f"--config {other} is not used" in diff and "fieldtui service stop" in diff
