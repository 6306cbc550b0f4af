"""Masters kept in the frame library and reused across nights where the rules allow:
bias and dark from another night, never a flat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldtui.frame import Frame
from fieldtui.imaging.io import write_fits
from fieldtui.library import Library, default_db, source_hash
from fieldtui.stacking import StackOptions, stack, synth
from fieldtui.stacking.pipeline import frame_files, library_masters

from .conftest import random_mats

N1, N2, N3 = "2026-11-20", "2026-11-21", "2026-11-22"


def _night(root: Path, night: str, cam, fld, mats, rng, kinds, temp=-10.0, n_cal=3) -> Path:
    base = root / night / "M31"

    def save(kind, i, a, exp):
        write_fits(base / kind / f"{kind}_{i:03d}.fits",
                   Frame(data=a, exposure=exp, kind=kind, iso=800, temperature=temp))

    for i, m in enumerate(mats):
        save("light", i, synth.light(cam, fld, 60.0, m, rng), 60.0)
    for i in range(n_cal):
        if "dark" in kinds:
            save("dark", i, synth.dark(cam, 60.0, rng), 60.0)
        if "bias" in kinds:
            save("bias", i, synth.dark(cam, 1 / 4000, rng), 0.00025)
        if "flat" in kinds:
            save("flat", i, synth.flat(cam, rng), 1.0)
    return base


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("masters") / "astro"
    cam = synth.Camera(width=240, height=180, seed=61, hot_pixels=30)
    fld = synth.Field.random(cam, n=45, seed=62)
    rng = np.random.default_rng(63)
    b1 = _night(root, N1, cam, fld, random_mats(cam, 3, seed=64, shift=4, rot=0.3), rng, ("dark", "bias", "flat"))
    b2 = _night(root, N2, cam, fld, random_mats(cam, 3, seed=65, shift=4, rot=0.3), rng, ("flat",))
    b3 = _night(root, N3, cam, fld, random_mats(cam, 3, seed=66, shift=4, rot=0.3), rng, ())
    return root, b1, b2, b3


def _opts(db, **kw):
    return StackOptions(library=str(db), rejection=StackOptions().rejection, **kw)


def test_masters_reused_across_nights_bias_and_dark_but_never_a_flat(nights):
    root, b1, b2, b3 = nights
    db = default_db(root)
    r1 = stack([b1 / "light"], darks=[b1 / "dark"], flats=[b1 / "flat"], biases=[b1 / "bias"], options=_opts(db))
    assert {k: m["reused"] for k, m in r1.masters.items()} == {"bias": False, "dark": False, "flat": False}
    lib = Library(db)
    try:
        masters = lib.frames("master = 1")
        assert sorted(m["type"] for m in masters) == ["bias", "dark", "flat"]
        by = {m["type"]: m for m in masters}
        assert by["dark"]["exposure"] == 60.0 and by["dark"]["iso"] == 800 and by["dark"]["temperature"] == -10.0
        assert by["flat"]["night"] == N1
        assert by["bias"]["source"] == source_hash(frame_files([b1 / "bias"]))
    finally:
        lib.close()
    # the same night again: the masters made from exactly these frames are reused
    again = stack([b1 / "light"], darks=[b1 / "dark"], flats=[b1 / "flat"], biases=[b1 / "bias"], options=_opts(db))
    assert all(m["reused"] for m in again.masters.values())
    assert np.allclose(again.image, r1.image, rtol=0, atol=1e-3)

    # night 2: its own flats, no bias, no dark: bias and dark come from night 1's masters
    r2 = stack([b2 / "light"], flats=[b2 / "flat"], options=_opts(db))
    assert r2.masters["bias"] == {"path": by["bias"]["path"], "reused": True}
    assert r2.masters["dark"] == {"path": by["dark"]["path"], "reused": True}
    assert r2.masters["flat"]["reused"] is False and r2.masters["flat"]["path"] != by["flat"]["path"]
    # known answer: the same as giving night 1's bias and dark frames by hand, without a library
    ref = stack([b2 / "light"], darks=[b1 / "dark"], biases=[b1 / "bias"], flats=[b2 / "flat"],
                options=StackOptions())
    assert ref.image.shape == r2.image.shape
    assert np.nanmax(np.abs(ref.image - r2.image)) < 1e-3 * float(np.nanmax(np.abs(ref.image)))

    # night 2 again without naming its flats: its own master flat from the library
    r2b = stack([b2 / "light"], options=_opts(db))
    assert r2b.masters["flat"] == {"path": r2.masters["flat"]["path"], "reused": True}
    # night 3 took no flats: no other night's flat is used, and the user is told
    r3 = stack([b3 / "light"], options=_opts(db))
    assert "flat" not in r3.masters and r3.masters["bias"]["reused"] and r3.masters["dark"]["reused"]
    assert any("never reused across nights" in w for w in r3.warnings)
    assert "F" not in r3.header["CALSTAT"] and "D" in r3.header["CALSTAT"]


def test_find_master_rules(tmp_path):
    lib = Library(tmp_path / "lib.sqlite")
    for p in ("a", "b", "c", "d", "e"):
        (tmp_path / p).write_bytes(b"")
    base = {"size": 0, "mtime": 1.0, "focus": None, "mean_frac": None, "clipped_frac": None, "camera": None,
            "object": None, "date_obs": None, "source": "x", "filter": "", "master": True}
    lib.add([
        base | {"path": str(tmp_path / "a"), "type": "dark", "iso": 800, "gain": None, "exposure": 60.0,
                "temperature": -10.0, "night": N1},
        base | {"path": str(tmp_path / "b"), "type": "bias", "iso": 800, "gain": None, "exposure": 0.0,
                "temperature": 5.0, "night": N1},
        base | {"path": str(tmp_path / "c"), "type": "flat", "iso": 800, "gain": None, "exposure": 1.0,
                "temperature": None, "night": N1, "filter": "Ha"},
        base | {"path": str(tmp_path / "d"), "type": "bias", "iso": 1600, "gain": None, "exposure": 0.0,
                "temperature": None, "night": N1},
    ])
    f = lib.find_master
    assert f("dark", iso=800, exposure=60.0, temperature=-11.5)["path"].endswith("a")  # within ±2 °C
    assert f("dark", iso=800, exposure=60.0, temperature=-13.0) is None               # too warm a difference
    assert f("dark", iso=800, exposure=120.0, temperature=-10.0) is None              # another exposure
    assert f("dark", iso=400, exposure=60.0) is None                                  # another ISO
    assert f("bias", iso=800, temperature=-20.0)["path"].endswith("b")                # bias: any temperature
    assert f("bias", iso=1600)["path"].endswith("d")
    assert f("flat", iso=800, night=N1, filter="Ha")["path"].endswith("c")
    assert f("flat", iso=800, night=N2, filter="Ha") is None                          # never another night
    assert f("flat", iso=800, night=N1, filter="") is None                            # another filter
    assert f("bias", iso=800, source="y") is None                                     # not from these frames
    (tmp_path / "b").unlink()
    assert f("bias", iso=800) is None                                                 # its file is gone
    lib.close()


def test_library_masters_for_the_live_stack(nights):
    root, b1, b2, _ = nights
    db = default_db(root)
    light = frame_files([b2 / "light"])[0]
    from fieldtui.imaging.io import read_frame
    m, info, _ = library_masters(db, read_frame(light))
    if not info:  # the first test makes the masters; alone, this one makes them itself
        stack([b1 / "light"], darks=[b1 / "dark"], flats=[b1 / "flat"], biases=[b1 / "bias"], options=_opts(db))
        stack([b2 / "light"], flats=[b2 / "flat"], options=_opts(db))
        m, info, _ = library_masters(db, read_frame(light))
    assert sorted(info) == ["bias", "dark", "flat"]
    assert m.dark.shape == (180, 240) and abs(float(np.median(m.flat)) - 1.0) < 0.05
