"""Exposure advice from metrics."""

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
    # target 8 % of 14335 = 1147 above black, the sky sits ~30 above: ~38x, capped at 32x
    assert "clipped at black" in line
    assert "raise exposure to at least 1920 s" in line
    assert "ISO to 25600" not in line


def test_moderately_underexposed_light(rng):
    f = _dslr(rng, level=380.0, exposure=60.0, iso=800)
    m = frame_metrics(f)
    assert m["left_edge_visible"]  # 12 sigma above black, but only 2.7 % of the range
    (line,) = advise(m)
    assert line.startswith("exposure OK")
    f = _dslr(rng, level=60.0, exposure=60.0, iso=800)
    line = advise(frame_metrics(f))[0]
    # 1147 / ~60 = 19x: 1150 s, or ISO 15200 -> beyond useful ISO, so no ISO hint
    assert "raise exposure to about" in line
    factor_s = float(line.split("to about ")[1].split(" s")[0])
    assert factor_s == pytest.approx(60 * 1147 / 60, rel=0.12)


def test_iso_suggestion(rng):
    f = _dslr(rng, level=300.0, exposure=60.0, iso=400, sigma=100)
    m = frame_metrics(f)
    assert not m["left_edge_visible"]
    line = advise(m)[0]
    # target max(6 left widths ~ 600, 1147) = 1147 -> factor ~3.8: 230 s or ISO 1600
    assert "or ISO to 1600" in line


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
