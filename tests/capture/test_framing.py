"""The framing offset across a meridian flip, against the simulator's pointing."""

import math

import numpy as np
import pytest

from fieldtui.capture.framing import framing_offset
from fieldtui.config import load_config
from fieldtui.devices.sky import Sky


def test_offset_across_a_flip_matches_the_simulated_goto_error():
    cfg = load_config(user=False, overrides={"main_camera": {"width": 1280, "height": 960},
                                             "sim": {"pe_amplitude_arcsec": 0.0, "ra_drift_arcsec_min": 0.0,
                                                     "polar_error_arcmin": 0.0, "gusts_per_hour": 0.0}})
    sky = Sky(cfg, 0.0)
    gain = 320.0 / 800
    before, tb = sky.render(sky.main, 10.0, 30.0, gain_e_adu=gain, bit_depth=14)
    e0 = np.array(tb["mount_error"])
    sky.set_pier_flipped(True)                     # the flip's goto: 180° turn, a new pointing error
    sky.slew_offset = np.array([35.0, -52.0])
    after, ta = sky.render(sky.main, 200.0, 30.0, gain_e_adu=gain, bit_depth=14)
    e1 = np.array(ta["mount_error"])
    off = framing_offset(before, "RGGB", after, "RGGB")
    # A star at sky offset s lands at C + M (s - e) (C the optical axis, M the sky-to-pixel map,
    # e the pointing error less the seeing jitter); after the flip M1 = -M0. The sensor's centre
    # c = ((w-1)/2, (h-1)/2) saw s = e0 + M0^-1 (c - C); now it lies at C + M1 (e0 - e1) - (c - C),
    # so c moved by M1 (e0 - e1) + 2 (C - c).
    o = sky.main
    d = (e0 - np.array(tb["jitter"])) - (e1 - np.array(ta["jitter"]))
    cx, cy = o.to_pixels(0.0, 0.0)
    ux, uy = o.to_pixels(d[0], d[1])
    c = ((o.width - 1) / 2.0, (o.height - 1) / 2.0)
    want = (ux - cx + 2 * (cx - c[0]), uy - cy + 2 * (cy - c[1]))
    assert abs(abs(off.rotation_deg) - 180.0) < 0.1 and off.matched >= 6
    assert off.dx_px == pytest.approx(want[0], abs=0.6)
    assert off.dy_px == pytest.approx(want[1], abs=0.6)
    assert math.hypot(*want) * cfg.main_scale == pytest.approx(math.hypot(*d), abs=1.5)
