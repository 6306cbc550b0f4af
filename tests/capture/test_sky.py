"""The night's sky for plans (fieldtui.capture.sky) against independent answers: the meridian
transit from LST = RA by hand, astronomical twilight from a published almanac, the Moon from
Meeus's worked example, and the plan's warnings on schedules built to trip them (or not)."""

import json
import math
import re
from datetime import datetime, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from fieldtui.capture import sky
from fieldtui.capture.plan import PlanError, parse_plan, template
from fieldtui.config import ConfigError, load_config

HANLE = SimpleNamespace(latitude=31.78, longitude=78.96, elevation_m=4500.0, timezone="Asia/Kolkata")
M31 = (10.6847, 41.2690)  # J2000 degrees
J2000 = 946728000.0       # 2000-01-01 12:00 UTC (unix)


def gmst_deg(t):
    """Greenwich mean sidereal time (Meeus, Astronomical Algorithms, eq. 12.4), degrees."""
    d = (t - J2000) / 86400.0
    T = d / 36525.0
    return (280.46061837 + 360.98564736629 * d + 0.000387933 * T * T - T ** 3 / 38710000.0) % 360.0


def precessed(ra, dec, t):
    """RA/Dec of date from J2000 with Meeus's low-precision annual precession (eq. 21.1)."""
    years = (t - J2000) / 86400.0 / 365.25
    T = years / 100
    m, n, n2 = 3.07496 + 0.00186 * T, 1.33621 - 0.00057 * T, 20.0431 - 0.0085 * T
    a, dl = math.radians(ra), math.radians(dec)
    ra_d = ra + (m + n * math.sin(a) * math.tan(dl)) * years * 15 / 3600
    dec_d = dec + n2 * math.cos(a) * years / 3600
    return ra_d, dec_d


def hand_transit(ra, dec, lon, guess):
    """Unix time near ``guess`` when the local mean sidereal time equals the RA of date."""
    t = guess
    for _ in range(3):
        ra_d, _ = precessed(ra, dec, t)
        dh = ((ra_d - gmst_deg(t) - lon) + 180) % 360 - 180
        t += dh / 360.98564736629 * 86400
    return t


@pytest.fixture(scope="module")
def hanle_night():
    return sky.night_for(HANLE, "2026-11-29")


def test_transit_rise_and_set_against_lst_equals_ra(hanle_night):
    n = hanle_night
    tn = sky.target_night(M31, n, 30.0, name="M31")
    hand = hand_transit(*M31, HANLE.longitude, (n.dusk + n.dawn) / 2)
    assert abs(tn.transit - hand) < 60, (tn.transit - hand)
    assert tn.transit == sky.transit_time(M31, n)
    # upper culmination: 90° − |φ − δ| (δ of date; geometric altitude)
    dec_d = precessed(*M31, hand)[1]
    assert tn.transit_alt == pytest.approx(90 - abs(HANLE.latitude - dec_d), abs=0.05)
    # crossing 30°: cos H = (sin h − sin φ sin δ) / (cos φ cos δ), H in sidereal time
    phi, dl = math.radians(HANLE.latitude), math.radians(dec_d)
    H = math.degrees(math.acos((math.sin(math.radians(30)) - math.sin(phi) * math.sin(dl))
                               / (math.cos(phi) * math.cos(dl))))
    half = H / 360.98564736629 * 86400
    assert abs(tn.set - (hand + half)) < 60 and abs(tn.rise - (hand - half)) < 60
    assert tn.up == (pytest.approx(n.dusk, abs=n.step_s), pytest.approx(tn.set, abs=n.step_s))
    i = int(np.argmin(abs(n.times - tn.transit)))  # the sample nearest the transit
    assert tn.alt.shape == n.times.shape and abs(tn.alt[i] - tn.transit_alt) < 0.1


def test_astronomical_twilight_against_the_published_almanac():
    # IMCCE (Paris Observatory) rise/set/twilight ephemerides, Sydney, 33°52'04" S 151°12'26" E,
    # 2024 March 14: end of evening astronomical twilight 09:38:17 UTC (20:38 AEDT), beginning of
    # morning astronomical twilight 18:30:31 UTC (05:30 AEDT on the 15th).
    sydney = SimpleNamespace(latitude=-(33 + 52 / 60 + 4 / 3600), longitude=151 + 12 / 60 + 26 / 3600,
                             elevation_m=0.0, timezone="Australia/Sydney")
    n = sky.night_for(sydney, "2024-03-14")
    dusk = datetime(2024, 3, 14, 9, 38, 17, tzinfo=timezone.utc).timestamp()
    dawn = datetime(2024, 3, 14, 18, 30, 31, tzinfo=timezone.utc).timestamp()
    assert abs(n.dusk - dusk) < 120 and abs(n.dawn - dawn) < 120, (n.dusk - dusk, n.dawn - dawn)
    assert n.is_dark((dusk + dawn) / 2) and not n.is_dark(dusk - 900) and not n.is_dark(dawn + 900)
    assert sky.night_for(sydney, dusk).date == "2024-03-14"  # a unix time names its night


def test_moon_in_a_plan_round_trips_through_get_body():
    import astropy.units as u
    from astropy.coordinates import EarthLocation, get_body
    from astropy.time import Time
    when = datetime(2026, 11, 29, 23, 0, tzinfo=timezone.utc).timestamp()
    text = '[[target]]\nname = "Moon"\n[[target.sequence]]\ntype = "light"\ncount = 5\nexposure = 0.01\n'
    (t,) = parse_plan(text, when=when, site=HANLE).targets
    loc = EarthLocation(lon=HANLE.longitude * u.deg, lat=HANLE.latitude * u.deg, height=HANLE.elevation_m * u.m)
    ref = get_body("moon", Time(when, format="unix"), loc)
    assert t.body == "moon"
    assert (t.ra_deg, t.dec_deg) == (pytest.approx(ref.ra.deg, abs=1e-9), pytest.approx(ref.dec.deg, abs=1e-9))
    # without a time the plan knows it is the Moon but not where: the sky follows it
    bare = parse_plan(text).targets[0]
    assert bare.body == "moon" and bare.ra_deg is None and bare.dec_deg is None


def test_moon_altitude_from_meeus_worked_example():
    # Meeus, Astronomical Algorithms, example 47.a: 1992 April 12, 0h TD: apparent geocentric
    # α = 134.688470°, δ = +13.768368°, distance 368409.7 km; nutation in longitude +0.004610°.
    # 0h TD = 23:59:01.816 UTC on April 11 (TT − UTC = 32.184 s + 26 leap seconds).
    t = datetime(1992, 4, 11, 23, 59, 1, 816000, tzinfo=timezone.utc).timestamp()
    greenwich = SimpleNamespace(latitude=51.4769, longitude=0.0, elevation_m=0.0, timezone="Europe/London")
    last = gmst_deg(t) + 0.004610 * math.cos(math.radians(23.4406))  # + equation of the equinoxes
    ha, phi, dl = map(math.radians, (last - 134.688470, greenwich.latitude, 13.768368))
    alt_geo = math.asin(math.sin(phi) * math.sin(dl) + math.cos(phi) * math.cos(dl) * math.cos(ha))
    parallax = math.asin(6378.14 / 368409.7)  # horizontal parallax: the Moon sits lower seen from the surface
    alt = math.degrees(alt_geo - math.asin(math.sin(parallax) * math.cos(alt_geo)))
    got = sky.altaz("Moon", greenwich, [t])[0][0]
    assert 20 < alt < 30 and got == pytest.approx(alt, abs=0.05)


def test_planets_resolve_and_unknown_names_get_one_clear_error():
    when = datetime(2026, 11, 29, 18, 0, tzinfo=timezone.utc).timestamp()
    seq = '[[target.sequence]]\ntype = "light"\ncount = 5\nexposure = 0.01\n'
    (j,) = parse_plan(f'[[target]]\nname = "Jupiter"\n{seq}', when=when, site=HANLE).targets
    assert j.body == "jupiter" and 0 <= j.ra_deg < 360
    with pytest.raises(PlanError) as e:
        parse_plan(f'[[target]]\nname = "Jupyter"\n{seq}', when=when, site=HANLE)
    msg = str(e.value)
    assert msg.startswith("target 1 (Jupyter):") and "did you mean 'Jupiter'" in msg and "\n" not in msg
    with pytest.raises(PlanError, match=r"target 1 \(Sun\): the Sun is not a target"):
        parse_plan(f'[[target]]\nname = "Sun"\n{seq}', when=when)
    # `fieldtui plan new Moon` writes a plan the sky follows (no catalogue look-up)
    (m,) = parse_plan(template("Moon")).targets
    assert m.body == "moon" and m.ra_deg is None


def _plan(name, ra, dec, hours, type_="light"):
    exposure = 298.0  # + 2 s between frames: 12 frames an hour
    return parse_plan(f'[[target]]\nname = "{name}"\nra_deg = {ra}\ndec_deg = {dec}\n'
                      f'[[target.sequence]]\ntype = "{type_}"\ncount = {int(hours * 12)}\nexposure = {exposure}\n',
                      resolver=None)


def _local(n, hh, mm=0):
    day = datetime.strptime(n.date, "%Y-%m-%d").replace(tzinfo=ZoneInfo(n.site.timezone))
    return day.replace(hour=hh % 24, minute=mm).timestamp() + (86400 if hh >= 24 else 0)


def test_warnings_fire_for_a_setting_target_and_for_dawn_and_not_otherwise(hanle_night):
    n = hanle_night
    # M31 drops below 30° around 01:28 local: 4 h of lights from 23:00 runs into it
    tl = sky.plan_timeline(_plan("Setter", *M31, 4), HANLE, _local(n, 23), min_alt_deg=30, night=n)
    (w,) = tl.warnings
    assert w.startswith("target 1 (Setter), sequence 1 (48 × light): Setter drops below 30° at ")
    hh, mm = map(int, re.search(r"at (\d\d):(\d\d)", w).groups())
    assert abs(_local(n, hh + 24, mm) - tl.targets[0].set) < 61
    assert tl.sequences[0].warnings == (w,) and tl.sequences[0].meridian is None  # transit 20:24
    # a target near the zenith at dawn (transits then): lights 02:30–06:30 run into dawn only
    ra = (gmst_deg(n.dawn) + HANLE.longitude) % 360
    tl = sky.plan_timeline(_plan("Dawn", ra, HANLE.latitude, 4), HANLE, _local(n, 26, 30), night=n)
    (w,) = tl.warnings
    assert w.startswith("target 1 (Dawn), sequence 1 (48 × light): runs into dawn: astronomical twilight "
                        f"begins {sky.hm(n.dawn, HANLE.timezone)}")
    # the same targets inside darkness and above the limit: nothing to say
    tl = sky.plan_timeline(_plan("Setter", *M31, 3), HANLE, _local(n, 19), night=n)
    assert tl.warnings == () and tl.sequences[0].meridian == tl.targets[0].transit
    assert sky.plan_timeline(_plan("Dawn", ra, HANLE.latitude, 2.5), HANLE, _local(n, 26), night=n).warnings == ()
    # darks are taken with the cap on: after dawn, below the horizon, never a warning
    tl = sky.plan_timeline(_plan("Setter", *M31, 2, "dark"), HANLE, _local(n, 30), night=n)
    assert tl.warnings == () and tl.sequences[0].end - tl.sequences[0].start == pytest.approx(2 * 3600)
    # a target already below the limit when its lights start
    (w,) = sky.plan_timeline(_plan("Setter", *M31, 1), HANLE, _local(n, 27), night=n).warnings
    assert "Setter is at" in w and "below the 30° limit, when it starts" in w


def test_min_altitude_is_configured_and_range_checked(tmp_path):
    assert load_config().site.min_altitude_deg == 30.0
    p = tmp_path / "c.toml"
    p.write_text("[site]\nmin_altitude_deg = 95\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == (f"{p}: site.min_altitude_deg: expected degrees from 0 up to (not including) 90, "
                            "found a number (95.0)")


PLAN = """
[plan]
name = "two targets"
[[target]]
name = "M31"
ra_deg = 10.6847
dec_deg = 41.2690
[[target.sequence]]
type = "light"
count = 48
exposure = 298
[[target]]
name = "Moon"
[[target.sequence]]
type = "light"
count = 10
exposure = 0.01
"""


def test_plan_show_prints_schedule_plot_and_warnings(tmp_path, capsys):
    from fieldtui.commands import main
    p = tmp_path / "p.toml"
    p.write_text(PLAN)
    assert main(["plan", "show", str(p), "--night", "2026-11-29", "--start", "23:00", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["night"] == "2026-11-29" and out["min_altitude_deg"] == 30
    assert out["start"]["local"] == "23:00" and [s["start"]["local"] for s in out["sequences"]] == ["23:00", "03:00"]
    assert out["targets"][1]["body"] == "moon" and out["targets"][1]["ra_deg"] is not None
    assert len(out["warnings"]) == 1 and out["warnings"][0].startswith("target 1 (M31), sequence 1")
    assert out["sequences"][0]["warnings"] == out["warnings"]
    assert main(["plan", "show", str(p), "--night", "2026-11-29", "--start", "23:00"]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text  # not a terminal: plain text
    assert "astronomical darkness 18:36–05:29" in text and "meridian 20:2" in text
    assert "dusk" in text and "dawn" in text and "M31 drops below 30°" in text
    assert re.search(r"^ *90┤", text, re.M)  # the plot's altitude axis
    assert main(["plan", "show", str(p), "--start", "25:00"]) == 2
    assert "--start '25:00': expected a local time HH:MM" in capsys.readouterr().err


def test_plot_draws_into_a_plotext_widget_in_reds_only(hanle_night):
    from textual_plotext.plot import Plot
    n = hanle_night
    tl = sky.plan_timeline(_plan("Setter", *M31, 2), HANLE, n.dusk, night=n)
    plt = Plot()
    plt.plotsize(80, 20)
    sky.plot_night(plt, tl, frame_colours=False)
    out = plt.build()
    assert "M" in plt.uncolorize(out) and "dusk" in plt.uncolorize(out)
    text = sky.render_plot(tl, 80, 20, colour=True)
    for r, g, b in re.findall(r"\x1b\[[34]8;2;(\d+);(\d+);(\d+)m", text):
        assert int(g) <= 0x18 and int(b) <= 0x18, (r, g, b)


def test_a_white_night_has_no_dusk_and_every_light_sequence_says_so():
    # 60° N at midsummer: the Sun never gets below −12°, let alone −18°
    oslo = SimpleNamespace(latitude=60.0, longitude=10.75, elevation_m=0.0, timezone="Europe/Oslo")
    n = sky.night_for(oslo, "2026-06-21")
    assert n.dusk is None and n.dawn is None and not n.dark.any() and -13 < n.sun_alt.min() < -6
    plan = _plan("Vega", 279.2347, 38.7837, 2)
    (w,) = sky.plan_timeline(plan, oslo, _local(n, 23), night=n).warnings
    assert "no astronomical darkness tonight" in w and w.startswith("target 1 (Vega), sequence 1")


def test_the_plot_says_how_its_local_times_relate_to_ut(hanle_night):
    # The plot's axis is local time; the screens' side panels give UT.
    tl = sky.plan_timeline(_plan("Setter", *M31, 2), HANLE, hanle_night.dusk, night=hanle_night)
    assert "UT+5:30" in sky.render_plot(tl, 100, 20, colour=False).splitlines()[0]
    winter = datetime(2026, 11, 29, 12, tzinfo=timezone.utc).timestamp()
    summer = datetime(2026, 6, 21, 12, tzinfo=timezone.utc).timestamp()
    assert sky.utc_offset(winter, "Europe/Berlin") == "UT+1"
    assert sky.utc_offset(summer, "Europe/Berlin") == "UT+2"
    assert sky.utc_offset(winter, "America/Santiago") == "UT−3"
    assert sky.utc_offset(winter, "UTC") == "UT"
