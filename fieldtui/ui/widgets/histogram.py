"""The test exposure's histogram: one line per Bayer channel, the black level marked."""

from __future__ import annotations

import math
from typing import Any

from .plot import ThrottledPlot

NIGHT_CH = {"R": (255, 0, 0), "G1": (175, 0, 0), "G2": (135, 0, 0), "B": (95, 0, 0), "L": (215, 0, 0)}
DAY_CH = {"R": (255, 80, 80), "G1": (80, 200, 80), "G2": (40, 150, 40), "B": (90, 140, 255), "L": (220, 220, 220)}


class HistogramPlot(ThrottledPlot):
    def __init__(self, night: bool = True, **kw: Any) -> None:
        super().__init__(night, **kw)
        self.test: dict[str, Any] | None = None
        self.log_scale = True  # counts on a log scale (faint tails show); False: linear

    def set_test(self, test: dict[str, Any] | None) -> None:
        self.test = test
        self.changed()

    def build_plot(self) -> None:
        plt = self.plt
        t = self.test
        if not t or not t.get("hist"):
            self.border_title = "test exposure: none yet (x)"
            return
        lo, hi = float(t["lo"]), float(t["hi"])
        colours = NIGHT_CH if self.night else DAY_CH
        for name, counts in t["hist"].items():
            n = len(counts)
            xs = [lo + (hi - lo) * (i + 0.5) / n for i in range(n)]
            ys = [math.log10(c + 1) for c in counts] if self.log_scale else [float(c) for c in counts]
            plt.plot(xs, ys, color=colours.get(name, colours["L"]), marker="braille")
        plt.vline(float(t["black"]), color=(255, 0, 0) if self.night else (255, 255, 255))
        plt.yticks([])
        plt.xticks([lo, float(t["black"]), hi], [f"{lo:.0f}", "blk", f"{hi:.0f}"])
        m = t.get("metrics") or {}
        clip = m.get("clipped_black_pct")
        sat = m.get("saturated_pct")
        names = "R G1 G2 B bright→dim" if self.night else "R G1 G2 B"
        scale = "log" if self.log_scale else "lin"
        self.border_title = (f"{t['exposure']:g}s ISO{t.get('iso')} clip {clip:.1f}% sat {sat:.2f}% · {scale}"
                             if clip is not None and sat is not None else f"{t['exposure']:g}s · {scale}")
        self.border_subtitle = names
