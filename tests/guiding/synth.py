"""A tiny synthetic guide-camera sky for engine-level tests.

The mount's pointing error (RA, Dec in arcsec) moves every star on the
camera: a West pulse moves the star along ``angle_deg`` (x right, y down,
angles from +x toward +y), a North pulse along ``angle_deg - 90°`` (an
unmirrored sky: north up and east left at angle 180°), or ``angle_deg + 90°``
when the camera is mirrored.
"""

from __future__ import annotations

import math

import numpy as np

SIDEREAL = 15.041


class SynthSky:
    def __init__(self, angle_deg: float = 30.0, flipped: bool = False, scale: float = 4.3,
                 guide_rate: float = 0.5, dec_deg: float = 20.0, width: int = 320, height: int = 240,
                 n_stars: int = 8, seed: int = 1, jitter_arcsec: float = 0.0, noise: float = 4.0,
                 backlash_arcsec: float = 0.0, drift_arcsec_s: tuple[float, float] = (0.0, 0.0),
                 sigma_px: float = 1.3, backlash_start: float = 0.5) -> None:
        self.angle = math.radians(angle_deg)
        self.flipped = flipped
        self.scale = scale
        self.guide_rate = guide_rate
        self.dec_deg = dec_deg
        self.w, self.h = width, height
        self.rng = np.random.default_rng(seed)
        self.jitter = jitter_arcsec
        self.noise = noise
        self.backlash = backlash_arcsec
        self.drift = drift_arcsec_s
        self.sigma = sigma_px
        self.ra = 0.0  # pointing error, arcsec on the sky
        self.dec = 0.0
        # Where the Dec gear sits in its backlash gap (arcsec from the south
        # side), kept between pulses as in fieldtui.devices.sky.
        self._gap_pos = backlash_start * backlash_arcsec
        m = 40
        self.stars = [(float(self.rng.uniform(m, width - m)), float(self.rng.uniform(m, height - m)),
                       float(self.rng.uniform(4000, 30000))) for _ in range(n_stars)]
        self.cloud = 1.0  # flux factor (0 = overcast)
        yy, xx = np.mgrid[0:15, 0:15]
        self._yy, self._xx = yy, xx

    @property
    def ra_rate_px_s(self) -> float:
        return self.guide_rate * SIDEREAL * math.cos(math.radians(self.dec_deg)) / self.scale

    @property
    def dec_rate_px_s(self) -> float:
        return self.guide_rate * SIDEREAL / self.scale

    def pulse(self, direction: str, ms: int) -> None:
        amount = self.guide_rate * SIDEREAL * ms / 1000.0
        if direction in "WE":
            k = math.cos(math.radians(self.dec_deg))
            self.ra += amount * k if direction == "W" else -amount * k
            return
        d = 1 if direction == "N" else -1
        play = self.backlash - self._gap_pos if d > 0 else self._gap_pos
        take = min(play, amount)
        self._gap_pos += d * take
        self.dec += d * (amount - take)

    def advance(self, dt: float) -> None:
        self.ra += self.drift[0] * dt
        self.dec += self.drift[1] * dt

    def offset_px(self, ra: float, dec: float) -> tuple[float, float]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        era = (c, s)
        edec = (-s, c) if self.flipped else (s, -c)
        return ((ra * era[0] + dec * edec[0]) / self.scale, (ra * era[1] + dec * edec[1]) / self.scale)

    def render(self) -> np.ndarray:
        jr, jd = (self.rng.normal(0, self.jitter, 2) if self.jitter else (0.0, 0.0))
        ox, oy = self.offset_px(self.ra + jr, self.dec + jd)
        img = self.rng.normal(200.0, self.noise, (self.h, self.w))
        for (x, y, f) in self.stars:
            sx, sy = x + ox, y + oy
            ix, iy = int(sx) - 7, int(sy) - 7
            if ix < 0 or iy < 0 or ix + 15 > self.w or iy + 15 > self.h:
                continue
            g = np.exp(-((self._xx + ix - sx) ** 2 + (self._yy + iy - sy) ** 2) / (2 * self.sigma ** 2))
            img[iy:iy + 15, ix:ix + 15] += f * self.cloud * g / (2 * math.pi * self.sigma ** 2)
        return np.clip(img, 0, 65535).astype(np.uint16)

    def true_position(self, i: int) -> tuple[float, float]:
        ox, oy = self.offset_px(self.ra, self.dec)
        return self.stars[i][0] + ox, self.stars[i][1] + oy


def run(engine, sky: SynthSky, seconds: float, t0: float = 1000.0, cycle: float = 1.0,
        on_frame=None):
    """Close the loop for ``seconds``; returns (events, end time)."""
    events = []
    t = t0
    end = t0 + seconds
    while t < end:
        d = engine.on_frame(sky.render(), t)
        events.extend(d.events)
        if on_frame is not None:
            on_frame(t, d)
        for p in d.pulses:
            sky.pulse(p.direction, p.ms)
        step = max(cycle, max((p.ms for p in d.pulses), default=0) / 1000.0)
        sky.advance(step)
        t += step
    return events, t
