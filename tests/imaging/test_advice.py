"""Exposure advice from metrics."""

import re

import numpy as np
import pytest

from fieldtui.frame import Frame
from fieldtui.imaging import frame_metrics
from fieldtui.imaging.advice import advise, nice_iso, nice_seconds


def _dslr(rng, level, exposure=60.0, iso=800, black=2048, sigma=30.0, shape=(400, 600)):
    d = rng.normal(black + level, sigma, shape).round()
    d = np.clip(d, black, 16383).astype(np.uint16)
    return Frame(data=d, exposure=exposure, iso=iso, bayer="RGGB", black_level=black, white_level=16383)


def test_underexposed_light_gets_a_factor_from_the_histogram(rng):
    f = _dslr(rng, level=30.0)  # the sky 1 sigma above black: heavy clipping
    m = frame_metrics(f)
    assert m["clipped_black_pct"] > 10
    (line,) = advise(m)
    # clipped at black below the median - 1 sigma: the left width is sigma (30); the sky
    # must sit 6 widths (180) above black, it sits 30 above: 6x, 360 s or ISO 4800 -> 5000
    assert line == "16.4% of pixels clipped at black: raise exposure to about 360 s or ISO to 5000"


def test_moderately_underexposed_light(rng):
    f = _dslr(rng, level=380.0, exposure=60.0, iso=800)
    m = frame_metrics(f)
    assert m["left_edge_visible"]  # 12 sigma above black, but only 2.7 % of the range
    (line,) = advise(m)
    assert line.startswith("exposure OK: sky 380 above black (13 noise widths)")
    f = _dslr(rng, level=60.0, exposure=60.0, iso=800)
    line = advise(frame_metrics(f))[0]
    # 2.3 % below -2 sigma clipped; 6 widths = 180 above black, the sky at 60: 3x
    assert line.endswith("clipped at black: raise exposure to about 180 s or ISO to 2500")


def test_iso_suggestion(rng):
    f = _dslr(rng, level=300.0, exposure=60.0, iso=400, sigma=100)
    m = frame_metrics(f)
    assert not m["left_edge_visible"]
    line = advise(m)[0]
    # nothing clipped (0.13 %) but the 0.5th percentile sits 0.4 sigma above black;
    # 6 left widths (600) against a sky of 300: 2x, 120 s or ISO 800
    assert line == "sky 300 above black, 3.0 noise widths (aim for 6): raise exposure to about 120 s or ISO to 800"


def test_overexposed_light(rng):
    f = _dslr(rng, level=10000.0)
    line = advise(frame_metrics(f))[0]
    assert "lower exposure" in line


def test_empty_frame_is_empty_not_underexposed():
    f = Frame(data=np.zeros((100, 100), np.uint16), exposure=30, iso=800, bayer="RGGB", black_level=0, white_level=4095)
    m = frame_metrics(f)
    assert m["empty"]
    (line,) = advise(m)
    assert "empty" in line and "underexposed" not in line and "raise" not in line


def test_flat_exposure_factor(rng):
    d = rng.normal(1024 + 3000, 50, (300, 300)).round().astype(np.uint16)
    f = Frame(data=d, exposure=0.5, kind="flat", black_level=1024, white_level=16383, iso=200, bayer="RGGB")
    (line,) = advise(frame_metrics(f))
    # mean at 3000/15359 = 19.5 %; to reach 50 % needs 2.56x: 1.3 s
    assert "flat mean at 20%" in line and "1.3 s" in line
    d = rng.normal(1024 + 7700, 50, (300, 300)).round().astype(np.uint16)
    f = Frame(data=d, exposure=0.5, kind="flat", black_level=1024, white_level=16383)
    assert advise(frame_metrics(f))[0].startswith("flat OK")


def test_dark_must_match_its_lights(rng):
    d = rng.normal(2048, 10, (100, 100)).round().astype(np.uint16)
    f = Frame(data=d, exposure=120, iso=1600, kind="dark", temperature=18.0, black_level=2048, white_level=16383)
    ref = {"exposure": 180.0, "iso": 800, "temperature": 12.0}
    lines = advise(frame_metrics(f), reference=ref)
    text = "\n".join(lines)
    assert "use 180 s" in text
    assert "use ISO 800" in text
    assert "2.0×" in text  # 6 degC warmer: dark current doubled
    ok = Frame(data=d, exposure=180, iso=800, kind="dark", temperature=12.5, black_level=2048, white_level=16383)
    assert advise(frame_metrics(ok), reference=ref) == ["dark OK: matches the reference settings"]
    bias = Frame(data=d, exposure=1.0, iso=800, kind="bias", black_level=2048, white_level=16383)
    assert "shortest exposure" in advise(frame_metrics(bias), reference=ref)[0]


def test_trailing_advice_names_the_axis_only_when_known():
    m = {"kind": "light", "median": 3000, "black_level": 2048, "white_level": 16383, "left_edge_visible": True,
         "left_width": 30, "clipped_black_pct": 0, "saturated_pct": 0,
         "elongation": 1.8, "elongation_pa": 92.0, "stars_measured": 20}
    lines = advise(m)
    assert lines[-1] == "stars elongated 1.8:1 along PA 92°: check balance, polar alignment or guiding"
    lines = advise(m, ra_axis_angle=95.0)
    assert lines[-1] == "stars elongated 1.8:1 along PA 92°, the RA axis: check balance, polar alignment or guiding"
    assert "Dec axis" in advise(m, ra_axis_angle=0.0)[-1]
    assert "RA axis" in advise(m, ra_axis_angle=272.0 - 180)[-1]
    m["elongation"] = 1.1
    assert not any("elongated" in a for a in advise(m))


def test_rounding_helpers():
    assert nice_seconds(183.0) == 180.0
    assert nice_seconds(1.27) == 1.3
    assert nice_seconds(0.0125) == 0.013
    assert nice_iso(1500) == 1600
    assert nice_iso(800) == 800


def test_advice_stays_within_the_longest_sub(rng):
    from fieldtui.imaging.advice import RigLimits

    m = frame_metrics(_dslr(rng, level=30.0))  # needs 6x: 360 s at ISO 800 (see above)
    assert advise(m, limits=RigLimits(longest_sub_s=600))[0].endswith("raise exposure to about 360 s or ISO to 5000")
    # guided up to 180 s: 180 s, and the remaining 2x from ISO
    line = advise(m, limits=RigLimits(longest_sub_s=180))[0]
    assert line.endswith("raise exposure to 180 s, the longest guided sub, and ISO to 1600")
    # unguided, 30 s at most: the 60 s sub is already too long; 12x from ISO is past 6400
    # (8x), so 1.5x is left for binning or more subs
    line = advise(m, limits=RigLimits(longest_sub_s=180, longest_unguided_s=30, guided=False))[0]
    assert "shorten subs to 30 s, the longest unguided sub, ISO 6400; the sky would still be 1.5× short" in line
    line = advise(m, limits=RigLimits(longest_sub_s=180, longest_unguided_s=60, guided=False))[0]
    assert line.endswith("keep 60 s subs, the longest unguided, and ISO to 5000")
    # beyond the rig: 6x needed at ISO 3200 with 120 s subs -> 2x from 120 s, 2x from ISO 6400,
    # still 1.5x short, and the levers left are named
    m = frame_metrics(_dslr(rng, level=10.0, iso=3200, sigma=10.0))
    line = advise(m, limits=RigLimits(longest_sub_s=120))[0]
    assert "raise exposure to 120 s, the longest guided sub, ISO 6400" in line
    assert "the sky would still be 1.5× short: bin 2×2, or take more subs" in line
    # whatever the sky, no sub longer than the rig's longest
    for lim in (RigLimits(longest_sub_s=120), RigLimits(longest_sub_s=300, longest_unguided_s=45, guided=False)):
        for lvl in (3.0, 10.0, 30.0, 100.0):
            text = advise(frame_metrics(_dslr(rng, level=lvl, sigma=10.0, exposure=30.0)), limits=lim)[0]
            seconds = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?) s\b", text)]
            assert text.startswith("exposure OK") or seconds, text
            assert max(seconds, default=0) <= lim.longest, text


def test_zeros_from_a_missing_pedestal_are_not_underexposure(tmp_path, rng):
    from astropy.io import fits

    from fieldtui.imaging.io import read_frame

    # 20 s subs, dark-subtracted with no pedestal: the sky's faint half cut at 0
    d = np.clip(rng.normal(8.0, 20.0, (200, 300)), 0, None).round().astype(np.uint16)
    assert np.mean(d == 0) > 0.3
    hdu = fits.PrimaryHDU(d)
    hdu.header["EXPTIME"] = 20.0
    hdu.writeto(tmp_path / "raw_or_calibrated.fits")
    lines = advise(frame_metrics(read_frame(tmp_path / "raw_or_calibrated.fits")))
    assert lines[0].startswith(f"{100 * np.mean(d == 0):.1f}% of pixels are 0")
    assert "pedestal" in lines[0] and "offset" in lines[0] and "longer exposure would not" in lines[0]
    assert not any("raise exposure" in a for a in lines)
    hdu.header["HISTORY"] = "Calibrated: dark subtracted"
    hdu.writeto(tmp_path / "calibrated.fits")
    lines = advise(frame_metrics(read_frame(tmp_path / "calibrated.fits")))
    assert "calibrated without a pedestal" in lines[0] and "offset" not in lines[0]
    assert not any("raise exposure" in a for a in lines)
    # a camera that records its black level (raw metadata) and cuts there is under-exposed
    f = Frame(data=d, exposure=20.0, iso=800, bayer="RGGB", black_level=0, white_level=16383,
              meta={"black_level_source": "raw metadata"})
    assert "clipped at black: raise exposure" in advise(frame_metrics(f))[0]


def test_flat_without_a_recorded_black_level(tmp_path, rng):
    from astropy.io import fits

    from fieldtui.imaging.io import read_frame

    # a 16-bit flat at 30000 (46 % of 65535) with no black level in the file: its darkest
    # pixels are the flat, not black, so the level is measured from 0
    d = rng.normal(30000, 100, (200, 200)).round().astype(np.uint16)
    hdu = fits.PrimaryHDU(d)
    hdu.header["IMAGETYP"] = "Flat Field"
    hdu.header["EXPTIME"] = 2.0
    hdu.writeto(tmp_path / "flat.fits")
    f = read_frame(tmp_path / "flat.fits")
    assert f.kind == "flat" and f.black_level > 29000  # the estimate, an upper bound
    (line,) = advise(frame_metrics(f))
    assert line == "flat OK: mean at 46% of the range"
