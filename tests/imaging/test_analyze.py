"""The analyze command, called in-process."""

import json

import numpy as np
from astropy.io import fits

from fieldtui.commands import analyze
from fieldtui.imaging import synth


def _good_fits(path, rng):
    img = np.zeros((300, 400))
    for x, y in [(50, 60), (200, 150), (330, 240), (120, 220), (260, 80)]:
        synth.gaussian_star(img, x + 0.3, y + 0.6, 4e4, 3.0)
    img += 1200 + rng.normal(0, 15, img.shape)
    hdr = fits.Header({"EXPTIME": 30.0, "IMAGETYP": "Light Frame"})
    fits.PrimaryHDU(img.astype(np.uint16), header=hdr).writeto(path)


def test_json_output_with_a_corrupt_file(tmp_path, capsys, rng):
    good = tmp_path / "good.fits"
    _good_fits(good, rng)
    bad = tmp_path / "bad.fits"
    bad.write_bytes(good.read_bytes()[:2000])  # header cut short
    rc = analyze.main([str(bad), str(good), "--json"])
    assert rc == 1
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == [str(bad), str(good)]
    assert "error" in out[0] and "corrupt" in out[0]["error"]
    g = out[1]
    assert g["stars"] == 5
    assert abs(g["fwhm"] - 3.0) < 0.1 and abs(g["hfr"] - 1.5) < 0.05
    assert abs(g["elongation"] - 1.0) < 0.1 and 0 <= g["elongation_pa"] < 180
    assert g["clipped_black_pct"] == 0 and g["saturated_pct"] == 0
    assert abs(g["median"] - 1200) < 2
    assert isinstance(g["advice"], list) and g["advice"]


def test_human_output_and_errors_on_stderr(tmp_path, capsys, rng, testdata):
    good = tmp_path / "good.fits"
    _good_fits(good, rng)
    rc = analyze.main([str(testdata / "raw" / "exiftool_CanonRaw.cr2"), str(good), str(testdata / "raw" / "exiftool_DNG.dng")])
    assert rc == 1
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert any("exiftool_CanonRaw.cr2: unsupported format" in line for line in err)
    assert any("exiftool_DNG.dng: empty image" in line for line in err)
    assert "underexposed" not in cap.out + cap.err
    assert "good.fits" in cap.out and "stars 5" in cap.out


def test_all_good_exits_zero(tmp_path, capsys, rng):
    good = tmp_path / "good.fits"
    _good_fits(good, rng)
    assert analyze.main([str(good)]) == 0


def test_bayer_json_has_channels(testdata, capsys):
    rc = analyze.main([str(testdata / "raw" / "imageio_Blackmagic.dng"), "--json"])
    assert rc == 0
    (o,) = json.loads(capsys.readouterr().out)
    assert set(o["channels"]) == {"R", "G1", "G2", "B"}
    assert o["bayer"] == "RGGB" and o["black_level"] == 512
