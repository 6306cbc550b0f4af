import os
from pathlib import Path

import numpy as np
import pytest


def _testdata() -> Path:
    env = os.environ.get("FIELDTUI_TESTDATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "testdata"


TESTDATA = _testdata()


@pytest.fixture
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.skip(f"real test files not available ({TESTDATA})")
    return TESTDATA


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
