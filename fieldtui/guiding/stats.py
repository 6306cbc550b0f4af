"""Guiding statistics: RMS and peak errors per axis, star quality, pulses.

RMS here is what PHD2 and its Log Viewer call RMS: the standard deviation
of the error about its mean, per axis, along the mount axes; total is the
root of the sum of the squares.  Kept both over a rolling window (for the
live display) and since the start (for the night's report).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .events import GuideStep


class _Acc:
    """Running sums for mean and standard deviation."""

    __slots__ = ("n", "s", "s2", "peak")

    def __init__(self) -> None:
        self.n = 0
        self.s = 0.0
        self.s2 = 0.0
        self.peak = 0.0

    def add(self, v: float) -> None:
        self.n += 1
        self.s += v
        self.s2 += v * v
        if abs(v) > abs(self.peak):
            self.peak = v

    @property
    def rms(self) -> float:
        if self.n == 0:
            return 0.0
        m = self.s / self.n
        return math.sqrt(max(self.s2 / self.n - m * m, 0.0))


def _std(vals: list[float]) -> float:
    if not vals:
        return 0.0
    m = sum(vals) / len(vals)
    return math.sqrt(max(sum((v - m) ** 2 for v in vals) / len(vals), 0.0))


@dataclass
class StatsSnapshot:
    frames: int
    rms_ra_px: float
    rms_dec_px: float
    rms_total_px: float
    peak_ra_px: float
    peak_dec_px: float
    rms_ra_arcsec: float | None
    rms_dec_arcsec: float | None
    rms_total_arcsec: float | None
    peak_ra_arcsec: float | None
    peak_dec_arcsec: float | None
    snr: float
    hfd: float
    ra_pulses: int = 0
    dec_pulses: int = 0
    ra_pulse_ms: int = 0
    dec_pulse_ms: int = 0
    ra_limited: int = 0
    dec_limited: int = 0
    north_ms: int = 0
    south_ms: int = 0
    east_ms: int = 0
    west_ms: int = 0
    star_lost_events: int = 0
    dropped_frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict
        return asdict(self)


@dataclass
class GuideStats:
    """Feed it :class:`GuideStep` events (and lost/dropped counts)."""

    pixel_scale: float | None = None  # ″/px
    window_s: float = 120.0
    _all_ra: _Acc = field(default_factory=_Acc)
    _all_dec: _Acc = field(default_factory=_Acc)
    _win: deque = field(default_factory=deque)  # (t, ra, dec, snr, hfd)
    _pulses: dict = field(default_factory=lambda: {"N": 0, "S": 0, "E": 0, "W": 0})
    _counts: dict = field(default_factory=lambda: {"ra": 0, "dec": 0, "ra_lim": 0, "dec_lim": 0})
    star_lost_events: int = 0
    dropped_frames: int = 0
    _snr_sum: float = 0.0
    _hfd_sum: float = 0.0

    def add(self, step: GuideStep) -> None:
        self._all_ra.add(step.ra_px)
        self._all_dec.add(step.dec_px)
        self._snr_sum += step.snr
        self._hfd_sum += step.hfd
        self._win.append((step.t, step.ra_px, step.dec_px, step.snr, step.hfd))
        while self._win and self._win[0][0] < step.t - self.window_s:
            self._win.popleft()
        if step.ra_ms > 0 and step.ra_dir:
            self._pulses[step.ra_dir] += step.ra_ms
            self._counts["ra"] += 1
        if step.dec_ms > 0 and step.dec_dir:
            self._pulses[step.dec_dir] += step.dec_ms
            self._counts["dec"] += 1
        self._counts["ra_lim"] += int(step.ra_limited)
        self._counts["dec_lim"] += int(step.dec_limited)

    def reset(self) -> None:
        pixel_scale, window = self.pixel_scale, self.window_s
        self.__init__(pixel_scale=pixel_scale, window_s=window)  # type: ignore[misc]

    def _snap(self, ra: float, dec: float, pra: float, pdec: float, n: int, snr: float,
              hfd: float) -> StatsSnapshot:
        k = self.pixel_scale
        tot = math.hypot(ra, dec)
        conv = (lambda v: v * k) if k else (lambda v: None)  # noqa: E731
        return StatsSnapshot(
            frames=n, rms_ra_px=ra, rms_dec_px=dec, rms_total_px=tot, peak_ra_px=abs(pra),
            peak_dec_px=abs(pdec), rms_ra_arcsec=conv(ra), rms_dec_arcsec=conv(dec),
            rms_total_arcsec=conv(tot), peak_ra_arcsec=conv(abs(pra)), peak_dec_arcsec=conv(abs(pdec)),
            snr=snr, hfd=hfd, ra_pulses=self._counts["ra"], dec_pulses=self._counts["dec"],
            ra_pulse_ms=self._pulses["E"] + self._pulses["W"],
            dec_pulse_ms=self._pulses["N"] + self._pulses["S"],
            ra_limited=self._counts["ra_lim"], dec_limited=self._counts["dec_lim"],
            north_ms=self._pulses["N"], south_ms=self._pulses["S"], east_ms=self._pulses["E"],
            west_ms=self._pulses["W"], star_lost_events=self.star_lost_events,
            dropped_frames=self.dropped_frames)

    def total(self) -> StatsSnapshot:
        n = self._all_ra.n
        return self._snap(self._all_ra.rms, self._all_dec.rms, self._all_ra.peak, self._all_dec.peak,
                          n, self._snr_sum / n if n else 0.0, self._hfd_sum / n if n else 0.0)

    def window(self) -> StatsSnapshot:
        ra = [w[1] for w in self._win]
        dec = [w[2] for w in self._win]
        n = len(ra)
        pra = max(ra, key=abs) if ra else 0.0
        pdec = max(dec, key=abs) if dec else 0.0
        return self._snap(_std(ra), _std(dec), pra, pdec, n,
                          sum(w[3] for w in self._win) / n if n else 0.0,
                          sum(w[4] for w in self._win) / n if n else 0.0)
