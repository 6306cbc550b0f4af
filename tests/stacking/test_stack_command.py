"""``fieldtui stack``: folders or a night's folder in, a FITS, a preview and a JSON report out."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from fieldtui.commands import stack as stack_cmd
from fieldtui.stacking import synth

from .conftest import random_mats, write_set


@pytest.fixture(scope="module")
def mono_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mono")
    cam = synth.Camera(width=256, height=192, seed=71)
    write_set(folder, cam, synth.Field.random(cam, n=70, seed=72), random_mats(cam, 5, seed=73), n_cal=4)
    return folder


def test_json_report_with_a_corrupt_frame_skipped(mono_set, tmp_path, capsys):
    bad = mono_set / "light" / "zz_truncated.fits"
    good = next((mono_set / "light").iterdir()).read_bytes()
    bad.write_bytes(good[: len(good) // 3])
    try:
        out = tmp_path / "m.fits"
        rc = stack_cmd.main(["--lights", str(mono_set / "light"), "--darks", str(mono_set / "dark"),
                             "--flats", str(mono_set / "flat"), "--biases", str(mono_set / "bias"),
                             "--out", str(out), "--json", "--rejection", "sigma"])
    finally:
        bad.unlink()
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["output"] == str(out) and rep["frames_used"] == 5
    assert [r["file"] for r in rep["frames_rejected"]] == [str(bad)]
    assert "FITS" in rep["frames_rejected"][0]["reason"]  # the reader's one-line reason
    assert rep["seconds"] > 0
    with fits.open(out) as hdul:
        h = hdul[0].header
        assert hdul[0].data.dtype == np.dtype(">f4") and h["BITPIX"] == -32
        assert h["STACKCNT"] == 5 and h["LIVETIME"] == pytest.approx(300.0) and h["CALSTAT"] == "BDF"
        assert h["REJECT"] == "sigma" and h["IMAGETYP"] == "Light Frame"
        assert hdul[0].data.shape == tuple(rep["shape"])
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_night_folder_of_dslr_raw_files(dslr_night, tmp_path):
    out = tmp_path / "night.fits"
    r = subprocess.run([sys.executable, "-m", "fieldtui", "stack", str(dslr_night), "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["frames_used"] == 8 and rep["frames_rejected"] == []
    with fits.open(out) as hdul:
        assert hdul[0].data.shape[0] == 3 and hdul[0].header["CFA-PAT"] == "RGGB"
        assert hdul[0].header["ISOSPEED"] == 800


def test_text_output_and_bad_arguments(mono_set, tmp_path, capsys):
    rc = stack_cmd.main(["--lights", str(mono_set / "light"), "--out", str(tmp_path / "t.fits"), "--no-preview"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "5 frames stacked" in out and not (tmp_path / "t.png").exists()
    assert stack_cmd.main(["--out", str(tmp_path / "x.fits")]) == 2
    assert "no light frames" in capsys.readouterr().err
    assert stack_cmd.main(["--lights", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    # nothing stackable: exit 1 with the reason, and JSON says so
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a frame")
    assert stack_cmd.main(["--lights", str(junk), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["output"] is None


def test_engine_imports_no_command_line_service_or_ui():
    # (argparse itself comes in with scipy.spatial and scipy.ndimage, so the sources are checked for it)
    code = ("import sys, fieldtui.stacking, fieldtui.stacking.pipeline; bad = [m for m in ("
            "'fieldtui.service', 'fieldtui.devices', 'fieldtui.commands', 'textual') if m in sys.modules]; "
            "print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
    import fieldtui.stacking
    from pathlib import Path
    for src in Path(fieldtui.stacking.__file__).parent.glob("*.py"):
        assert "argparse" not in src.read_text(), src


def test_masters_saved_and_reused_give_the_same_stack(mono_set, tmp_path, capsys):
    kw = ["--lights", str(mono_set / "light"), "--json", "--no-preview", "--reference",
          str(sorted((mono_set / "light").iterdir())[0])]
    assert stack_cmd.main([*kw, "--darks", str(mono_set / "dark"), "--flats", str(mono_set / "flat"),
                           "--biases", str(mono_set / "bias"), "--save-masters", str(tmp_path / "m"),
                           "--out", str(tmp_path / "a.fits")]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["master_bias.fits", "master_dark.fits", "master_flat.fits"]
    with fits.open(tmp_path / "m" / "master_flat.fits") as h:
        assert h[0].header["IMAGETYP"] == "Master Flat"
        assert np.nanmedian(h[0].data) == pytest.approx(1.0, abs=0.01)
    assert stack_cmd.main([*kw, "--master-bias", str(tmp_path / "m" / "master_bias.fits"),
                           "--master-dark", str(tmp_path / "m" / "master_dark.fits"),
                           "--master-flat", str(tmp_path / "m" / "master_flat.fits"),
                           "--out", str(tmp_path / "b.fits")]) == 0
    a = fits.getdata(tmp_path / "a.fits")
    b = fits.getdata(tmp_path / "b.fits")
    assert a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=0.05)


def test_stack_command_loads_no_jit_compiler_nor_ui(mono_set, tmp_path):
    # numba and its LLVM were 0.13 GB of the stacking process's memory: with the compiled
    # kernel built, a whole `fieldtui stack` run never imports them (nor Textual, nor the service)
    import importlib
    if importlib.import_module("fieldtui.stacking.combine")._ckernel is None:
        pytest.skip("the C kernel is not built (numba's runs)")
    code = ("import sys; from fieldtui.commands import main; rc = main(sys.argv[1:]); "
            "print('LOADED=' + ','.join(m for m in ('numba', 'llvmlite', 'textual', 'fieldtui.ui', "
            "'fieldtui.service') if m in sys.modules)); sys.exit(rc)")
    out = tmp_path / "s.fits"
    r = subprocess.run([sys.executable, "-c", code, "stack", "--lights", str(mono_set / "light"), "--darks",
                        str(mono_set / "dark"), "--flats", str(mono_set / "flat"), "--out", str(out),
                        "--no-preview", "--no-library"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.exists()
    assert r.stdout.strip().splitlines()[-1] == "LOADED="
