"""One physical sky model behind every simulated device.

Positions are tangent-plane offsets in arcseconds on the sky around the
catalogue centre: ``x`` toward east, ``y`` toward north.  The mount's pointing
error (periodic error, polar drift, tracking drift, guide pulses with Dec
backlash, wind gusts) is a function of time, so any camera can integrate it
over its own exposure, and the truth is always there for tests to compare.

Frames render in worker threads while guide pulses arrive on the event loop:
the pulse history is guarded by a lock, and it keeps only the last
:attr:`Sky.PULSE_HISTORY_S` seconds (older breakpoints fold into the first
one), so a night of pulses does not grow it without bound.  The pointing
error is exact for any time inside that window, which is longer than any
exposure.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from ..config import Config

SIDEREAL = 15.041  # arcsec per second of time
ARCSEC_PER_RAD = 206264.806
PHOTONS_MAG0 = 1.0e6  # photons s^-1 cm^-2 in V for a magnitude-0 star
GUST_TAU_S = 4.0


@dataclass
class Optics:
    """What one camera sees through its own optical train."""

    name: str
    width: int
    height: int
    scale: float            # arcsec per pixel
    angle_deg: float        # angle of the east (+RA) axis from +x, toward +y
    flipped: bool
    aperture_cm: float
    efficiency: float       # throughput x QE
    blur_arcsec: float      # optics and focus, combined with seeing in quadrature
    read_noise_e: float
    dark_e_s_20c: float     # dark current at 20 degC
    bias_adu: float
    white_adu: float
    hot: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # x, y, e/s at 20 degC
    flat: np.ndarray | None = None  # vignetting, same shape as the sensor
    bayer: str | None = None

    def to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sky offsets (arcsec, relative to the optical axis) to pixel coordinates."""
        a = math.radians(self.angle_deg)
        u = (x * math.cos(a) - y * math.sin(a)) / self.scale
        v = (x * math.sin(a) + y * math.cos(a)) / self.scale
        if self.flipped:
            u = -u
        return self.width / 2.0 + u, self.height / 2.0 + v


class Sky:
    PULSE_HISTORY_S = 3600.0   # pulse breakpoints kept (longer than any exposure)
    PRUNE_AT = 4096            # prune a pulse history once it has this many breakpoints

    def __init__(self, cfg: Config, t0: float) -> None:
        self.cfg = cfg
        s = cfg.sim
        self.t0 = t0
        self.rng = np.random.default_rng(s.seed)
        self.ra0 = cfg.plan.ra_deg
        self.dec0 = cfg.plan.dec_deg
        self.cosdec = math.cos(math.radians(self.dec0))
        self.guide_rate = cfg.mount.guide_rate
        # Periodic error: fundamental plus 2nd and 3rd harmonics, RA-axis arcsec.
        self.pe_amp = np.array([1.0, 0.2, 0.1]) * s.pe_amplitude_arcsec
        self.pe_phase = self.rng.uniform(0, 2 * math.pi, 3)
        self.pe_period = s.pe_period_s
        # Barrett: polar error (arcmin) = 3.8 x drift (arcsec/min) / cos(dec)
        self.dec_drift_per_s = s.polar_error_arcmin * self.cosdec / 3.8 / 60.0
        self.ra_drift_per_s = s.ra_drift_arcsec_min / 60.0
        self._gusts = self._make_gusts(48 * 3600.0)
        # Guide-pulse history as monotonic breakpoints (time, cumulative offset).
        self._ra_t = [t0]
        self._ra_v = [0.0]
        self._dec_t = [t0]
        self._dec_v = [0.0]
        self._pulse_lock = threading.Lock()
        self._pulse_arrays: tuple[np.ndarray, ...] | None = None  # cached for np.interp
        # Where the Dec worm sits inside its backlash gap, arcsec from the side
        # a south pulse pushes on (0) to the side a north pulse pushes on (the
        # full gap): unknown to the guider when the night starts.
        self._dec_gap_pos = s.backlash_start * s.backlash_arcsec
        self.slew_offset = np.zeros(2)  # goto error, arcsec (x east, y north)
        self.pier_flipped = False       # on the other side of the pier than at the start
        self.focus_position = cfg.focuser.max_position // 2
        self.clouds_until = -math.inf
        self.cloud_factor = 0.02
        self._stars_x, self._stars_y, self._stars_m = self._make_stars()
        self._field_key = (round(self.ra0 % 360.0, 1), round(self.dec0, 1))
        self._fields: dict[tuple[float, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.guide = self._guide_optics()
        self.main = self._main_optics()
        self._noise_pool: dict[tuple[int, int], np.ndarray] = {}
        self._own_rng = np.random.default_rng([s.seed, 0x5EE])  # each star's own jitter

    # ----- catalogue ---------------------------------------------------
    def recentre(self, ra_deg: float, dec_deg: float) -> None:
        """The mount now points at another part of the sky: its own star field.

        Each position has one field (the same stars when the mount comes back)."""
        key = (round(ra_deg % 360.0, 1), round(dec_deg, 1))
        if key == self._field_key:
            return
        self._fields.setdefault(self._field_key, (self._stars_x, self._stars_y, self._stars_m))
        self._field_key = key
        self.ra0, self.dec0 = ra_deg % 360.0, dec_deg
        self.cosdec = math.cos(math.radians(self.dec0))
        self.dec_drift_per_s = self.cfg.sim.polar_error_arcmin * self.cosdec / 3.8 / 60.0
        if key not in self._fields:
            rng = np.random.default_rng([self.cfg.sim.seed, int(key[0] * 10), int((key[1] + 90) * 10)])
            self._fields[key] = self._make_stars(rng)
        self._stars_x, self._stars_y, self._stars_m = self._fields[key]

    def _make_stars(self, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stars over a 2.4 deg square: N(<m) = 5 x 10^(0.42 (m - 10)) per square degree."""
        rng = rng or self.rng
        side_deg = 2.4
        m_min, m_max = 4.0, 16.5
        per_deg2 = lambda m: 5.0 * 10 ** (0.42 * (m - 10.0))  # noqa: E731
        n = rng.poisson((per_deg2(m_max) - per_deg2(m_min)) * side_deg**2)
        u = rng.random(n)
        lo, hi = per_deg2(m_min), per_deg2(m_max)
        mags = 10.0 + np.log10((lo + u * (hi - lo)) / 5.0) / 0.42
        half = side_deg * 3600 / 2
        x = rng.uniform(-half, half, n)
        y = rng.uniform(-half, half, n)
        # A bright star near the middle, as a user would centre one to focus on.
        x = np.append(x, rng.uniform(-300, 300))
        y = np.append(y, rng.uniform(-300, 300))
        mags = np.append(mags, 6.5)
        order = np.argsort(mags)
        return x[order], y[order], mags[order]

    def _hot_pixels(self, w: int, h: int, n: int, rate: float) -> np.ndarray:
        return np.column_stack([self.rng.integers(0, w, n), self.rng.integers(0, h, n),
                                rate * self.rng.lognormal(0, 0.8, n)]).astype(float)

    def _guide_optics(self) -> Optics:
        c, g = self.cfg, self.cfg.guide_camera
        return Optics(
            name="guide", width=g.width, height=g.height, scale=c.guide_scale,
            angle_deg=c.sim.guide_angle_deg, flipped=c.sim.guide_flipped,
            aperture_cm=c.guide_scope.aperture_mm / 10.0, efficiency=0.6 * 0.75,
            blur_arcsec=c.sim.guide_blur_arcsec, read_noise_e=5.0, dark_e_s_20c=0.05,
            bias_adu=16.0, white_adu=2 ** g.bit_depth - 1,
            hot=self._hot_pixels(g.width, g.height, c.sim.hot_pixels, 40.0))

    def _main_optics(self) -> Optics:
        c, m = self.cfg, self.cfg.main_camera
        yy, xx = np.ogrid[0:m.height, 0:m.width]
        norm = np.float32((m.width / 2) ** 2 + (m.height / 2) ** 2)
        r2 = ((xx.astype(np.float32) - m.width / 2) ** 2 + (yy.astype(np.float32) - m.height / 2) ** 2) / norm
        flat = (np.float32(1.0) - np.float32(c.sim.vignetting) * r2).astype(np.float32)
        return Optics(
            name="main", width=m.width, height=m.height, scale=c.main_scale,
            angle_deg=c.sim.main_angle_deg, flipped=False,
            aperture_cm=c.telescope.aperture_mm / 10.0, efficiency=0.55 * 0.35,
            blur_arcsec=0.0, read_noise_e=3.0, dark_e_s_20c=0.08,
            bias_adu=float(m.black_level), white_adu=float(m.white_level),
            hot=self._hot_pixels(m.width, m.height, c.sim.hot_pixels, 8.0),
            flat=flat, bayer=m.bayer or None)

    # ----- the mount ------------------------------------------------------
    def set_pier_flipped(self, flipped: bool) -> None:
        """The telescope is now on the other side of the pier than at the start (``True``) or
        back on its first side: a German equatorial turns both cameras 180° on the sky, so
        both images rotate by 180° about their centres (the configured camera angles hold on
        the first side)."""
        if flipped == self.pier_flipped:
            return
        self.pier_flipped = flipped
        for optics in (self.guide, self.main):
            optics.angle_deg = (optics.angle_deg + 180.0) % 360.0

    def _make_gusts(self, span: float) -> np.ndarray:
        s = self.cfg.sim
        n = self.rng.poisson(s.gusts_per_hour * span / 3600.0) if s.gusts_per_hour > 0 else 0
        t = self.t0 + np.sort(self.rng.uniform(0, span, n))
        ang = self.rng.uniform(0, 2 * math.pi, n)
        size = s.gust_arcsec * self.rng.uniform(0.5, 1.5, n)
        return np.column_stack([t, size * np.cos(ang), size * np.sin(ang)]) if n else np.zeros((0, 3))

    def periodic_error(self, t: np.ndarray | float) -> np.ndarray:
        """RA-axis periodic error in arcsec (the star moves cos(Dec) of it)."""
        ph = 2 * math.pi * (np.asarray(t, dtype=float) - self.t0) / self.pe_period
        return sum(a * np.sin((k + 1) * ph + p) for k, (a, p) in enumerate(zip(self.pe_amp, self.pe_phase)))

    def mount_error(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """The true pointing error on the sky at time ``t``: (east, north) arcsec."""
        t = np.asarray(t, dtype=float)
        dt = t - self.t0
        rt, rv, dt_, dv = self._pulses()
        ra_axis = self.periodic_error(t) + self.ra_drift_per_s * dt + np.interp(t, rt, rv)
        x = ra_axis * self.cosdec + self.slew_offset[0]
        y = self.dec_drift_per_s * dt + np.interp(t, dt_, dv) + self.slew_offset[1]
        if len(self._gusts):
            g = self._gusts
            age = t[..., None] - g[:, 0]
            w = np.where(age >= 0, np.exp(-np.clip(age, 0, None) / GUST_TAU_S), 0.0)
            x = x + w @ g[:, 1]
            y = y + w @ g[:, 2]
        return x, y

    def apply_pulse(self, direction: str, ms: float, t: float) -> None:
        """Move the pointing at the guide rate for ``ms`` from time ``t``.

        E/W move the RA axis (the star moves cos(Dec) of it on the sky);
        N/S move Dec through a gear with ``backlash_arcsec`` of play.  The
        worm's place inside that gap is kept between pulses: a north pulse
        first takes up what is left of the gap on the north side (the gap
        minus what earlier north motion already took up), then the axis
        moves; a south pulse likewise.  So a short reversal that did not
        cross the whole gap costs only the part it crossed when the
        direction turns back, and the first pulse of the night meets the
        play left by ``sim.backlash_start`` (where the gear starts in the
        gap).
        """
        move = self.guide_rate * SIDEREAL * ms / 1000.0
        dur = ms / 1000.0
        if direction not in ("E", "W", "N", "S"):
            raise ValueError(f"unknown guide direction {direction!r}")
        with self._pulse_lock:
            if direction in ("E", "W"):
                sign = 1.0 if direction == "E" else -1.0
                self._append(self._ra_t, self._ra_v, t, dur, sign * move)
            else:
                sign = 1 if direction == "N" else -1
                gap = max(self.cfg.sim.backlash_arcsec, 0.0)
                pos = min(max(self._dec_gap_pos, 0.0), gap)
                play = gap - pos if sign > 0 else pos
                take = min(move, play)
                self._dec_gap_pos = pos + sign * take
                self._append(self._dec_t, self._dec_v, t + dur * take / move if move else t,
                             dur * (1 - take / move) if move else 0.0, sign * (move - take))
            self._pulse_arrays = None

    @property
    def dec_play_arcsec(self) -> tuple[float, float]:
        """Ground truth: the Dec play (arcsec) a north and a south pulse would
        take up now before the axis moves."""
        gap = max(self.cfg.sim.backlash_arcsec, 0.0)
        pos = min(max(self._dec_gap_pos, 0.0), gap)
        return gap - pos, pos

    def _pulses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The pulse histories as arrays (RA t, RA offset, Dec t, Dec offset), consistent
        even while pulses arrive from another thread."""
        with self._pulse_lock:
            if self._pulse_arrays is None:
                self._pulse_arrays = tuple(np.asarray(a, dtype=float) for a in
                                           (self._ra_t, self._ra_v, self._dec_t, self._dec_v))
            return self._pulse_arrays  # type: ignore[return-value]

    @property
    def pulse_breakpoints(self) -> int:
        """Breakpoints held in the pulse histories (RA + Dec); bounded over a night."""
        return len(self._ra_t) + len(self._dec_t)

    def _append(self, ts: list[float], vs: list[float], t: float, dur: float, dv: float) -> None:
        t = max(t, ts[-1])
        if t > ts[-1]:
            ts.append(t)
            vs.append(vs[-1])
        ts.append(t + max(dur, 1e-6))
        vs.append(vs[-1] + dv)
        if len(ts) >= self.PRUNE_AT:
            # Fold what is older than the window into one breakpoint: before it,
            # np.interp holds its value, which is the offset at that time.
            i = bisect.bisect_right(ts, t - self.PULSE_HISTORY_S) - 1
            if i > 0:
                del ts[:i]
                del vs[:i]

    # ----- atmosphere -----------------------------------------------------
    def seeing_jitter_sigma(self, exposure: float) -> float:
        """Per-axis RMS (arcsec) of the centroid's random jump in an exposure."""
        s = self.cfg.sim
        return s.seeing_jitter * s.seeing_fwhm_arcsec / math.sqrt(max(exposure, 0.05))

    def seeing_floor(self, exposure: float) -> float:
        """Total RMS (arcsec) a perfect mount would still show: the jitter alone."""
        return math.sqrt(2.0) * self.seeing_jitter_sigma(exposure)

    def star_fwhm_arcsec(self, optics: Optics, seeing: float) -> float:
        diffraction = 1.03 * 0.55e-6 / (optics.aperture_cm / 100.0) * ARCSEC_PER_RAD
        focus = 0.0
        if optics.name == "main":
            focus = self.cfg.sim.focus_blur_arcsec_per_step * (self.focus_position - self.cfg.sim.best_focus)
        return math.sqrt(seeing**2 + diffraction**2 + optics.blur_arcsec**2 + focus**2)

    # ----- rendering ------------------------------------------------------
    def electrons_per_s(self, optics: Optics, mag: np.ndarray | float) -> np.ndarray:
        area = math.pi * (optics.aperture_cm / 2.0) ** 2
        return PHOTONS_MAG0 * 10 ** (-0.4 * np.asarray(mag)) * area * optics.efficiency

    def sky_e_per_s(self, optics: Optics) -> float:
        return float(self.electrons_per_s(optics, self.cfg.sim.sky_mag_arcsec2)) * optics.scale**2

    def render(self, optics: Optics, t_start: float, exposure: float, *, gain_e_adu: float,
               light: bool = True, flat_level_e: float | None = None,
               roi: tuple[int, int, int, int] | None = None, bit_depth: int = 16,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict]:
        """Render one exposure; returns (uint16 ADU array, ground truth)."""
        rng = rng or self.rng
        x0, y0, w, h = roi if roi else (0, 0, optics.width, optics.height)
        exposure = max(exposure, 1e-4)
        mean = np.zeros((h, w), dtype=np.float32)
        truth: dict = {"t_start": t_start, "exposure": exposure}
        if light and flat_level_e is None:
            seeing = self.cfg.sim.seeing_fwhm_arcsec * float(np.clip(rng.normal(1.0, 0.07), 0.75, 1.3))
            fwhm_as = self.star_fwhm_arcsec(optics, seeing)
            sigma_px = fwhm_as / 2.3548 / optics.scale
            n_sub = int(min(64, max(1, math.ceil(exposure / (0.5 if optics.name == "guide" else 2.0)))))
            ts = t_start + (np.arange(n_sub) + 0.5) * exposure / n_sub
            ex, ey = self.mount_error(ts)
            jit = self.seeing_jitter_sigma(exposure)
            jx, jy = rng.normal(0.0, jit, 2)
            own = None
            if optics.name == "guide":
                # Stars arcminutes apart see different air through a small
                # aperture: only a share of the jitter's variance is common
                # to all stars, the rest is each star's own (from a generator
                # of its own, so the other random streams stay as they were).
                shared = min(max(self.cfg.sim.seeing_jitter_shared, 0.0), 1.0)
                jx, jy = jx * math.sqrt(shared), jy * math.sqrt(shared)
                own = math.sqrt(1.0 - shared) * jit / optics.scale  # px
            # Stars move opposite to the pointing error.
            dx = -(ex - ex.mean()) + (-ex.mean() + jx)
            dy = -(ey - ey.mean()) + (-ey.mean() + jy)
            px0, py0 = optics.to_pixels(self._stars_x, self._stars_y)
            cx, cy = optics.to_pixels(np.array([0.0]), np.array([0.0]))
            ux, uy = optics.to_pixels(dx, dy)
            offx, offy = ux - cx[0], uy - cy[0]
            flux = self.electrons_per_s(optics, self._stars_m) * exposure
            if t_start < self.clouds_until:
                flux = flux * self.cloud_factor
            margin = 5 * sigma_px + 2
            sel = ((px0 > x0 - margin - 2000) & (px0 < x0 + w + margin + 2000)
                   & (py0 > y0 - margin - 2000) & (py0 < y0 + h + margin + 2000)
                   & (flux > 3.0 * optics.read_noise_e))
            sx, sy, sf = px0[sel] - x0, py0[sel] - y0, flux[sel]
            mx, my = sx + offx.mean(), sy + offy.mean()
            inside = (mx > -margin) & (mx < w + margin) & (my > -margin) & (my < h + margin)
            sx, sy, sf = sx[inside], sy[inside], sf[inside]
            if optics.flat is not None and len(sf):
                fy = np.clip((sy + y0).astype(int), 0, optics.height - 1)
                fx = np.clip((sx + x0).astype(int), 0, optics.width - 1)
                sf = sf * optics.flat[fy, fx]
            if optics.name == "guide":
                if own:
                    sx = sx + self._own_rng.normal(0.0, own, len(sx))
                    sy = sy + self._own_rng.normal(0.0, own, len(sy))
                self._stamps(mean, sx, sy, sf, offx, offy, sigma_px)
            else:
                self._deposit(mean, sx, sy, sf, offx, offy, sigma_px)
            sky = self.sky_e_per_s(optics) * exposure
            mean += np.float32(sky) * (optics.flat[y0:y0 + h, x0:x0 + w] if optics.flat is not None else 1)
            truth.update(fwhm_arcsec=fwhm_as, fwhm_px=fwhm_as / optics.scale, jitter=(float(jx), float(jy)),
                         mount_error=(float(ex.mean()), float(ey.mean())), star_shift_px=(float(offx.mean()), float(offy.mean())),
                         n_stars=int(len(sf)), sky_e=sky)
        elif flat_level_e is not None:
            mean += np.float32(flat_level_e) * (optics.flat[y0:y0 + h, x0:x0 + w] if optics.flat is not None else 1)
        # Dark current doubles every 6 degC; hot pixels scale the same way.
        tfac = 2.0 ** ((self.cfg.sim.temperature_c - 20.0) / 6.0)
        mean += np.float32(optics.dark_e_s_20c * tfac * exposure)
        hot = optics.hot
        if len(hot):
            hx, hy = hot[:, 0].astype(int) - x0, hot[:, 1].astype(int) - y0
            ok = (hx >= 0) & (hx < w) & (hy >= 0) & (hy < h)
            np.add.at(mean, (hy[ok], hx[ok]), (hot[ok, 2] * tfac * exposure).astype(np.float32))
        if optics.bayer:
            mean *= self._bayer_response(optics.bayer, h, w, y0, x0)
        # Shot noise and read noise together, Gaussian with variance mean + read^2.
        sd = np.sqrt(mean + np.float32(optics.read_noise_e ** 2))
        sd *= self._normal(h, w, rng)
        adu = mean
        adu += sd
        adu *= np.float32(1.0 / gain_e_adu)
        adu += np.float32(optics.bias_adu)
        np.clip(adu, 0, optics.white_adu, out=adu)
        return np.rint(adu).astype(np.uint16), truth

    @staticmethod
    def _bayer_response(pattern: str, h: int, w: int, y0: int, x0: int) -> np.ndarray:
        resp = {"R": 0.75, "G": 1.0, "B": 0.6}
        tile = np.array([[resp[pattern[0]], resp[pattern[1]]], [resp[pattern[2]], resp[pattern[3]]]], np.float32)
        tile = np.roll(tile, (-(y0 % 2), -(x0 % 2)), axis=(0, 1))
        return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]

    def _normal(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """Unit Gaussian noise: a random window (and sign) of a cached field per frame size."""
        key = (h, w)
        pool = self._noise_pool.get(key)
        if pool is None:
            pool = rng.standard_normal((h + 97, w + 131), dtype=np.float32)
            self._noise_pool[key] = pool
        oy, ox = int(rng.integers(0, 97)), int(rng.integers(0, 131))
        view = pool[oy:oy + h, ox:ox + w]
        return -view if rng.random() < 0.5 else view

    @staticmethod
    def _stamps(img: np.ndarray, sx, sy, sf, offx, offy, sigma: float) -> None:
        """Pixel-integrated Gaussian stars (pixel i spans i-0.5..i+0.5), averaged over the sub-exposure positions."""
        if not len(sf):
            return
        h, w = img.shape
        r = int(math.ceil(4 * sigma)) + 1
        k = np.arange(-r, r + 1)
        n_sub = len(offx)
        xs = (sx[:, None] + offx[None, :]).ravel()
        ys = (sy[:, None] + offy[None, :]).ravel()
        fs = np.repeat(sf / n_sub, n_sub)
        ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
        s2 = sigma * math.sqrt(2)

        def profile(c, i):
            edges = (i[:, None] + k[None, :]).astype(float)
            return 0.5 * (erf((edges + 0.5 - c[:, None]) / s2) - erf((edges - 0.5 - c[:, None]) / s2)), edges.astype(int)

        gx, ex = profile(xs, ix)
        gy, ey = profile(ys, iy)
        stamps = fs[:, None, None] * gy[:, :, None] * gx[:, None, :]
        yy = np.broadcast_to(ey[:, :, None], stamps.shape)
        xx = np.broadcast_to(ex[:, None, :], stamps.shape)
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        np.add.at(img, (yy[ok], xx[ok]), stamps[ok].astype(np.float32))

    @staticmethod
    def _deposit(img: np.ndarray, sx, sy, sf, offx, offy, sigma: float) -> None:
        """Bilinear point deposit of every sub-exposure position, then the PSF."""
        if not len(sf):
            return
        h, w = img.shape
        n_sub = len(offx)
        xs = (sx[:, None] + offx[None, :]).ravel()
        ys = (sy[:, None] + offy[None, :]).ravel()
        fs = np.repeat(sf / n_sub, n_sub)
        ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
        fx, fy = xs - ix, ys - iy
        pts = np.zeros_like(img)
        for ddy, ddx, wgt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                              (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            yy, xx = iy + ddy, ix + ddx
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            np.add.at(pts, (yy[ok], xx[ok]), (fs[ok] * wgt[ok]).astype(np.float32))
        # The bilinear kernel adds 1/6 px^2 of variance per axis: take it off the PSF.
        img += gaussian_filter(pts, math.sqrt(max(sigma**2 - 1 / 6, 0.05)), truncate=4.0)
