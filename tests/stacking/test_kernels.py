"""The compiled kernels are used only when built from the current C source."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fieldtui import _kernels
from fieldtui.imaging import stars as stars_mod
from fieldtui.stacking import rcd as rcd_mod

comb = importlib.import_module("fieldtui.stacking.combine")
SRC = Path(rcd_mod.__file__).parent


def test_the_modules_expect_the_digest_of_their_c_source():
    # edit _rcd.c, _combine.c or _sky.c and this fails until the module states the new digest;
    # then every build made before the edit is left aside until rebuilt
    assert rcd_mod.RCD_SHA == _kernels.source_sha((SRC / "_rcd.c").read_bytes())
    assert comb.COMBINE_SHA == _kernels.source_sha((SRC / "_combine.c").read_bytes())
    assert stars_mod.SKY_SHA == _kernels.source_sha((Path(stars_mod.__file__).parent / "_sky.c").read_bytes())


def test_a_current_build_is_used():
    for mod, attr, name, sha in ((rcd_mod, "_ckernel", "stacking._rcd", rcd_mod.RCD_SHA),
                                 (comb, "_ckernel", "stacking._combine", comb.COMBINE_SHA),
                                 (stars_mod, "_sky", "imaging._sky", stars_mod.SKY_SHA)):
        try:
            ext = importlib.import_module(f"fieldtui.{name}")
        except ImportError:
            continue  # no C compiler: nothing to use
        if getattr(ext, "SOURCE_SHA", "") == sha:
            assert getattr(mod, attr) is ext, name
            assert _kernels.load(name, sha) is ext and name not in _kernels.STALE


@pytest.mark.parametrize("built", ["0123456789abcdef", None])  # another source; a build from before digests
def test_a_stale_rcd_extension_is_not_used(monkeypatch, built):
    calls = []

    def rcd_image(*args):  # what an old kernel might do: other arithmetic, here zeros
        calls.append(1)
        np.asarray(args[9])[...] = 0

    fake = types.ModuleType("fieldtui.stacking._rcd")
    fake.rcd_image = rcd_image
    if built is not None:
        fake.SOURCE_SHA = built
    rng = np.random.default_rng(4)
    mosaic = rng.normal(300, 40, (64, 48)).astype(np.float32)
    want = rcd_mod.rcd_numpy(mosaic, "GRBG")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "fieldtui.stacking._rcd", fake)
        with pytest.warns(RuntimeWarning, match="pip install -e"):
            assert _kernels.load("stacking._rcd", rcd_mod.RCD_SHA) is None
        assert "stacking._rcd" in _kernels.STALE
        # the module as imported with that build: numpy runs, with the right colours
        try:
            with pytest.warns(RuntimeWarning):
                importlib.reload(rcd_mod)
            assert rcd_mod._ckernel is None
            got = rcd_mod.rcd(mosaic, "GRBG")
            assert not calls and np.array_equal(got, want)
            # the same fake carrying the current digest is taken: the check is the digest
            fake.SOURCE_SHA = rcd_mod.RCD_SHA
            assert _kernels.load("stacking._rcd", rcd_mod.RCD_SHA) is fake
        finally:
            m.undo()
            importlib.reload(rcd_mod)
    assert "stacking._rcd" not in _kernels.STALE
