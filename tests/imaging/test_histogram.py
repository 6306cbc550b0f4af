"""Histogram statistics on constructed frames with exactly known answers."""

import numpy as np
import pytest

from fieldtui.imaging.histogram import bayer_channels, frame_histogram, stats


def test_exact_clipping_and_saturation_fractions(rng):
    black, white = 1024, 16383
    n = 100_000
    v = rng.normal(3000, 40, n).round().astype(np.uint16)
    v[:2300] = black  # 2.3 % at black
    v[2300:2350] = black - 5  # the floor below black (dead pixels) is clipped too: 0.05 %
    v[5000:5700] = white  # 0.7 % saturated
    st = stats(v, black, white)
    assert st["clipped_black_pct"] == pytest.approx(2.35, abs=1e-9)
    assert st["below_black_pct"] == pytest.approx(2.35, abs=1e-9)
    assert st["floor"] == black - 5
    assert st["saturated_pct"] == pytest.approx(0.7, abs=1e-9)
    assert st["pixels"] == n
    assert st["median"] == pytest.approx(float(np.median(v)))
    assert st["mode"] == pytest.approx(3000, abs=8)
    assert not st["left_edge_visible"]  # 2.35 % clipped


def test_left_edge_visible_rule():
    # Gaussian sky of sigma 20: visible when the peak is >= ~3.6 sigma above black
    rng = np.random.default_rng(1)
    black = 2048
    high = rng.normal(black + 5 * 20, 20, 200_000).round().astype(np.uint16)
    low = rng.normal(black + 2 * 20, 20, 200_000).round()
    low = np.maximum(low, black).astype(np.uint16)
    assert stats(high, black, 16383)["left_edge_visible"]
    st = stats(low, black, 16383)
    assert not st["left_edge_visible"]
    assert st["clipped_black_pct"] == pytest.approx(100 * np.mean(low <= black))


def test_bayer_channels_named_from_pattern_and_stats_per_channel():
    h, w = 100, 200
    data = np.zeros((h, w), np.uint16)
    data[0::2, 0::2] = 100  # R
    data[0::2, 1::2] = 200  # G1
    data[1::2, 0::2] = 300  # G2
    data[1::2, 1::2] = 400  # B
    data[0:10:2, 0::2] = 0  # 5 of 50 R rows black: 10 % of R
    data[1::2, 1::2][:, :25] = 4095  # a quarter of B saturated
    ch = bayer_channels(data, "RGGB")
    assert list(ch) == ["R", "G1", "G2", "B"]
    res = frame_histogram(data, 50, 4095, "RGGB")
    c = res["channels"]
    assert c["R"]["clipped_black_pct"] == pytest.approx(10.0)
    assert c["R"]["median"] == 100
    assert c["G1"]["median"] == 200 and c["G2"]["median"] == 300
    assert c["B"]["saturated_pct"] == pytest.approx(25.0)
    assert res["clipped_black_pct"] == pytest.approx(2.5)
    assert res["saturated_pct"] == pytest.approx(6.25)
    bg = bayer_channels(data, "BGGR")
    assert np.array_equal(bg["B"], data[0::2, 0::2]) and np.array_equal(bg["R"], data[1::2, 1::2])
    assert np.array_equal(bg["G1"], data[0::2, 1::2]) and np.array_equal(bg["G2"], data[1::2, 0::2])


def test_float_frames(rng):
    v = rng.normal(0.5, 0.01, 10_000).astype(np.float32)
    v[:100] = 0.0
    st = stats(v, 0.0, 1.0)
    assert st["clipped_black_pct"] == pytest.approx(1.0)
    assert st["median"] == pytest.approx(0.5, abs=0.001)
