import os
from pathlib import Path

import pytest

import fieldtui  # noqa: F401 - first, so numpy gets one BLAS thread as in the app

# Tests never read the developer's own config file.
os.environ["FIELDTUI_USER_CONFIG"] = str(Path(__file__).parent / "no-user-config.toml")



@pytest.fixture(autouse=True)
def _private_runtime(tmp_path_factory, monkeypatch):
    """Every test gets its own runtime folder (socket, lock) and state folder, so no
    test ever talks to a rig service running on this machine, or to another test's."""
    base = tmp_path_factory.mktemp("rt")
    monkeypatch.setenv("FIELDTUI_RUNTIME_DIR", str(base / "run"))
    monkeypatch.setenv("FIELDTUI_STATE_DIR", str(base / "state"))


TESTDATA = Path(os.environ.get("FIELDTUI_TESTDATA", Path(__file__).resolve().parents[2] / "shared" / "testdata"))


@pytest.fixture
def data_root(tmp_path):
    return tmp_path / "astro"


@pytest.fixture
def cfg(data_root):
    from fieldtui.config import load_config
    return load_config(overrides={"storage": {"data_root": str(data_root)}})


@pytest.fixture
def config_file(tmp_path, data_root):
    """A user config file putting the data root in a temporary folder."""
    p = tmp_path / "test.toml"
    p.write_text(f'[storage]\ndata_root = "{data_root}"\n')
    return p
