"""A long night keeps every per-frame history bounded.

Caps are made small here so that a short run crosses each of them many
times; the lengths must stay under the caps and what is kept must still be
right (the sky's pointing error against an unpruned sky)."""

import math
from collections import deque

import numpy as np

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.devices.sim import SimRig
from fieldtui.devices.sky import Sky
from fieldtui.guiding.events import GuideState
from fieldtui.guiding.predictive import GearModel
from fieldtui.guiding.settings import GuideSettings
from fieldtui.service import guide_worker
from fieldtui.service.guide_worker import GuideWorker

T0 = 1_800_000_000.0


def small_cfg():
    """The default rig with a 320x240 guide camera (renders in a few ms)."""
    return load_config(user=False, overrides={"guide_camera": {"width": 320, "height": 240}})


def test_sky_pulse_history_over_twelve_hours_is_bounded_and_exact():
    cfg = load_config(user=False)
    sky = Sky(cfg, T0)
    ref = Sky(cfg, T0)
    ref.PRUNE_AT = 10**9  # never pruned: the reference
    rng = np.random.default_rng(3)
    t = T0
    most = 0
    for i in range(12 * 3600):  # a pulse on each axis every second for 12 h
        ra = "E" if rng.random() < 0.5 else "W"
        dec = "N" if rng.random() < 0.5 else "S"
        ms_ra, ms_dec = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        for s in (sky, ref):
            s.apply_pulse(ra, ms_ra, t)
            s.apply_pulse(dec, ms_dec, t)
        most = max(most, sky.pulse_breakpoints)
        t += 1.0
    # At most two breakpoints a pulse over the kept hour (+ the folded one), per axis.
    cap = 2 * (2 * int(Sky.PULSE_HISTORY_S) + 4)
    assert ref.pulse_breakpoints > 4 * 12 * 3600 - 10  # the reference did keep everything
    assert most <= cap
    # Inside the kept window the pointing error is exactly the unpruned one.
    ts = np.linspace(t - 3000.0, t + 5.0, 777)
    for a, b in zip(sky.mount_error(ts), ref.mount_error(ts)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_gear_model_history_is_capped_in_time_and_samples():
    m = GearModel(history_s=3600.0, max_samples=500)
    m.defer = True  # no fits: only the history is under test here
    for i in range(12 * 3600):
        m.add(T0 + i, math.sin(i / 80.0))
    assert len(m.t) == len(m.g) == 500  # the sample cap bites first at 1 s cycles
    m2 = GearModel(history_s=600.0)
    m2.defer = True
    for i in range(0, 12 * 3600, 2):
        m2.add(T0 + i, 0.0)
    assert m2.span <= 600.0 and len(m2.t) == 301


async def test_guiding_for_a_long_simulated_run_keeps_histories_under_their_caps(monkeypatch):
    # Small caps so 20 simulated minutes of guiding cross each of them many times.
    monkeypatch.setattr(Sky, "PULSE_HISTORY_S", 60.0)
    monkeypatch.setattr(Sky, "PRUNE_AT", 40)
    monkeypatch.setattr(guide_worker, "LATENCY_KEEP", 100)
    cfg = small_cfg()
    clock = VirtualClock(T0)
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    settings = GuideSettings.from_config(cfg)
    w = GuideWorker(rig.guide_camera, rig.guide_port, clock, settings, mount=rig.mount,
                    pixel_scale=cfg.guide_scale)
    w.engine.stats.window_s = 60.0
    model = w.engine.ra_algo.model
    model.t, model.g = deque(maxlen=300), deque(maxlen=300)
    await w.calibrate(then_guide=True)
    while w.state != GuideState.GUIDING:
        await clock.sleep(1.0)
    sizes = {"sky": 0, "gear": 0, "dec": 0, "stats": 0, "latency": 0, "heap": 0}
    end = clock.now() + 20 * 60
    while clock.now() < end:
        await clock.sleep(5.0)
        sizes["sky"] = max(sizes["sky"], len(rig.sky._ra_t), len(rig.sky._dec_t))
        sizes["gear"] = max(sizes["gear"], len(model.t))
        sizes["dec"] = max(sizes["dec"], len(w.engine.dec_algo.samples))
        sizes["stats"] = max(sizes["stats"], len(w.engine.stats._win))
        sizes["latency"] = max(sizes["latency"], len(w.latencies_ms))
        sizes["heap"] = max(sizes["heap"], len(clock._heap))
    frames = w.engine.stats.total().frames
    assert w.state == GuideState.GUIDING
    await w.stop()
    clock.close()
    assert frames > 1100  # 20 min of 1 s frames: every cap below was crossed many times
    assert sizes["sky"] <= 2 * 60 + 4 + Sky.PRUNE_AT  # a minute of pulses, pruned in steps
    assert sizes["gear"] == 300
    assert sizes["dec"] <= w.engine.dec_algo.drift_s + 2
    assert sizes["stats"] <= 60 + 2
    assert sizes["latency"] == 100
    assert sizes["heap"] < 50  # cancelled timeouts leave the clock's heap as they fall due
    # Guiding stayed good with the shortened histories.
    assert w.engine.stats.total().rms_total_arcsec < 2.0 * rig.sky.seeing_floor(settings.exposure_s)
