"""Guiding where it is hard: ratios to the seeing floor on the simulator's sky.

Each run calibrates and guides the real engine on the simulator's sky with
small guide frames on a hand-driven clock (tests/guiding/skyloop.py): 30
simulated minutes take ~4 s of CPU.  The default run keeps the cheapest
faithful cases; hours and sweeps are behind FIELDTUI_SLOW_TESTS=1.
"""

import math
import os

import numpy as np
import pytest
from skyloop import SkyLoop, guided, small_config

from dataclasses import replace

from fieldtui.guiding.settings import GuideSettings

SLOW = pytest.mark.skipif(not os.environ.get("FIELDTUI_SLOW_TESTS"),
                          reason="long simulated runs: FIELDTUI_SLOW_TESTS=1")
STEEP_PE = {"pe_amplitude_arcsec": 45.0, "pe_period_s": 240.0}


def test_steep_periodic_error_30_minutes():
    """±45″ over a 240-s worm (was 1.56x: the local line lagged the first
    worm cycles by ~1.9″)."""
    r = guided(small_config(sim=STEEP_PE), 30)
    assert r.ratio <= 1.25, (r.rms_ra, r.rms_dec, r.floor)
    assert r.engine.ra_algo.model.period == pytest.approx(240.0, abs=2.0)
    assert r.engine.ra_algo.live == "predictive"


def test_multi_star_averages_its_stars():
    """Four extra stars: the measured offset follows the field's true shift
    ~0.66x as closely (30 % of the jitter is common to all stars), and RA,
    with no minimum move, guides closer to the truth."""
    out = {}
    for ms in (0, 4):
        cfg = small_config(640, 480, sim={"gusts_per_hour": 0.0}, guiding={"multi_star": ms})
        loop = SkyLoop(cfg, replace(GuideSettings.from_config(cfg), min_stars=1))
        loop.start()
        loop.run(120.0)
        me = np.asarray(loop.measure_err)
        tr = np.asarray(loop.truth)
        used = [s.stars_used for s in (e for e in loop.events if type(e).__name__ == "GuideStep")]
        out[ms] = (float(np.sqrt(((me - me.mean(0)) ** 2).sum(1).mean())),
                   float(np.std(tr[:, 0])), max(used), float(np.std(tr[:, 1])))
    assert out[0][2] == 1 and out[4][2] == 5
    assert out[4][0] < 0.8 * out[0][0], out
    assert out[4][1] < out[0][1], out
    # Dec too: the predictive Dec guider has no minimum move while the drift is clear,
    # and without one its averaging threshold is 3 standard errors of its own frames.
    assert out[4][3] < out[0][3], out


def test_undersampled_stars_are_guided_on():
    """A 120-mm guide scope in 1.2″ seeing: stars of HFD ~1.3 px (a 1.5-px
    floor refused them all and guiding ran on a faint blend at 7.7x).  The
    30-minute full-frame run measured 1.23x before Dec backlash compensation
    was merged; on this 4-minute 480x360 run it is ~1.38x, so the bound here
    is the regression one, not the issue's 1.25."""
    cfg = small_config(480, 360, sim={"seeing_fwhm_arcsec": 1.2, "gusts_per_hour": 0.0},
                       guide_scope={"focal_length_mm": 120})
    r = guided(cfg, 4)
    assert r.engine.star.hfd < 2.0
    assert any(a.code == "undersampled" for a in r.alerts)
    assert r.ratio <= 1.5, (r.rms_ra, r.rms_dec, r.floor)


@SLOW
def test_steep_periodic_error_over_two_hours():
    """The period stays 240 s over two hours (it jumped to 719.5 s at ~56 min)."""
    r = guided(small_config(sim=STEEP_PE), 120)
    assert r.ratio <= 1.25
    assert r.engine.ra_algo.model.period == pytest.approx(240.0, abs=2.0)


@SLOW
@pytest.mark.parametrize("sim", [{"seed": 1}, {"seed": 2}, {"seed": 3},
                                 {"pe_amplitude_arcsec": 30.0, "pe_period_s": 240.0}])
def test_ratio_30_minutes(sim):
    r = guided(small_config(sim=sim), 30)
    assert r.ratio <= 1.25, (sim, r.rms_ra, r.rms_dec, r.floor)


@SLOW
def test_four_second_exposures():
    """4-s guide exposures on 640x480 frames, seeds 0-3 and 7 with the default rig's
    gusts, guided on the default several stars (``multi_star = 4``): 0.99/1.02/0.95/
    0.97/1.14x, the issue's 1.25x on every seed.  On one star alone (``multi_star =
    0``) the same runs give 1.25/1.35/1.28/1.39/1.40x (mean 1.33), and with one star it
    cannot be much better: the simulator's truth puts 0.12-0.17″² of the guided RMS² in
    the one star's centroid noise (the floor is 0.125″²; the bright star saturates at
    4 s, the guide star left has SNR 70-450), and a gust of 4-6″ puts 0.2-0.6 of itself
    into the frame it starts in, before any guider can see it (seed 7: three gusts,
    ~0.05″² of 0.25″²).  Averaging the stars' centroids takes out their own noise and
    the part of the seeing jitter they do not share.  (~40 s of CPU: behind
    FIELDTUI_SLOW_TESTS; the default run guides the RA axis on 4-s frames and checks
    each long-cycle rule in tests/guiding/test_long_exposures.py.)"""
    ratios = {}
    for seed in (0, 1, 2, 3, 7):
        r = guided(small_config(640, 480, sim={"seed": seed}, guiding={"exposure_s": 4.0}), 30)
        assert r.engine.star.snr < 600  # not the saturated bright star
        ratios[seed] = r.ratio
        if seed == 7:
            assert r.engine.ra_algo.model.period == pytest.approx(480.0, abs=3.0)
    assert max(ratios.values()) <= 1.25, ratios
    assert float(np.mean(list(ratios.values()))) <= 1.10, ratios


@SLOW
@pytest.mark.parametrize("exposure", [0.2, 2.0])
def test_ratio_short_and_long_exposures(exposure):
    """On 2-s frames of 320x240 the stars bright enough are saturated and the guide star
    left has SNR ~42: 1.33x. A 480x360 frame has one of SNR ~1140, as the full frame does:
    1.17x (full 1280x960 frames, fieldtui guide --minutes 30 --fast: 1.17x)."""
    w, h = (480, 360) if exposure >= 2.0 else (320, 240)
    r = guided(small_config(w, h, guiding={"exposure_s": exposure}), 30)
    assert r.ratio <= 1.25, (exposure, r.rms_ra, r.rms_dec, r.floor)


def test_seeing_floor_is_what_the_simulator_says():
    """The floor the ratios divide by: √2 × jitter × FWHM / √exposure."""
    r = small_config(guiding={"exposure_s": 4.0})
    from fieldtui.devices.sky import Sky
    sky = Sky(r, 0.0)
    assert sky.seeing_floor(4.0) == pytest.approx(math.sqrt(2) * 0.2 * 2.5 / 2.0)


def test_the_undersampled_note_waits_for_clearly_undersampled_stars():
    """The default 180-mm guide scope gives stars of HFD 1.9-2.0 px, which guide as well as
    wider ones: no note. A 120-mm scope in 1.2″ seeing gives HFD ~1.3 px: the note."""
    from fieldtui.guiding.engine import GuideEngine
    e = GuideEngine()
    e._note_undersampled(1.95)
    assert not [ev for ev in e.pop_events() if getattr(ev, "code", "") == "undersampled"]
    e._note_undersampled(1.3)
    (note,) = [ev for ev in e.pop_events() if getattr(ev, "code", "") == "undersampled"]
    assert "HFD 1.3 px" in note.message
