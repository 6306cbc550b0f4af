"""Reading real files and writing FITS."""

import math
import os

import numpy as np
import pytest
from astropy.io import fits

from fieldtui.frame import Frame
from fieldtui.imaging import frame_metrics
from fieldtui.imaging.io import FrameReadError, read_frame, write_fits


def test_blackmagic_dng_per_channel(testdata):
    f = read_frame(testdata / "raw" / "imageio_Blackmagic.dng")
    assert f.bayer == "RGGB"
    # LibRaw declares 65535; the data are 10-bit codes × 64 and pile up at 1023 × 64
    assert f.black_level == 512 and f.meta["black_level_source"] == "raw metadata"
    assert f.meta["white_level_declared"] == 65535 and f.white_level == 65472
    assert f.meta["white_level_source"] == "data" and f.meta["saturated_pixels"] == np.count_nonzero(f.data >= 65472)
    assert f.data.shape == (2176, 4128) and f.data.dtype == np.uint16
    m = frame_metrics(f)
    ch = m["channels"]
    assert list(ch) == ["R", "G1", "G2", "B"]
    d = f.data
    planes = {"R": d[0::2, 0::2], "G1": d[0::2, 1::2], "G2": d[1::2, 0::2], "B": d[1::2, 1::2]}
    for name, p in planes.items():
        # only the zeros (four dead columns at the right edge) are clipped; read noise below black is not
        assert ch[name]["clipped_black_pct"] == pytest.approx(100 * np.mean(p == 0))
        assert ch[name]["below_black_pct"] == pytest.approx(100 * np.mean(p <= 512))
        assert ch[name]["saturated_pct"] == pytest.approx(100 * np.mean(p >= 65472))
        assert ch[name]["median"] == pytest.approx(float(np.median(p)), abs=0.5)
    # a daylight scene: green brighter than red and blue in the raw
    assert ch["G1"]["median"] > ch["R"]["median"] and ch["G1"]["median"] > ch["B"]["median"]


@pytest.mark.parametrize(
    "name, reason, words",
    [
        ("raw/exiftool_CanonRaw.cr2", "unsupported", "unsupported format"),
        ("raw/exiftool_CanonRaw.cr3", "corrupt", "truncated raw file"),
        ("raw/exiftool_Nikon.nef", "corrupt", "corrupt raw file"),
        ("fits/exiftool_FITS.fits", "corrupt", "truncated or corrupt FITS"),
        ("raw/exiftool_DNG.dng", "empty", "empty image"),
        ("raw/exiftool_Panasonic.rw2", "empty", "empty image"),
    ],
)
def test_broken_files_each_get_their_own_message(testdata, name, reason, words):
    with pytest.raises(FrameReadError) as exc:
        read_frame(testdata / name)
    assert exc.value.reason == reason
    msg = str(exc.value)
    assert words in msg and "\n" not in msg
    assert msg.startswith(os.path.basename(name))


def test_a_fits_file_cut_short_says_how_much_of_its_data_is_there(tmp_path):
    """A copy or a write cut short: the header is whole and the data stop early. The
    message says so with the bytes found and announced (before: numpy's 'cannot reshape
    array of size … into shape …')."""
    path = tmp_path / "cut.fits"
    write_fits(path, Frame(data=np.full((100, 120), 1000, np.uint16), exposure=30.0))
    whole = path.read_bytes()
    start = whole.index(b"END" + b" " * 77) // 2880 * 2880 + 2880   # the data's first block
    path.write_bytes(whole[:start + 5000])
    with pytest.raises(FrameReadError) as exc:
        read_frame(path)
    assert exc.value.reason == "corrupt"
    assert str(exc.value) == "cut.fits: truncated FITS file: the data stops after 5000 of its 24000 bytes"
    path.write_bytes(whole)
    assert read_frame(path).data.shape == (100, 120)


def test_stripped_dng_is_empty_even_after_reading_another_raw(testdata):
    # LibRaw hands back stale pixels for a stripped file read after a good one
    read_frame(testdata / "raw" / "imageio_Blackmagic.dng")
    with pytest.raises(FrameReadError) as exc:
        read_frame(testdata / "raw" / "exiftool_DNG.dng")
    assert exc.value.reason == "empty"
    assert "underexposed" not in str(exc.value)


def test_raw_stack_is_read_as_mono(testdata):
    f = read_frame(testdata / "raw" / "imageio_Nikon_uncompressed.nef")
    assert f.bayer is None and f.data.ndim == 2 and f.meta["raw_type"] == "stack"
    assert f.white_level >= f.data.max()


def test_not_found_and_unsupported(tmp_path):
    with pytest.raises(FrameReadError) as e1:
        read_frame(tmp_path / "nope.cr2")
    assert e1.value.reason == "not_found" and "not found" in str(e1.value)
    p = tmp_path / "notes.txt"
    p.write_text("hello, not an image")
    with pytest.raises(FrameReadError) as e2:
        read_frame(p)
    assert e2.value.reason == "unsupported"
    z = tmp_path / "zero.fits"
    z.write_bytes(b"")
    with pytest.raises(FrameReadError) as e3:
        read_frame(z)
    assert e3.value.reason == "corrupt"
    nodata = tmp_path / "header_only.fits"
    fits.PrimaryHDU().writeto(nodata)
    with pytest.raises(FrameReadError) as e4:
        read_frame(nodata)
    assert e4.value.reason == "no_image"
    allzero = tmp_path / "zeros.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.uint16)).writeto(allzero)
    with pytest.raises(FrameReadError) as e5:
        read_frame(allzero)
    assert e5.value.reason == "empty"


def test_m13_fits_header(testdata):
    f = read_frame(testdata / "fits" / "astropydata_M13_blue_0001.fits")
    assert f.exposure == 5.0 and f.pixel_um == pytest.approx(6.45)
    assert f.kind == "light" and f.data.dtype == np.uint16 and f.data.dtype.isnative
    assert f.meta["PEDESTAL"] == -500 and f.black_level == 500


def test_write_fits_round_trip_and_atomic(tmp_path, rng):
    data = rng.integers(0, 16383, (60, 80)).astype(np.uint16)
    f = Frame(
        data=data, exposure=180.0, iso=800, bayer="RGGB", temperature=11.5, kind="dark", pixel_um=4.3,
        focal_mm=2000.0, timestamp=1795000000.25, black_level=2048, white_level=16383,
        meta={"object": "M33", "filter": "L", "ra": 23.46, "dec": 30.66},
    )
    out = tmp_path / "night" / "M33_Dark_180s_0001.fits"
    write_fits(out, f)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left
    h = fits.getheader(out)
    assert h["IMAGETYP"] == "Dark Frame" and h["EXPTIME"] == 180.0 and h["ISOSPEED"] == 800
    assert h["CCD-TEMP"] == 11.5 and h["BAYERPAT"] == "RGGB" and h["XPIXSZ"] == 4.3
    assert h["FOCALLEN"] == 2000.0 and h["OBJECT"] == "M33" and h["FILTER"] == "L"
    assert h["RA"] == 23.46 and h["DEC"] == 30.66 and h["DATE-OBS"].startswith("2026-11-18T")
    back = read_frame(out)
    assert np.array_equal(back.data, data) and back.data.dtype == np.uint16
    assert back.kind == "dark" and back.bayer == "RGGB" and back.iso == 800
    assert back.temperature == 11.5 and back.exposure == 180.0 and back.black_level == 2048
    assert math.isclose(back.timestamp, f.timestamp, abs_tol=0.002)
    # overwriting replaces the file whole
    write_fits(out, Frame(data=data[:10, :10], exposure=1.0))
    assert read_frame(out).data.shape == (10, 10)
