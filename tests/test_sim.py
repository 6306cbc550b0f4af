"""The simulated rig's physics against hand-computed values."""

import asyncio
import math

import numpy as np
import pytest
import rawpy

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.devices.sim import SimRig
from fieldtui.imaging.stars import centroid

T0 = 1_800_000_000.0
QUIET = {"seeing_jitter": 0.0, "gusts_per_hour": 0.0, "pe_amplitude_arcsec": 0.0,
         "polar_error_arcmin": 0.0, "ra_drift_arcsec_min": 0.0, "backlash_arcsec": 0.0}


def make_rig(tmp_path, **sim):
    cfg = load_config(overrides={"storage": {"data_root": str(tmp_path)}, "sim": sim})
    return SimRig(cfg, VirtualClock(T0))


def brightest(frame):
    d = frame.data.astype(float)
    y, x = np.unravel_index(np.argmax(d[20:-20, 20:-20]), d[20:-20, 20:-20].shape)
    return centroid(frame.data, x + 20.0, y + 20.0, box=15)


def test_pixel_scales_follow_pixel_size_and_focal_length(tmp_path):
    rig = make_rig(tmp_path)
    assert rig.sky.guide.scale == pytest.approx(206.265 * 3.75 / 180, rel=1e-9)   # 4.297"/px
    assert rig.sky.main.scale == pytest.approx(206.265 * 4.3 / 2000, rel=1e-9)    # 0.443"/px
    cfg = load_config(overrides={"guide_scope": {"focal_length_mm": 120.0}})
    assert cfg.guide_scale == pytest.approx(6.45, abs=0.01)                     # SIMULATOR.md


@pytest.mark.parametrize("direction, rate, ms", [("N", 0.5, 2000), ("S", 1.0, 1500), ("N", 0.25, 4000)])
def test_dec_pulse_moves_star_by_rate_times_sidereal(tmp_path, direction, rate, ms):
    cfg = load_config(overrides={"sim": {**QUIET, "guide_angle_deg": 0.0}, "mount": {"guide_rate": rate}})
    rig = SimRig(cfg, VirtualClock(T0))

    async def go():
        await rig.connect_all()
        a = await rig.guide_camera.expose(1.0)
        await rig.guide_port.pulse(direction, ms)
        b = await rig.guide_camera.expose(1.0)
        return a, b

    a, b = asyncio.run(go())
    expected_arcsec = rate * 15.041 * ms / 1000.0
    # Pointing error truth moves by exactly that ...
    _, ey = rig.sky.mount_error(rig.clock.now())
    assert abs(float(ey)) == pytest.approx(expected_arcsec, rel=1e-6)
    # ... and the star in the guide frame by that over the pixel scale (angle 0: north = +y, star opposite).
    (xa, ya), (xb, yb) = brightest(a), brightest(b)
    sign = -1 if direction == "N" else 1
    assert (yb - ya) * rig.sky.guide.scale == pytest.approx(sign * expected_arcsec, abs=0.05 * 4.3)
    assert abs(xb - xa) < 0.05


def test_ra_pulse_moves_star_by_cos_dec(tmp_path):
    rig = make_rig(tmp_path, **QUIET, guide_angle_deg=0.0)

    async def go():
        await rig.connect_all()
        a = await rig.guide_camera.expose(1.0)
        await rig.guide_port.pulse("W", 3000)
        b = await rig.guide_camera.expose(1.0)
        return a, b

    a, b = asyncio.run(go())
    expected = 0.5 * 15.041 * 3.0 * math.cos(math.radians(rig.cfg.plan.dec_deg))
    (xa, _), (xb, _) = brightest(a), brightest(b)
    assert (xb - xa) * rig.sky.guide.scale == pytest.approx(expected, abs=0.05 * 4.3)


def test_dec_backlash_swallows_the_first_reversal(tmp_path):
    rig = make_rig(tmp_path, **{**QUIET, "backlash_arcsec": 6.0, "backlash_start": 0.0})
    sky = rig.sky
    sky.apply_pulse("N", 1000, T0)          # 7.52" north, all 6" of play first: 1.52" moves
    _, y = sky.mount_error(T0 + 1.5)
    assert float(y) == pytest.approx(1.5205, abs=1e-3)
    sky.apply_pulse("N", 1000, T0 + 2)      # same direction: no play
    sky.apply_pulse("S", 1000, T0 + 4)      # reversal: the whole 6" gap first, 1.52" moves
    _, y = sky.mount_error(T0 + 5.5)
    assert float(y) == pytest.approx(1.5205 + 7.5205 - 1.5205, abs=1e-3)
    sky.apply_pulse("S", 1000, T0 + 6)      # same direction: no play
    _, y = sky.mount_error(T0 + 8)
    assert float(y) == pytest.approx(7.5205 - 7.5205, abs=1e-3)


def test_dec_backlash_keeps_partial_take_up(tmp_path):
    """Hand-computed: a 6" gap, the gear starting in its middle, guide rate 0.5x
    (1000 ms = 7.5205", 200 ms = 1.5041", 400 ms = 3.0082")."""
    rig = make_rig(tmp_path, **{**QUIET, "backlash_arcsec": 6.0, "backlash_start": 0.5})
    sky = rig.sky
    assert sky.dec_play_arcsec == pytest.approx((3.0, 3.0))

    def dec_after(direction, ms, t):
        sky.apply_pulse(direction, ms, t)
        return float(sky.mount_error(t + ms / 1000.0 + 0.01)[1])

    # The very first pulse meets the half gap left on the north side: 7.5205 - 3 moves.
    assert dec_after("N", 1000, T0) == pytest.approx(4.5205, abs=1e-3)
    assert sky.dec_play_arcsec == pytest.approx((0.0, 6.0))
    # A short south pulse only crosses 1.5041" of the 6" gap: the axis stays put.
    assert dec_after("S", 200, T0 + 2) == pytest.approx(4.5205, abs=1e-3)
    assert sky.dec_play_arcsec == pytest.approx((1.5041, 4.4959), abs=1e-4)
    # Back north: only the 1.5041" just crossed is play (not the full 6"), 1.5041" moves.
    assert dec_after("N", 400, T0 + 4) == pytest.approx(4.5205 + 1.5041, abs=1e-3)
    # South for 1000 ms: the full 6" gap first, then 1.5205" of motion.
    assert dec_after("S", 1000, T0 + 6) == pytest.approx(6.0246 - 1.5205, abs=1e-3)
    assert sky.dec_play_arcsec == pytest.approx((6.0, 0.0))
    # And on south without play.
    assert dec_after("S", 1000, T0 + 8) == pytest.approx(4.5041 - 7.5205, abs=1e-3)


def test_dec_backlash_start_decides_the_first_pulse(tmp_path):
    # Gear already against the north side: the first north pulse moves at once,
    # the first south pulse meets the whole gap.
    rig = make_rig(tmp_path, **{**QUIET, "backlash_arcsec": 6.0, "backlash_start": 1.0})
    rig.sky.apply_pulse("N", 1000, T0)
    assert float(rig.sky.mount_error(T0 + 2)[1]) == pytest.approx(7.5205, abs=1e-3)
    rig = make_rig(tmp_path, **{**QUIET, "backlash_arcsec": 6.0, "backlash_start": 1.0})
    rig.sky.apply_pulse("S", 1000, T0)
    assert float(rig.sky.mount_error(T0 + 2)[1]) == pytest.approx(-1.5205, abs=1e-3)


def test_periodic_error_recovered_from_unguided_drift(tmp_path):
    """Watch a star unguided for two worm periods, fit: amplitude and period come back."""
    rig = make_rig(tmp_path, seeing_jitter=0.0, gusts_per_hour=0.0, polar_error_arcmin=3.0,
                   pe_amplitude_arcsec=15.0, pe_period_s=480.0, guide_angle_deg=0.0)

    async def go():
        await rig.connect_all()
        pts = []
        for _ in range(97):
            f = await rig.guide_camera.expose(1.0)
            pts.append((f.timestamp + 0.5, *brightest(f)))
            await rig.clock.sleep(9.0)
        return np.array(pts)

    p = asyncio.run(go())
    t = p[:, 0] - p[0, 0]
    ra_arcsec = -(p[:, 1] - p[0, 1]) * rig.sky.guide.scale / math.cos(math.radians(rig.cfg.plan.dec_deg))
    best = None
    for period in np.arange(400, 560, 1.0):
        w = 2 * math.pi / period
        cols = [np.ones_like(t), t]
        for k in (1, 2, 3):
            cols += [np.sin(k * w * t), np.cos(k * w * t)]
        A = np.column_stack(cols)
        coef, res, *_ = np.linalg.lstsq(A, ra_arcsec, rcond=None)
        r = float(np.sum((A @ coef - ra_arcsec) ** 2))
        if best is None or r < best[0]:
            best = (r, period, math.hypot(coef[2], coef[3]))
    _, period, amp = best
    assert period == pytest.approx(480.0, abs=5.0)
    assert amp == pytest.approx(15.0, rel=0.05)
    # Polar misalignment: Barrett's rule, drift = 3.0' x cos(dec) / 3.8 per minute in Dec.
    dec_arcsec = -(p[:, 2] - p[0, 2]) * rig.sky.guide.scale
    slope = np.polyfit(t / 60.0, dec_arcsec, 1)[0]
    assert slope == pytest.approx(3.0 * math.cos(math.radians(rig.cfg.plan.dec_deg)) / 3.8, rel=0.05)


def test_dslr_raw_reads_back_through_rawpy(tmp_path):
    rig = make_rig(tmp_path)
    path = tmp_path / "light.dng"

    async def go():
        await rig.connect_all()
        return await rig.main_camera.expose(30.0, iso=800, path=path)

    frame = asyncio.run(go())
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_image_visible.shape == (3456, 5184)
        pattern = "".join(raw.color_desc.decode()[i] for i in raw.raw_pattern.flatten())
        assert pattern == "RGGB"
        assert list(raw.black_level_per_channel) == [2048] * 4
        assert raw.white_level == 15000
        assert raw.other.iso_speed == 800 and raw.other.shutter_speed == pytest.approx(30.0)
        data = raw.raw_image_visible
        assert data.max() <= 15000 and np.median(data) > 2048
        # The green pixels see more sky than red and blue (the sensor's response).
        r, g, b = (np.median(data[0::2, 0::2]), np.median(data[0::2, 1::2]), np.median(data[1::2, 1::2]))
        assert g > r > b
    assert frame.bayer == "RGGB" and frame.path == path
    assert frame.exposure == pytest.approx(30.0) and frame.iso == 800


def test_focus_changes_star_size_as_a_hyperbola(tmp_path):
    rig = make_rig(tmp_path, **QUIET)
    best = rig.cfg.sim.best_focus
    sizes = {}
    for pos in (best - 1000, best - 500, best, best + 500, best + 1000):
        rig.sky.focus_position = pos
        sizes[pos] = rig.sky.star_fwhm_arcsec(rig.sky.main, 2.5)
    assert min(sizes, key=sizes.get) == best
    assert sizes[best - 500] == pytest.approx(sizes[best + 500])
    far = sizes[best + 1000] - sizes[best + 500]
    assert far == pytest.approx(0.02 * 500, rel=0.1)    # linear far from focus


def test_clouds_lose_the_stars(tmp_path):
    rig = make_rig(tmp_path, **QUIET)

    async def go():
        await rig.connect_all()
        clear = await rig.guide_camera.expose(1.0)
        rig.clouds(60)
        cloudy = await rig.guide_camera.expose(1.0)
        return clear, cloudy

    clear, cloudy = asyncio.run(go())
    assert clear.data.max() > 1000
    assert cloudy.data.max() < 0.2 * clear.data.max() or cloudy.data.max() < 200


def test_faults_on_demand(tmp_path):
    from fieldtui.devices.base import DeviceDisconnected, DeviceError, DeviceGarbage
    rig = make_rig(tmp_path)

    async def go():
        await rig.connect_all()
        out = {}
        rig.faults.set("guide_camera", "drop", 2)
        for i in range(3):
            try:
                await rig.guide_camera.expose(1.0)
                out[f"drop{i}"] = "frame"
            except DeviceError as exc:
                out[f"drop{i}"] = str(exc)
        rig.faults.set("guide_camera", "slow", 4.0)
        t = rig.clock.now()
        await rig.guide_camera.expose(1.0)
        out["slow_s"] = rig.clock.now() - t
        rig.faults.set("guide_camera", "slow", 0.0)
        rig.faults.set("mount", "garbage")
        try:
            await rig.mount.state()
        except DeviceGarbage as exc:
            out["garbage"] = str(exc)
        rig.faults.set("focuser", "disconnect")
        try:
            await rig.focuser.position()
        except DeviceDisconnected as exc:
            out["disconnect"] = str(exc)
        rig.faults.set("focuser", "disconnect", False)
        try:
            await rig.focuser.position()
        except DeviceDisconnected:
            out["still_down_until_reconnected"] = True
        await rig.focuser.connect()
        out["back"] = await rig.focuser.position()
        return out

    out = asyncio.run(go())
    assert "dropped a frame" in out["drop0"] and "dropped a frame" in out["drop1"] and out["drop2"] == "frame"
    assert out["slow_s"] == pytest.approx(4.0 + 1.0 + 4.0)  # slow before and after the exposure
    assert "#?#" in out["garbage"]
    assert "not connected" in out["disconnect"] and out["still_down_until_reconnected"]
    assert out["back"] == rig.cfg.focuser.max_position // 2


def test_slew_takes_time_lands_off_target_and_sync_removes_it(tmp_path):
    rig = make_rig(tmp_path, **QUIET)

    async def go():
        await rig.connect_all()
        t = rig.clock.now()
        await rig.mount.slew_to(rig.mount.ra + 6.0, rig.mount.dec)   # ~5.2 deg on the sky at Dec +30.7
        took = rig.clock.now() - t
        st = await rig.mount.state()
        await rig.mount.sync(st.ra_deg, st.dec_deg)
        off = np.hypot(*rig.sky.slew_offset)
        return took, st, off

    ra0, dec0 = rig.mount.ra, rig.mount.dec
    took, st, off = asyncio.run(go())
    dist = math.degrees(math.acos(math.sin(math.radians(dec0)) ** 2
                                  + math.cos(math.radians(dec0)) ** 2 * math.cos(math.radians(6.0))))
    assert took == pytest.approx(dist / rig.cfg.mount.slew_rate_deg_s, rel=1e-6)
    assert st.ra_deg != pytest.approx(ra0 + 6.0, abs=1e-6)   # a goto lands a little off
    assert abs(st.ra_deg - (ra0 + 6.0)) < 0.2
    assert off == 0.0


def test_a_slew_brings_another_star_field_and_back_the_same(tmp_path):
    rig = make_rig(tmp_path, **QUIET)

    async def go():
        await rig.connect_all()
        home = (rig.mount.ra, rig.mount.dec)
        a = await rig.guide_camera.expose(1.0)
        await rig.mount.slew_to(83.82, -5.39)          # M42
        b = await rig.guide_camera.expose(1.0)
        await rig.mount.slew_to(*home)
        await rig.mount.sync(*home)
        c = await rig.guide_camera.expose(1.0)
        return a, b, c

    a, b, c = asyncio.run(go())
    (xa, ya), (xb, yb), (xc, yc) = brightest(a), brightest(b), brightest(c)
    assert math.hypot(xa - xb, ya - yb) > 5                 # another field
    assert math.hypot(xa - xc, ya - yc) < 0.5               # the same stars again
    assert rig.sky.dec0 == pytest.approx(rig.cfg.plan.dec_deg)
