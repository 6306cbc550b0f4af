"""Black and white levels from where they are really known, saturation from the data,
colour cubes: the field's bug cases and synthetic frames with hand-computed answers."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from fieldtui.devices.dng import write_dng
from fieldtui.frame import Frame
from fieldtui.imaging import frame_metrics, measure_frame_stars
from fieldtui.imaging.advice import advise
from fieldtui.imaging.io import read_frame
from fieldtui.imaging.levels import BLACK_ESTIMATED, clip_level, estimate_black, settle_white


@pytest.fixture
def bugcases() -> Path:
    """The field's bug cases (../shared/bugcases next to testdata), or skip."""
    import os

    shared = Path(os.environ.get("FIELDTUI_TESTDATA", Path(__file__).resolve().parents[3] / "shared" / "testdata")).parent
    folder = Path(os.environ.get("FIELDTUI_BUGCASES", shared / "bugcases"))
    if not folder.is_dir():
        pytest.skip(f"bug cases not available ({folder})")
    return folder


def _star(shape, x, y, peak, sigma=2.0):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


def _write(path: Path, data, **keys) -> Path:
    hdu = fits.PrimaryHDU(data=data)
    for k, v in keys.items():
        if k == "HISTORY":
            hdu.header.add_history(v)
        else:
            hdu.header[k] = v
    hdu.writeto(path)
    return path


# ---------------------------------------------------------------- bug cases


def test_12bit_data_in_16bit_fits_saturate_at_4095(bugcases):
    f = read_frame(bugcases / "fits_12bit_in_16bit" / "clip12_min.fits")
    assert f.meta["white_level_declared"] == 65535  # what the sample type says
    assert f.white_level == 4095 and f.meta["white_level_source"] == "data"
    m = frame_metrics(f)
    assert np.count_nonzero(f.data >= 4095) == 13
    assert m["saturated_pct"] == pytest.approx(100 * 13 / 4096)  # 0.317 %
    assert round(m["saturated_pct"], 3) == 0.317
    # the star engine is handed the clip, so the flat-topped star is flagged saturated
    stars = measure_frame_stars(f)
    assert stars and stars[0].saturated
    assert m["saturated_stars"] == 1


def test_rgb_cube_is_one_80x60_colour_frame(bugcases):
    f = read_frame(bugcases / "rgb_cube" / "rgb_min.fits")  # NAXIS3 = 3, BZERO 32768
    assert (f.width, f.height) == (80, 60)
    assert f.data.shape == (60, 80, 3) and f.data.dtype == np.uint16
    assert f.meta["colour"] == "RGB"
    m = frame_metrics(f)
    assert (m["width"], m["height"], m["colour"]) == (80, 60, "RGB")
    assert list(m["channels"]) == ["R", "G", "B"]
    for c in m["channels"].values():
        assert c["median"] == 8000 and c["saturated_pct"] == 0
    assert m["median"] == 8000 and m["saturated_pct"] == 0
    assert m["stars"] == 1 and m["saturated_stars"] == 0  # one star, peaking near 35 000 of 65 535


def test_colour_star_saturated_in_one_plane(rng):
    d = np.empty((60, 80, 3), np.uint16)
    for i, peak in enumerate((20000.0, 90000.0, 15000.0)):  # green clips, red and blue do not
        d[..., i] = np.minimum(1000 + 10 * rng.standard_normal((60, 80)) + _star((60, 80), 40.0, 30.0, peak),
                               65535).round().astype(np.uint16)
    f = Frame(data=d, white_level=65535, meta={"colour": "RGB"})
    m = frame_metrics(f)
    assert m["stars"] == 1 and m["saturated_stars"] == 1
    assert m["channels"]["G"]["saturated_pct"] > 0 and m["channels"]["R"]["saturated_pct"] == 0


def test_cube_of_other_plane_counts_is_a_clear_error(tmp_path):
    from fieldtui.imaging.io import FrameReadError

    p = _write(tmp_path / "stack.fits", np.ones((5, 20, 30), np.int16))
    with pytest.raises(FrameReadError) as e:
        read_frame(p)
    assert e.value.reason == "unsupported" and "5 planes" in str(e.value)


# ---------------------------------------------------------------- saturation from the data


def test_float_frame_clipped_at_one(tmp_path, rng):
    d = (0.1 + 0.005 * rng.standard_normal((80, 80)) + _star((80, 80), 40.3, 39.6, 3.0)).astype(np.float32)
    d = np.minimum(d, 1.0)
    n_clip = int(np.count_nonzero(d >= 1.0))
    assert n_clip >= 9
    f = read_frame(_write(tmp_path / "f.fits", d))
    assert f.white_level == 1.0  # floats in 0..1 declare 1.0
    m = frame_metrics(f)
    assert m["saturated_pct"] == pytest.approx(100 * n_clip / d.size)
    assert measure_frame_stars(f)[0].saturated


def test_float_frame_in_adu_clipped_below_anything_declared(tmp_path, rng):
    d = (1000 + 10 * rng.standard_normal((80, 80)) + _star((80, 80), 30.0, 50.0, 90000.0)).astype(np.float32)
    d = np.minimum(d, 50000.0)  # a processed frame, clipped where the camera was
    n_clip = int(np.count_nonzero(d >= 50000.0))
    f = read_frame(_write(tmp_path / "f.fits", d))
    assert f.meta["white_level_declared"] == float("inf")
    assert f.white_level == 50000.0 and f.meta["saturated_pixels"] == n_clip
    assert frame_metrics(f)["saturated_pct"] == pytest.approx(100 * n_clip / d.size)


def test_raw_whose_sensor_clips_below_the_declared_white(tmp_path, rng):
    # the simulated DSLR's raw path: a DNG read back through LibRaw
    h, w = 120, 160
    d = 2048 + 30 * rng.standard_normal((h, w)) + 200 + _star((h, w), 60.2, 70.7, 40000.0, 2.5)
    d += _star((h, w), 120.0, 40.0, 3000.0, 2.0)  # a star well below the clip
    d = np.minimum(d, 13100).round().astype(np.uint16)  # the sensor stops at 13100; the file says 15000
    n_clip = int(np.count_nonzero(d >= 13100))
    p = write_dng(tmp_path / "clip.dng", d, bayer="RGGB", black_level=2048, white_level=15000,
                  model="Sim", exposure_s=60, iso=800)
    f = read_frame(p)
    assert f.meta["white_level_declared"] == 15000
    assert f.white_level == 13100 and f.meta["saturated_pixels"] == n_clip
    m = frame_metrics(f)
    assert m["saturated_pct"] == pytest.approx(100 * n_clip / d.size)
    assert m["white_level_source"] == "data"


def test_no_pile_up_no_clip_found(rng):
    # a star that fades out: the brightest pixels are one or two, not a pile
    d = (500 + 10 * rng.standard_normal((100, 100)) + _star((100, 100), 50.0, 50.0, 30000.0)).round()
    assert clip_level(d.astype(np.uint16), 65535) is None
    assert clip_level(d.astype(np.float32)) is None
    # a flat (dense histogram up to the top) is no pile either
    flat = rng.normal(30000, 150, (200, 200)).round().astype(np.uint16)
    assert clip_level(flat, 65535) is None
    # a clip at the declared level is the declared one
    f = Frame(data=np.minimum(d, 4095).astype(np.uint16), white_level=4095)
    settle_white(f)
    assert f.white_level == 4095 and f.meta["white_level_source"] == "declared"


def test_real_frames_keep_their_declared_white(testdata):
    """No false clip on real frames that do not saturate (M13, the NTT field, Seestar)."""
    for rel in ("fits/astropydata_M13_blue_0001.fits", "fits/sep_image.fits",
                "fits/seestar/seestar_Light_M_94_10.0s_IRCUT_20250326-212221.fit"):
        f = read_frame(testdata / rel)
        assert f.meta["white_level_source"] == "declared", rel


# ---------------------------------------------------------------- black level


def test_black_level_from_pedestal_not_offset(tmp_path, rng):
    sky = rng.normal(559, 20, (100, 100)).round().astype(np.uint16)
    sky[0, 0] = 458
    # OFFSET is a ZWO driver setting (N.I.N.A., ASIAIR write it): not ADU
    f = read_frame(_write(tmp_path / "offset.fits", sky, OFFSET=21))
    assert f.black_level != 21 and f.meta["OFFSET"] == 21
    assert f.meta["black_level_source"] == BLACK_ESTIMATED
    assert 458 <= f.black_level < 559  # at most the darkest pixels
    m = frame_metrics(f)
    text = " ".join(advise(m))
    assert "538 above black" not in text and "not recorded" in text and "raise exposure" not in text
    assert m["left_edge_visible"] is None  # cannot be judged against an estimate
    # PEDESTAL: MaxIm writes the correction to add (-500), PixInsight the amount added (+500)
    for ped in (-500, 500):
        f = read_frame(_write(tmp_path / f"ped{ped}.fits", sky, PEDESTAL=ped, OFFSET=21))
        assert f.black_level == 500 and f.meta["black_level_source"] == "PEDESTAL"
    f = read_frame(_write(tmp_path / "blk.fits", sky, BLKLEVEL=512, OFFSET=21))
    assert f.black_level == 512 and f.meta["black_level_source"] == "BLKLEVEL"


def test_black_level_from_overscan(tmp_path, rng):
    d = rng.normal(900, 15, (50, 70)).round()
    d[:, 60:] = rng.normal(310, 3, (50, 10)).round()  # columns 61..70 are overscan
    f = read_frame(_write(tmp_path / "os.fits", d.astype(np.uint16), BIASSEC="[61:70,1:50]"))
    assert f.meta["black_level_source"] == "overscan"
    assert f.black_level == float(np.median(d[:, 60:]))
    # with DATASEC only the image proper is kept and measured
    f = read_frame(_write(tmp_path / "os2.fits", d.astype(np.uint16), BIASSEC="[61:70,1:50]",
                          DATASEC="[1:60,1:50]"))
    assert (f.width, f.height) == (60, 50) and f.black_level == float(np.median(d[:, 60:]))
    assert frame_metrics(f, stars=False)["median"] == float(np.median(d[:, :60]))
    # a section outside the image is ignored, not an error
    f = read_frame(_write(tmp_path / "os3.fits", d.astype(np.uint16), BIASSEC="[61:90,1:50]"))
    assert f.meta["black_level_source"] == BLACK_ESTIMATED and f.data.shape == (50, 70)


def test_m13_black_level_is_its_pedestal(testdata):
    f = read_frame(testdata / "fits" / "astropydata_M13_blue_0001.fits")  # PEDESTAL = -500
    assert f.black_level == 500 and f.meta["black_level_source"] == "PEDESTAL"
    m = frame_metrics(f, stars=False)
    # dark-calibrated with a pedestal: a third of the pixels sit below 500 (noise), one is 0
    assert m["below_black_pct"] > 25 and m["clipped_black_pct"] < 0.001


def test_estimate_black():
    d = np.full((100, 100), 1000, np.uint16)
    d[:10, :] = 0  # 10 % zeros: the data were cut at 0
    assert estimate_black(d) == 0.0
    ramp = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    assert estimate_black(ramp) == pytest.approx(np.percentile(ramp, 0.1))


def test_analyze_report_says_where_the_levels_come_from(bugcases):
    from fieldtui.imaging.analyze import analyze_file, format_human

    r = analyze_file(bugcases / "fits_12bit_in_16bit" / "clip12_min.fits")
    assert (r["white_level"], r["white_level_source"], r["white_level_declared"]) == (4095, "data", 65535)
    assert r["black_level_source"] == BLACK_ESTIMATED and r["saturated_stars"] == 1
    text = format_human(r)
    assert "white 4095 (clip found in the data; declared 65535)" in text
    assert f"black ≤{r['black_level']:.0f} (not recorded: estimated from the data)" in text
    assert "saturated 0.32%" in text and "left edge unknown" in text
    r = analyze_file(bugcases / "rgb_cube" / "rgb_min.fits")
    assert (r["width"], r["height"], r["colour"]) == (80, 60, "RGB")
    assert "80×60, light, colour RGB" in format_human(r)


def test_scaled_integer_fits_declares_its_scaled_range(testdata):
    # the NTT frame is 16-bit integers with BSCALE 2.9227 and BZERO 3713.67: read as floats
    f = read_frame(testdata / "fits" / "sep_image.fits")
    assert f.data.dtype == np.float32 and f.bit_depth == 16
    assert f.white_level == pytest.approx(3713.66692596 + 2.92273835509 * 32767)
    assert f.meta["white_level_source"] == "declared"


def test_seestar_saturated_stars_found(testdata):
    """The Seestar subtracts a dark in the camera: its clipped pixels stop at 65495-65511, a
    couple per star, too few for a pile-up but within 0.1 % of full scale."""
    folder = testdata / "fits" / "seestar"
    for path in sorted(folder.glob("*.fit")):
        f = read_frame(path)
        m = frame_metrics(f)
        if "20250409" in path.name:  # the night with a few saturated stars
            assert 65535 * 0.999 <= f.white_level < 65535 and f.meta["white_level_source"] == "data"
            assert m["saturated_stars"] >= 1 and m["saturated_pct"] > 0
        else:
            assert f.white_level == 65535 and m["saturated_stars"] == 0 and m["saturated_pct"] == 0
        assert f.meta["black_level_source"] == BLACK_ESTIMATED  # no offset or pedestal keyword


def test_colour_frame_round_trip(tmp_path, bugcases):
    from fieldtui.imaging.io import write_fits

    f = read_frame(bugcases / "rgb_cube" / "rgb_min.fits")
    write_fits(tmp_path / "copy.fits", f)
    with fits.open(tmp_path / "copy.fits") as h:
        assert (h[0].header["NAXIS1"], h[0].header["NAXIS2"], h[0].header["NAXIS3"]) == (80, 60, 3)
    g = read_frame(tmp_path / "copy.fits")
    assert g.meta["colour"] == "RGB" and np.array_equal(g.data, f.data)
    # an estimated black level is not written as if it were known
    assert "BLKLEVEL" not in fits.getheader(tmp_path / "copy.fits")


def test_a_bias_frame_gives_the_black_level_a_file_lacks(tmp_path, rng, capsys):
    import json

    from fieldtui.commands import main

    sky = rng.normal(559, 20, (100, 100)).round().astype(np.uint16)
    light = _write(tmp_path / "light.fits", sky, OFFSET=21, EXPTIME=20.0)
    ped = _write(tmp_path / "ped.fits", sky, PEDESTAL=-450, EXPTIME=20.0)
    bias = _write(tmp_path / "bias.fits", rng.normal(500, 5, (100, 100)).round().astype(np.uint16))
    assert main(["analyze", "--json", "--bias", str(bias), str(light), str(ped)]) == 0
    r, p = json.loads(capsys.readouterr().out)
    assert r["black_level"] == 500 and r["black_level_source"] == "bias bias.fits"
    # sky 59 above black, one noise width 20: 2.95 widths of 6, so 2.03x of 20 s
    assert r["advice"] == ["sky 59 above black, 3.0 noise widths (aim for 6): raise exposure to about 40 s"]
    # a black level the file records is kept
    assert p["black_level"] == 450 and p["black_level_source"] == "PEDESTAL"
    assert main(["analyze", "--bias", str(tmp_path / "nope.fits"), str(light)]) == 1
    assert "--bias nope.fits: file not found" in capsys.readouterr().err


def test_black_estimate_from_a_histogram_is_numpys_percentile():
    # 8- and 16-bit frames: the 0.1th percentile from a bincount when numpy would interpolate
    # between two equal values, numpy's own answer otherwise; always the same number
    from fieldtui.imaging import levels
    rng = np.random.default_rng(0)
    found = 0
    for t in range(400):
        n = int(rng.integers(1, 3000)) if t % 3 else int(rng.integers(1000, 100000))
        a = [rng.integers(0, 65536, n), rng.normal(2000, 10, n).clip(0, 65535), rng.integers(0, 5, n),
             rng.normal(300, 40, n).clip(1, 65535)][t % 4].astype(np.uint8 if t % 4 == 2 else np.uint16)
        want = float(np.percentile(a, levels.DARKEST_PCT))
        got = levels._low_order_pair(a, levels.DARKEST_PCT)
        if got is not None:
            found += 1
            assert got == want, (t, n)
        assert levels.estimate_black(a.reshape(1, -1)) == (0.0 if levels.zero_pile_pct(a) >= 0.1 else want)
    assert 100 < found < 400  # both ways taken
