"""Guiding plots: RA/Dec deviation over time, correction pulses, and a bullseye of recent errors.

Each is a :class:`PlotextPlot` drawing with its own ``plt``; series colours
are RGB tuples (plotext's defaults are blue and green, which must never
show at night). New data only marks a plot dirty; it is drawn at most
:data:`MAX_HZ` times a second, and not at all while nothing changed.

Points are ``[t, ra, dec, ra_ms, dec_ms]`` (errors in ″, or px when the
pixel scale is unknown; pulses + west/north, − east/south; ``ra`` None for
a dropped frame), as the rig service's ``guide.state`` history and
``GuidePoint`` events give them.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from .plot import ThrottledPlot

# RA, Dec, zero line / rings, newest point
NIGHT = {"ra": (255, 0, 0), "dec": (135, 0, 0), "axis": (95, 0, 0), "ring": (175, 0, 0), "last": (255, 0, 0)}
DAY = {"ra": (95, 175, 255), "dec": (255, 95, 95), "axis": (138, 138, 138), "ring": (215, 175, 0),
       "last": (255, 255, 255)}

MINUTES = (1, 2, 5, 10, 20, 30, 60)
SCALES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)  # ± range of the error axes (″); 0: automatic


class GuidePlot(ThrottledPlot):
    @property
    def colours(self) -> dict[str, tuple[int, int, int]]:
        return NIGHT if self.night else DAY

    @property
    def low_colour(self) -> bool:
        """Night on a 16-colour terminal: one red, so Dec is drawn with dots instead of a dimmer red."""
        return self.night and bool(getattr(self.app, "night_low", False))

    @property
    def dec_marker(self) -> str:
        return "·" if self.low_colour else "braille"


def window(points: Iterable[Sequence[Any]], now: float, minutes: float) -> list[Sequence[Any]]:
    since = now - minutes * 60.0
    return [p for p in points if p[0] >= since and p[1] is not None]


def auto_scale(values: Iterable[float], floor: float = 1.0) -> float:
    m = max((abs(v) for v in values), default=0.0)
    for s in SCALES[1:]:
        if m <= s:
            return max(s, floor)
    return max(math.ceil(m), floor)


class _TimePlot(GuidePlot):
    def __init__(self, night: bool = True, **kw: Any) -> None:
        super().__init__(night, **kw)
        self.points: Sequence[Sequence[Any]] = []
        self.now = 0.0
        self.minutes = 10.0
        self.unit = "″"

    def set_data(self, points: Sequence[Sequence[Any]], now: float) -> None:
        self.points, self.now = points, now
        self.changed()


class DeviationPlot(_TimePlot):
    """RA and Dec error against time (minutes before now)."""

    def __init__(self, night: bool = True, **kw: Any) -> None:
        super().__init__(night, **kw)
        self.scale = 0.0  # ± range; 0: automatic

    def build_plot(self) -> None:
        plt, c = self.plt, self.colours
        pts = window(self.points, self.now, self.minutes)
        scale = self.scale or auto_scale([v for p in pts for v in (p[1], p[2])])
        names = ("RA line, Dec ·" if self.low_colour else "RA bright, Dec dim") if self.night else "RA blue, Dec red"
        self.border_title = f"{names} · ±{scale:g}{self.unit} · {self.minutes:g} min"
        plt.xlim(-self.minutes, 0)
        plt.ylim(-scale, scale)
        ticks = [-scale, -scale / 2, 0.0, scale / 2, scale]
        plt.yticks(ticks, [f"{t:g}" for t in ticks])
        plt.hline(0, color=c["axis"])
        if not pts:
            return
        xs = [(p[0] - self.now) / 60.0 for p in pts]
        clip = lambda v: max(-scale, min(scale, v))  # noqa: E731
        plt.plot(xs, [clip(p[2]) for p in pts], color=c["dec"], marker=self.dec_marker)
        plt.plot(xs, [clip(p[1]) for p in pts], color=c["ra"], marker="braille")


class PulsePlot(_TimePlot):
    """Correction pulses (ms) against time, RA and Dec filled to zero, summed per column."""

    def build_plot(self) -> None:
        plt, c = self.plt, self.colours
        span = self.minutes * 60.0
        since = self.now - span
        cols = max(10, 2 * max(1, self.size.width - 8))
        ra = [0.0] * cols
        dec = [0.0] * cols
        n = 0
        for p in self.points:
            if p[0] < since or p[1] is None:
                continue
            i = min(cols - 1, int((p[0] - since) / span * cols))
            ra[i] += p[3]
            dec[i] += p[4]
            n += 1
        top = max([abs(v) for v in ra + dec] + [100.0])
        self.border_title = f"pulses ms, W+ N+ · max {top:.0f}"
        plt.xlim(-self.minutes, 0)
        plt.ylim(-top, top)
        plt.yticks([-top, 0.0, top], [f"{-top:.0f}", "0", f"{top:.0f}"])
        plt.hline(0, color=c["axis"])
        if not n:
            return
        xs = [-self.minutes + (i + 0.5) * self.minutes / cols for i in range(cols)]
        plt.plot(xs, dec, color=c["dec"], marker=self.dec_marker, fillx=True)
        plt.plot(xs, ra, color=c["ra"], marker="braille", fillx=True)


class Bullseye(GuidePlot):
    """The recent errors as points (x: RA, y: Dec), a ring at the total RMS, the newest marked."""

    RECENT = 120

    def __init__(self, night: bool = True, **kw: Any) -> None:
        super().__init__(night, **kw)
        self.points: Sequence[Sequence[Any]] = []
        self.scale = 0.0
        self.rms: float | None = None
        self.unit = "″"

    def set_data(self, points: Sequence[Sequence[Any]], rms: float | None) -> None:
        self.points, self.rms = points, rms
        self.changed()

    def build_plot(self) -> None:
        plt, c = self.plt, self.colours
        recent = [p for p in list(self.points)[-self.RECENT:] if p[1] is not None]
        scale = self.scale or auto_scale([v for p in recent for v in (p[1], p[2])])
        self.border_title = f"RA×Dec ±{scale:g}{self.unit}"
        plt.xlim(-scale, scale)
        plt.ylim(-scale, scale)
        plt.hline(0, color=c["axis"])
        plt.vline(0, color=c["axis"])
        plt.xticks([-scale, 0, scale], [f"{-scale:g}", "0", f"{scale:g}"])
        plt.yticks([-scale, 0, scale], [f"{-scale:g}", "0", f"{scale:g}"])
        if self.rms:
            k = 48
            r = min(self.rms, scale)
            plt.plot([r * math.cos(2 * math.pi * i / k) for i in range(k + 1)],
                     [r * math.sin(2 * math.pi * i / k) for i in range(k + 1)], color=c["ring"],
                     marker="braille")
        if not recent:
            return
        clip = lambda v: max(-scale, min(scale, v))  # noqa: E731
        plt.scatter([clip(p[1]) for p in recent[:-1]], [clip(p[2]) for p in recent[:-1]], color=c["dec"],
                    marker="braille")
        plt.scatter([clip(recent[-1][1])], [clip(recent[-1][2])], color=c["last"], marker="●")
