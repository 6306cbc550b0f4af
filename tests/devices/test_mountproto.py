"""Coordinate codecs of the serial mount protocols: hand-checked values and round
trips over the whole sky (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fieldtui.devices import mountproto as mp

RA = st.floats(min_value=0.0, max_value=360.0, exclude_max=True, allow_nan=False)
DEC = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)


def ra_err_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("text,deg", [
    ("00:00:00", 0.0), ("12:00:00", 180.0), ("23:59:59", (23 + 59 / 60 + 59 / 3600) * 15),
    ("05:30.5", (5 + 30.5 / 60) * 15), ("23:59.9", (23 + 59.9 / 60) * 15)])
def test_ra_known_values(text, deg):
    assert mp.parse_ra(text) == pytest.approx(deg, abs=1e-12)


@pytest.mark.parametrize("text,deg", [
    ("+45*30'15", 45 + 30 / 60 + 15 / 3600), ("-00*30'00", -0.5), ("-00*00'01", -1 / 3600),
    ("-00\xdf45", -0.75), ("+90*00", 90.0), ("-89:59:59", -(89 + 59 / 60 + 59 / 3600)),
    ("+12°34'56", 12 + 34 / 60 + 56 / 3600), ("359*59'59", 359 + 59 / 60 + 59 / 3600)])
def test_dec_known_values(text, deg):
    assert mp.parse_dec(text) == pytest.approx(deg, abs=1e-12)


def test_formats_known_values():
    assert mp.format_ra((23 + 59 / 60 + 59.9 / 3600) * 15, long=True) == "00:00:00"   # carries and wraps
    assert mp.format_ra((23 + 59 / 60 + 59.9 / 3600) * 15, long=False) == "00:00.0"
    assert mp.format_ra((12 + 34 / 60 + 56.4 / 3600) * 15) == "12:34:56"
    assert mp.format_ra((12 + 34.96 / 60) * 15, long=False) == "12:35.0"
    assert mp.format_dec(-0.5) == "-00*30'00"
    assert mp.format_dec(-0.5, long=False) == "-00*30"
    assert mp.format_dec(-(29 / 60 + 59.7 / 3600)) == "-00*30'00"                      # carry into minutes
    assert mp.format_dec(-1e-5) == "+00*00'00"                                          # no "-0"
    assert mp.format_dec(-45.25, sec_sep=":") == "-45*15:00"
    assert mp.format_dec(271.5, sign=False, deg_digits=3) == "271*30'00"
    assert mp.format_turns(180.0, precise=False) == "8000"
    assert mp.format_turns(-90.0) == "C0000000"
    assert mp.parse_pair("34AB,12CE") == pytest.approx((0x34AB / 65536 * 360, 0x12CE / 65536 * 360))
    assert mp.parse_pair("00000000,C0000000") == (0.0, -90.0)


@pytest.mark.parametrize("bad", ["", "12:34", "24:00:00", "12:60:00", "ab:cd:ef", "12:34:56:78", "1234.5"])
def test_bad_ra_is_a_value_error(bad):
    with pytest.raises(ValueError):
        mp.parse_ra(bad)


@pytest.mark.parametrize("bad", ["", "+45", "+45*60'00", "45-30", "+45*30'60", "\x00\xff"])
def test_bad_dec_is_a_value_error(bad):
    with pytest.raises(ValueError):
        mp.parse_dec(bad)


@pytest.mark.parametrize("bad", ["", "12345", "GHIJ,0000", "0000,00000000", "0000"])
def test_bad_pair_is_a_value_error(bad):
    with pytest.raises(ValueError):
        mp.parse_pair(bad)


@settings(max_examples=400)
@given(RA)
@example((23 + 59 / 60 + 59.9 / 3600) * 15)
@example(0.0)
def test_ra_round_trip_long_and_short(ra):
    assert ra_err_deg(mp.parse_ra(mp.format_ra(ra, True)), ra) <= 0.5 * 15 / 3600 + 1e-9
    assert ra_err_deg(mp.parse_ra(mp.format_ra(ra, False)), ra) <= 0.5 * 6 * 15 / 3600 + 1e-9


@settings(max_examples=400)
@given(DEC)
@example(-0.5)
@example(-(59 / 60 + 59.9 / 3600))
@example(-1 / 3600)
@example(-90.0)
@example(90.0)
def test_dec_round_trip_long_and_short(dec):
    for sep in ("'", ":"):
        assert abs(mp.parse_dec(mp.format_dec(dec, True, sec_sep=sep)) - dec) <= 0.5 / 3600 + 1e-9
    assert abs(mp.parse_dec(mp.format_dec(dec, False)) - dec) <= 0.5 / 60 + 1e-9
    assert abs(mp.parse_dec(mp.format_dec(dec, True, deg="\xdf")) - dec) <= 0.5 / 3600 + 1e-9


@settings(max_examples=400)
@given(st.floats(min_value=-0.99, max_value=-0.00014))  # over 0.5" south: never rounds to 0
def test_negative_dec_below_one_degree_keeps_its_sign(dec):
    text = mp.format_dec(dec, True)
    assert text.startswith("-00*") and text != "-00*00'00"
    assert mp.parse_dec(text) < 0


@settings(max_examples=400)
@given(RA, DEC)
@example((23 + 59 / 60 + 59.9 / 3600) * 15, -0.5)
def test_nexstar_pair_round_trip(ra, dec):
    r, d = mp.parse_pair(mp.format_pair(ra, dec, precise=True))
    assert ra_err_deg(r, ra) <= 0.5 * 360 / 2 ** 32 + 1e-9
    assert abs(d - dec) <= 0.5 * 360 / 2 ** 32 + 1e-9
    r, d = mp.parse_pair(mp.format_pair(ra, dec, precise=False))
    assert ra_err_deg(r, ra) <= 0.5 * 360 / 2 ** 16 + 1e-9
    assert abs(d - dec) <= 0.5 * 360 / 2 ** 16 + 1e-9


@settings(max_examples=300)
@given(RA, st.floats(min_value=-89.0, max_value=89.0), RA, st.floats(min_value=-89.0, max_value=89.0))
def test_altaz_round_trip(ra, dec, lst, lat):
    alt, az = mp.altaz_from_radec(ra, dec, lst, lat)
    r, d = mp.radec_from_altaz(alt, az, lst, lat)
    assert abs(d - dec) < 1e-6
    assert ra_err_deg(r, ra) * math.cos(math.radians(dec)) < 1e-6


def test_altaz_known_values():
    # On the meridian (hour angle 0) south of the zenith: alt = 90 - (lat - dec), az = 180.
    alt, az = mp.altaz_from_radec(100.0, 10.0, 100.0, 40.0)
    assert (alt, az) == pytest.approx((60.0, 180.0))
    # The celestial pole stands at the latitude, due north.
    alt, az = mp.altaz_from_radec(0.0, 90.0, 123.0, 31.78)
    assert alt == pytest.approx(31.78) and min(az, 360 - az) == pytest.approx(0.0, abs=1e-6)
    # Six hours east of the meridian on the equator: rising due east.
    alt, az = mp.altaz_from_radec(190.0, 0.0, 100.0, 40.0)
    assert (alt, az) == pytest.approx((0.0, 90.0), abs=1e-9)
