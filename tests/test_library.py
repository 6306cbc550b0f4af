"""The frame library: indexed from files alone, rebuilt to the same index."""

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from fieldtui.library import Library

PLAN = """
[plan]
name = "lib"
[[target]]
name = "Field"
ra_deg = 30.0
dec_deg = 40.0
[[target.sequence]]
type = "light"
count = 2
exposure = 30
iso = 800
[[target.sequence]]
type = "dark"
count = 2
[[target.sequence]]
type = "flat"
count = 2
"""


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lib")
    (tmp / "small.toml").write_text("[main_camera]\nwidth = 640\nheight = 480\n[storage]\nmin_free_gb = 0.0\n")
    (tmp / "plan.toml").write_text(PLAN)
    data = tmp / "data"
    p = subprocess.run([sys.executable, "-m", "fieldtui", "--config", str(tmp / "small.toml"), "capture",
                        str(tmp / "plan.toml"), "--fast", "--json", "--data", str(data)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    from fieldtui.devices.dng import write_dng
    raw = data / "2026-11-20" / "Field" / "dark" / "IMG_0001.dng"
    raw.parent.mkdir(parents=True)
    write_dng(raw, np.full((64, 96), 2048, np.uint16), bayer="RGGB", black_level=2048, white_level=15000,
              model="Canon EOS 550D", exposure_s=2.0, iso=800, when="2026:11:20 22:00:00")
    return data


def test_index_from_files_and_rebuilt_to_the_same(captured, tmp_path):
    lib = Library(tmp_path / "a.sqlite")
    res = lib.scan(captured)
    assert res["indexed"] == 7 and res["skipped"] == 0
    recs = {r["path"].split("/")[-1]: r for r in lib.frames()}
    light = next(r for n, r in recs.items() if "_light_" in n)
    assert (light["type"], light["iso"], light["exposure"], light["temperature"], light["object"]) == \
        ("light", 800, 30.0, 13.0, "Field")
    assert light["focus"] is not None and light["night"] is not None
    flats = [r for r in recs.values() if r["type"] == "flat"]
    assert all(0.45 <= r["mean_frac"] <= 0.55 and r["clipped_frac"] == 0 for r in flats)
    raw = recs["IMG_0001.dng"]                      # raw EXIF through rawpy, type from its folder
    assert (raw["type"], raw["iso"], raw["night"]) == ("dark", 800, "2026-11-20")
    assert raw["exposure"] == pytest.approx(2.0)
    before = lib.frames()
    assert lib.scan(captured)["unchanged"] == 7     # nothing changed: nothing read again
    lib.close()
    # from the files alone, into a fresh database, and rebuilt in place
    fresh = Library(tmp_path / "b.sqlite")
    fresh.scan(captured)
    assert fresh.frames() == before
    fresh.scan(captured, rebuild=True)
    assert fresh.frames() == before
    # a file gone leaves the index
    gone = next(p for p in captured.rglob("*_dark_*0002.fits"))
    gone.rename(gone.with_suffix(".bak"))
    try:
        assert fresh.scan(captured)["removed"] == 1 and len(fresh.frames()) == 6
    finally:
        gone.with_suffix(".bak").rename(gone)
    assert fresh.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_library_check_command(captured, tmp_path):
    p = subprocess.run([sys.executable, "-m", "fieldtui", "library", "check", str(captured), "--json",
                        "--db", str(tmp_path / "c.sqlite")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1               # 2 of each: the rules want 10
    (s,) = json.loads(p.stdout)
    states = {r["rule"]: (r["state"], r["have"]) for r in s["rules"]}
    assert states["darks"] == ("missing", 2) and states["flats"] == ("missing", 2)
    assert states["biases"] == ("missing", 0)


def test_library_check_takes_the_dark_temperature_tolerance_from_the_config(tmp_path):
    from tests.capture.libframes import write_frames
    root = tmp_path / "data"
    write_frames(root, "2026-11-29", "M42", "light", 10, exposure=60, iso=800, temp=10.0)
    write_frames(root, "2026-11-29", "M42", "dark", 10, exposure=60, iso=800, temp=13.0)   # 3 °C warmer
    conf = tmp_path / "wide.toml"
    conf.write_text("[plan]\ndark_temp_tolerance_c = 5.0\n")

    def darks(*extra):
        p = subprocess.run([sys.executable, "-m", "fieldtui", *extra, "library", "check", str(root), "--json",
                            "--db", str(tmp_path / "c.sqlite")], capture_output=True, text=True, timeout=120)
        (s,) = json.loads(p.stdout)
        return {r["rule"]: r["state"] for r in s["rules"]}["darks"]

    assert darks() != "done"                          # the default 2 °C: the darks do not match
    assert darks("--config", str(conf)) == "done"     # the config's 5 °C: they do
