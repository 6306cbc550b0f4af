"""The site check: the target's altitude now, rise/transit/set and tonight's astronomical
darkness, against independent low-precision formulas (spherical astronomy with the mean
sidereal time; the Sun from the NOAA/Meeus low-precision series)."""

import math
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from fieldtui import astro
from fieldtui.capture import sky
from fieldtui.service.check import site_detail

SITE = SimpleNamespace(latitude=31.78, longitude=78.96, elevation_m=4500.0, timezone="Asia/Kolkata")
M33 = (23.4621, 30.6602)
NOW = datetime(2026, 11, 29, 9, 30, tzinfo=timezone.utc).timestamp()  # 15:00 local, afternoon


def simple_alt(t, ra, dec, lat=SITE.latitude, lon=SITE.longitude):
    ha = math.radians(astro.local_sidereal_deg(t, lon) - ra)
    la, de = math.radians(lat), math.radians(dec)
    return math.degrees(math.asin(math.sin(la) * math.sin(de) + math.cos(la) * math.cos(de) * math.cos(ha)))


def sun_alt(t, lat=SITE.latitude, lon=SITE.longitude):
    """The Sun's altitude from the low-precision solar coordinates (Meeus ch. 25, ~0.01°)."""
    d = (t - astro.J2000_UNIX) / 86400.0
    g = math.radians((357.529 + 0.98560028 * d) % 360)
    q = (280.459 + 0.98564736 * d) % 360
    lam = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    eps = math.radians(23.439 - 0.00000036 * d)
    ra = math.degrees(math.atan2(math.cos(eps) * math.sin(lam), math.cos(lam))) % 360
    dec = math.degrees(math.asin(math.sin(eps) * math.sin(lam)))
    return simple_alt(t, ra, dec, lat, lon)


@pytest.fixture(scope="module")
def tonight():
    return sky.target_tonight(NOW, SITE, *M33, 20.0)


def test_altitude_now_and_transit(tonight):
    # the simple formula uses J2000 coordinates: precession to 2026 moves them ~0.36°
    assert abs(tonight["alt_now"] - simple_alt(NOW, *M33)) < 0.7
    assert abs(tonight["transit_alt"] - (90 - abs(SITE.latitude - M33[1]))) < 0.7
    # at transit the hour angle is 0 (within the 2-minute sampling and precession)
    ha = (astro.local_sidereal_deg(tonight["transit"], SITE.longitude) - M33[0] + 180) % 360 - 180
    assert abs(ha) * 4 < 5.0  # minutes of time


def test_rise_and_set_from_the_hour_angle_at_the_horizon(tonight):
    h0 = math.degrees(math.acos(-math.tan(math.radians(SITE.latitude)) * math.tan(math.radians(M33[1]))))
    half = h0 / 360.0 * 86164.1  # sidereal seconds either side of transit
    rise = tonight["rise"] if tonight["rise"] < tonight["transit"] else tonight["rise"] - 86164.1
    assert abs((tonight["transit"] - rise) - half) < 300
    assert abs(simple_alt(tonight["rise"], *M33)) < 0.7 and abs(simple_alt(tonight["set"], *M33)) < 0.7


def test_astronomical_darkness_is_the_sun_at_minus_18(tonight):
    start, end = tonight["dark"]
    assert start < end and 8 * 3600 < end - start < 13 * 3600  # a late-November night at 32°N
    assert abs(sun_alt(start) + 18) < 0.8 and abs(sun_alt(end) + 18) < 0.8
    assert sun_alt((start + end) / 2) < -18
    up0, up1 = tonight["up_in_dark"]
    assert start <= up0 <= up1 <= end
    assert simple_alt(up0, *M33) >= 20.0 - 0.7
    assert tonight["min_alt"] == 20.0


def _plan(ra, dec, name="T"):
    return SimpleNamespace(target=name, ra_deg=ra, dec_deg=dec)


def test_check_fails_for_a_target_that_is_never_up_in_darkness():
    # Dec −70 at latitude +31.8 never rises; the old check said "ok" for any target.
    t = sky.target_tonight(NOW, SITE, 100.0, -70.0)
    c = site_detail(NOW, SITE, _plan(100.0, -70.0), t)
    assert not c.ok and "never rises here" in c.detail and "(below the horizon)" in c.detail
    assert "not up in darkness tonight" in c.fix


def test_check_ok_for_a_target_below_the_horizon_now_that_rises_tonight():
    # RA such that the target is ~8° below the horizon at 15:00 local but high after midnight
    ra = (astro.local_sidereal_deg(NOW, SITE.longitude) + 150.0) % 360
    t = sky.target_tonight(NOW, SITE, ra, 10.0)
    assert t["alt_now"] < 0
    c = site_detail(NOW, SITE, _plan(ra, 10.0), t)
    assert c.ok, c.detail
    assert "(below the horizon)" in c.detail and "rises " in c.detail and "astronomical darkness " in c.detail
    assert f"altitude {t['alt_now']:.0f}° now" in c.detail
