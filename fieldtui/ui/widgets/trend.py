"""A focus trend: HFR or FWHM against time or focuser position, the best so far and the V-curve fit.

A :class:`PlotextPlot` using its own ``plt``; series colours are passed as
RGB tuples (plotext's defaults are blue and green). Redraws are capped at
:data:`MAX_HZ` a second: new data marks the plot dirty and one timer draws it.
"""

from __future__ import annotations

import math
from typing import Any

from .plot import ThrottledPlot

# (line, points, best, fit) colours
NIGHT = ((135, 0, 0), (215, 0, 0), (255, 0, 0), (175, 0, 0))
DAY = ((120, 120, 120), (230, 230, 230), (255, 215, 0), (95, 175, 255))


def rgb_hex(c: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % c


class TrendPlot(ThrottledPlot):
    """HFR or FWHM of the followed star; x is time (s) or the focuser position.

    Canvas, axes and ticks come from the app theme (textual-plotext's "auto"
    theme), so they follow day and night; only series colours are set here."""

    def __init__(self, night: bool = True, **kw: Any) -> None:
        super().__init__(night, **kw)
        self.points: list[list[Any]] = []  # [n, t, focuser, hfr, fwhm]
        self.metric = "fwhm"
        self.axis = "focuser"
        self.best: dict[str, Any] | None = None
        self.fit: dict[str, Any] | None = None  # for the metric shown

    def set_data(self, points: list[list[Any]], best: dict[str, Any] | None, fit: dict[str, Any] | None) -> None:
        self.points, self.best, self.fit = points, best, fit
        self.changed()

    def effective_axis(self) -> str:
        if self.axis == "focuser" and any(p[2] is not None for p in self.points):
            return "focuser"
        return "time"

    def build_plot(self) -> None:
        plt = self.plt
        line, pts, best_c, fit_c = NIGHT if self.night else DAY
        col = 3 if self.metric == "hfr" else 4
        name = self.metric.upper()
        axis = self.effective_axis()
        if axis == "focuser":
            data = [(p[2], p[col]) for p in self.points if p[2] is not None and p[col] is not None]
        else:
            t0 = self.points[0][1] if self.points else 0.0
            data = [(p[1] - t0, p[col]) for p in self.points if p[col] is not None]
        head = f"{name} vs {'focuser' if axis == 'focuser' else 'time (s)'}"
        if not data:
            self.border_title = f"{head}: no data yet"
            return
        xs, ys = [d[0] for d in data], [d[1] for d in data]
        fit_note = ""
        if axis == "focuser" and self.fit:
            # the fitted V first, so the measured points are drawn over it and stay visible
            f = self.fit
            lo, hi = min(xs + [f["c"]]), max(xs + [f["c"]])
            n = 60
            fx = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
            fy = [math.sqrt(f["a"] ** 2 + (f["b"] * (x - f["c"])) ** 2) for x in fx]
            plt.plot(fx, fy, color=fit_c, marker="braille")
            plt.vline(f["c"], color=fit_c)
            fit_note = f" fit {f['best']}"
        if axis == "time":
            plt.plot(xs, ys, color=line, marker="braille")
        plt.scatter(xs, ys, color=pts, marker="•" if len(xs) < 60 else "dot")
        title = f"{head} · {ys[-1]:.2f}"
        bkey = self.metric
        if self.best and self.best.get(bkey) is not None:
            bx = self.best.get("focuser") if axis == "focuser" else self.best["t"] - (self.points[0][1] if self.points else 0)
            if bx is not None:
                plt.scatter([bx], [self.best[bkey]], color=best_c, marker="◆")
            title += f" best {self.best[bkey]:.2f}"
        self.border_title = title + fit_note
