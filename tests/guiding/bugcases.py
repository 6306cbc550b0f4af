"""Where the field bug cases are (``shared/bugcases`` next to the repository,
or ``FIELDTUI_BUGCASES``); tests that need one skip cleanly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find() -> Path:
    env = os.environ.get("FIELDTUI_BUGCASES")
    if env:
        return Path(env)
    env = os.environ.get("FIELDTUI_TESTDATA")
    if env:
        return Path(env).parent / "bugcases"
    here = Path(__file__).resolve()
    for up in here.parents:  # the repository, or a worktree of it, sits beside shared/
        cand = up / "shared" / "bugcases"
        if cand.is_dir():
            return cand
    return here.parents[3] / "shared" / "bugcases"


BUGCASES = _find()


def bugcase(rel: str) -> Path:
    """The bug case file ``rel``, or skip the test when it is not here."""
    p = BUGCASES / rel
    if not p.exists():
        pytest.skip(f"bug case not available ({p})")
    return p
