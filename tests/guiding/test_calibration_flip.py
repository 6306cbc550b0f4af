"""Calibration across a meridian flip: hand reasoning, then the simulated mount as ground truth."""

import math

import pytest

from fieldtui import astro
from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.devices.sim import SimRig
from fieldtui.guiding.calibration import Calibration
from fieldtui.guiding.engine import GuideEngine
from fieldtui.guiding.settings import GuideSettings

T0 = 1_800_000_000.0


def test_flip_by_hand():
    # Unmirrored camera, north up, east left, y down: a West pulse moves the stars east
    # (left, -x), a North pulse moves them south (down, +y). After the flip the camera is
    # turned 180°: east is right, north is down. A West pulse still moves the telescope
    # west, so the stars go east = right (+x): RA reversed. Through ST4 the Dec motor turns
    # the same way, which on the other side moves the telescope south: the stars go north
    # = down (+y): Dec kept. A pier-aware pulse moves it north: stars south = up (-y).
    cal = Calibration(ra_vx=-3.0, ra_vy=0.0, dec_vx=0.0, dec_vy=2.5, pier_side="west", dec_deg=30.0)
    st4 = cal.after_flip("east", pier_aware=False)
    assert (st4.ra_vx, st4.ra_vy, st4.dec_vx, st4.dec_vy) == (3.0, 0.0, 0.0, 2.5)
    aware = cal.after_flip("east", pier_aware=True)
    assert (aware.ra_vx, aware.ra_vy, aware.dec_vx, aware.dec_vy) == (3.0, 0.0, 0.0, -2.5)
    assert st4.pier_side == aware.pier_side == "east"
    assert st4.ra_rate == cal.ra_rate and st4.dec_rate == cal.dec_rate and st4.dec_deg == 30.0
    # a star 6 px right of the lock: before the flip that is 2 s of East (negative West) pulse,
    # after it 2 s of West
    assert cal.pulse_seconds(6.0, 0.0)[0] == pytest.approx(-2.0)
    assert st4.pulse_seconds(6.0, 0.0)[0] == pytest.approx(2.0)
    # same side or an unknown side: unchanged
    assert cal.for_pier_side("west") is cal and cal.for_pier_side("unknown") is cal
    # pier-aware pulses: both vectors turn 180° with the camera, the handedness stays; ST4:
    # North now moves the telescope south, so West-to-North has odd parity (PHD2's word),
    # though the camera is no more mirrored than before
    assert aware.flipped == cal.flipped and st4.flipped != cal.flipped
    assert not cal.mirrored and not st4.mirrored and not aware.mirrored
    assert st4.dec_reversed and not aware.dec_reversed and "Dec reversed" in st4.summary()
    assert "mirrored" not in st4.summary()
    # a mirrored camera stays mirrored across flips of either kind, and survives a save
    mir = Calibration(ra_vx=-3.0, ra_vy=0.0, dec_vx=0.0, dec_vy=-2.5, pier_side="west")
    assert mir.mirrored and mir.after_flip("east").mirrored and mir.after_flip("east", True).mirrored
    assert Calibration.from_dict(st4.to_dict()).dec_reversed and not st4.to_dict()["mirrored"]
    assert st4.orthogonality_error_deg == pytest.approx(cal.orthogonality_error_deg)
    # two flips give the calibration back
    back = st4.after_flip("west")
    assert (back.ra_vx, back.dec_vy, back.pier_side) == (cal.ra_vx, cal.dec_vy, "west")
    assert not back.dec_reversed


def test_engine_flips_instead_of_recalibrating_and_scales_for_declination():
    cal = Calibration(ra_vx=-3.0, ra_vy=0.0, dec_vx=0.0, dec_vy=2.5, camera="cam", pier_side="west",
                      dec_deg=0.0)
    e = GuideEngine(camera="cam", pier_side="west", dec_deg=0.0, calibration=cal)
    e.set_pointing(dec_deg=60.0, pier_side="east")
    assert e.calibration is not None and e.calibration.pier_side == "east"
    assert e.calibration.ra_vx == pytest.approx(3.0 * math.cos(math.radians(60.0)))  # cos δ, reversed
    assert e.calibration.dec_vy == pytest.approx(2.5)
    assert any("flipped" in ev.message for ev in e.pop_events() if hasattr(ev, "message"))
    e.start_guiding()
    assert e._pending == "guide"   # no calibration run


def _truth_calibration(rig, port, clock, pier_side):
    """The star's motion (guide px per second of pulse) for 1-s West and North pulses, from
    the simulator's pointing model and the guide optics (no centroiding)."""
    sky, o = rig.sky, rig.sky.guide
    vec = {}
    for d in ("W", "N"):
        t = clock.monotonic() + 100.0
        ex0, ey0 = sky.mount_error(t)
        dirn = d
        if d in "NS" and not port.pier_aware and sky.pier_flipped:
            dirn = "S"   # what SimGuidePort.pulse does with an ST4 North pulse after a flip
        sky.apply_pulse(dirn, 1000, clock.monotonic())
        ex1, ey1 = sky.mount_error(t)
        cx, cy = o.to_pixels(0.0, 0.0)
        ux, uy = o.to_pixels(-(float(ex1) - float(ex0)), -(float(ey1) - float(ey0)))  # stars move opposite
        vec[d] = (float(ux - cx), float(uy - cy))
    return Calibration(vec["W"][0], vec["W"][1], vec["N"][0], vec["N"][1], pier_side=pier_side)


@pytest.mark.parametrize("via", ["camera", "mount"])
async def test_flip_on_the_simulated_mount_matches_the_flipped_calibration(via):
    cfg = load_config(user=False, overrides={
        "sim": {"pe_amplitude_arcsec": 0.0, "polar_error_arcmin": 0.0, "ra_drift_arcsec_min": 0.0,
                "gusts_per_hour": 0.0, "backlash_arcsec": 0.0},
        "guide_port": {"via": via}})
    lst = astro.local_sidereal_deg(T0, cfg.site.longitude)
    cfg.plan.ra_deg = (lst + 1.0) % 360.0     # 4 min east of the meridian
    clock = VirtualClock(T0)
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    assert (await rig.mount.state()).pier_side == "west"
    with pytest.raises(Exception, match="no flip"):
        await rig.mount.flip()            # not past the meridian yet
    before = _truth_calibration(rig, rig.guide_port, clock, "west")
    await clock.sleep(600.0)               # 6 min past the meridian, still on the west side
    assert (await rig.mount.state()).pier_side == "west"
    await rig.mount.flip()
    assert (await rig.mount.state()).pier_side == "east" and rig.sky.pier_flipped
    after = _truth_calibration(rig, rig.guide_port, clock, "east")
    predicted = before.after_flip("east", pier_aware=rig.guide_port.pier_aware)
    for a, b in ((after.ra_vx, predicted.ra_vx), (after.ra_vy, predicted.ra_vy),
                 (after.dec_vx, predicted.dec_vx), (after.dec_vy, predicted.dec_vy)):
        assert a == pytest.approx(b, abs=1e-6)
    assert after.ra_vx == pytest.approx(-before.ra_vx, abs=1e-6)   # RA reversed in the image


async def test_a_mount_set_not_to_flip_refuses():
    cfg = load_config(user=False, overrides={"sim": {"mount_flips": False}})
    lst = astro.local_sidereal_deg(T0, cfg.site.longitude)
    cfg.plan.ra_deg = (lst - 2.0) % 360.0
    rig = SimRig(cfg, VirtualClock(T0))
    await rig.connect_all()
    assert not rig.mount.can_flip
    with pytest.raises(Exception, match="mount_flips = false"):
        await rig.mount.flip()


def test_a_lock_moved_by_a_command_is_a_lock_shift_for_the_algorithms():
    """guide.lock moves the lock while guiding (the re-centring after a flip): the
    algorithms are told the shift along the mount axes, as after a dither, so a predictive
    guider's gear error does not jump by it.  RA is 3 px/s along -x, Dec 2.5 px/s along y:
    a lock moved by (+6, -5) px is 6 px along RA, the way East pulses move the star (-6), and
    5 px along Dec, the way South pulses do (-5)."""
    cal = Calibration(ra_vx=-3.0, ra_vy=0.0, dec_vx=0.0, dec_vy=2.5, camera="cam", pier_side="west",
                      dec_deg=0.0)
    e = GuideEngine(GuideSettings(ra_algorithm="predictive", dec_algorithm="predictive"),
                    camera="cam", pier_side="west", dec_deg=0.0, calibration=cal)
    e.lock = (100.0, 100.0)
    e.move_lock_position(106.0, 95.0)
    assert e.lock == (106.0, 95.0)
    assert e.ra_algo._lock == pytest.approx(-6.0) and e.dec_algo._lock == pytest.approx(-5.0)
    e.set_lock_position(100.0, 100.0, "new guide star")   # a new star: no shift of the mount
    assert e.ra_algo._lock == pytest.approx(-6.0) and e.dec_algo._lock == pytest.approx(-5.0)


async def test_a_calibration_carried_to_another_declination_matches_the_one_made_there():
    """The simulated mount's true calibration (the star's motion per second of West and North
    pulse) at Dec 30°, 60°, 88° and 89°, each carried to every other declination by cos δ, is
    the one measured there: the RA vector within 3 % (the mount reports its Dec to about 1′,
    which at Dec 89° is 1.5 % of cos δ), the Dec vector unchanged. A calibration made near the
    pole (which now succeeds) used unscaled at Dec 30° would send RA pulses 50 times too long."""
    import dataclasses
    cfg = load_config(user=False, overrides={
        "sim": {"pe_amplitude_arcsec": 0.0, "polar_error_arcmin": 0.0, "ra_drift_arcsec_min": 0.0,
                "gusts_per_hour": 0.0, "backlash_arcsec": 0.0}})
    lst = astro.local_sidereal_deg(T0, cfg.site.longitude)
    ra = (lst + 15.0) % 360.0                 # an hour east of the meridian: no flip on the way
    cfg.plan.ra_deg, cfg.plan.dec_deg = ra, 30.0
    clock = VirtualClock(T0)
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    made = {}
    try:
        for dec in (30.0, 60.0, 88.0, 89.0):
            await rig.mount.slew_to(ra, dec)
            st = await rig.mount.state()
            assert st.pier_side == "west"
            made[dec] = dataclasses.replace(_truth_calibration(rig, rig.guide_port, clock, "west"),
                                            dec_deg=st.dec_deg)
    finally:
        clock.close()
    assert made[89.0].ra_rate / made[30.0].ra_rate == pytest.approx(1 / 50, rel=0.05)
    for a, ca in made.items():
        for b, cb in made.items():
            carried = ca.for_declination(cb.dec_deg)
            assert carried.ra_vx == pytest.approx(cb.ra_vx, rel=0.03), (a, b)
            assert carried.ra_vy == pytest.approx(cb.ra_vy, rel=0.03), (a, b)
            assert (carried.dec_vx, carried.dec_vy) == (ca.dec_vx, ca.dec_vy)
            assert carried.dec_deg == cb.dec_deg
    # the engine does it when the mount reports the new declination (after a goto)
    e = GuideEngine(camera="cam", pier_side="west", dec_deg=made[89.0].dec_deg,
                    calibration=dataclasses.replace(made[89.0], camera="cam"))
    e.set_pointing(dec_deg=made[30.0].dec_deg, pier_side="west")
    assert e.calibration.ra_rate == pytest.approx(made[30.0].ra_rate, rel=0.03)
