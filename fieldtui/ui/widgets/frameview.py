"""A star image drawn with half-block characters in the theme's reds.

Each terminal cell shows two image rows (upper half block: foreground is the
top pixel, background the bottom one). Levels are quantised to a small style
table and runs of equal cells are merged, so a black sky costs few bytes.
"""

from __future__ import annotations

import base64

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

NIGHT_LEVELS = ["#000000", "#5f0000", "#870000", "#af0000", "#d70000", "#ff0000"]
#: at night on a 16- or 8-colour terminal (one red): a level per glyph, by night level 0-5
LOW_GLYPHS = " ░░▒▓█"
DAY_LEVELS = ["#000000", "#262626", "#4e4e4e", "#767676", "#9e9e9e", "#c6c6c6", "#eeeeee", "#ffffff"]


def decode_preview(p: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(p["pixels"]), dtype=np.uint8).reshape(p["height"], p["width"])


def fit_image(img: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Resample (nearest, by max so stars survive) to cols x (2*rows) pixels."""
    h, w = img.shape
    if cols <= 0 or rows <= 0 or h == 0 or w == 0:
        return np.zeros((0, 0), np.uint8)
    scale = max(w / cols, h / (2 * rows), 1.0)
    out_w, out_h = max(1, int(w / scale)), max(1, int(h / scale))
    ys = (np.arange(out_h) * scale).astype(int)
    xs = (np.arange(out_w) * scale).astype(int)
    step = max(1, int(scale))
    if step > 1:
        hh, ww = (h // step) * step, (w // step) * step
        img = img[:hh, :ww].reshape(hh // step, step, ww // step, step).max(axis=(1, 3))
        ys = np.clip((ys / step).astype(int), 0, img.shape[0] - 1)
        xs = np.clip((xs / step).astype(int), 0, img.shape[1] - 1)
    return img[np.ix_(ys, xs)]


def stretch_levels(img: np.ndarray, n: int, k_sigma: float = 3.0) -> np.ndarray:
    """Levels 0..n-1 of ``img`` (2-D, any dtype) with the sky at level 0 and stars above it.

    The black point is the sky's median plus ``k_sigma`` times its noise (the
    median absolute deviation × 1.4826, a robust standard deviation), the white
    point the brightest pixel; between them a square-root stretch, so faint
    stars get a level of their own while the noise of the sky stays black.
    A linear quantisation of a max-downsampled frame shows mostly speckle:
    the maximum of many noise pixels is well above the sky.
    """
    if img.size == 0:
        return np.zeros(img.shape, np.uint8)
    f = img.astype(np.float32)
    med = float(np.median(f))
    noise = 1.4826 * float(np.median(np.abs(f - med)))
    black = med + k_sigma * max(noise, 0.5)
    white = float(f.max())
    if white <= black:
        return np.zeros(img.shape, np.uint8)
    x = np.clip((f - black) / (white - black), 0.0, 1.0)
    q = np.where(x > 0, 1 + np.minimum(np.sqrt(x) * (n - 1), n - 2), 0)
    return q.astype(np.uint8)


class FrameView(Widget):
    DEFAULT_CSS = "FrameView { height: 1fr; width: 1fr; }"

    def __init__(self, night: bool = True, stretch: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.stretch = stretch  # sky to black, stars above it (live view); else linear levels
        self.levels = NIGHT_LEVELS if night else DAY_LEVELS
        self._styles = self._make_styles()
        self._img: np.ndarray | None = None
        self._lines: list[Strip] = []
        self._key: tuple | None = None
        self.marks: list[tuple[float, float, str]] = []  # (x, y, char) in source pixels

    def set_night(self, night: bool) -> None:
        self.levels = NIGHT_LEVELS if night else DAY_LEVELS
        self._styles = self._make_styles()
        self._key = None
        self.refresh()

    def _make_styles(self) -> dict[tuple[int, int], Style]:
        return {(a, b): Style(color=self.levels[a], bgcolor=self.levels[b])
                for a in range(len(self.levels)) for b in range(len(self.levels))}

    def show(self, img: np.ndarray | None) -> None:
        self._img = img
        self._key = None
        self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return container.height

    @property
    def low_colour(self) -> bool:
        return self.levels is NIGHT_LEVELS and bool(getattr(self.app, "night_low", False))

    def _build_low(self, q: np.ndarray, marks: dict[tuple[int, int], str]) -> None:
        """One red: each cell a glyph for the brighter of its two pixels (no red on red)."""
        style = Style(color=self.levels[4], bgcolor=self.levels[0])
        for r in range(q.shape[0] // 2):
            cells = np.maximum(q[2 * r], q[2 * r + 1])
            text = "".join(marks.get((r, c), LOW_GLYPHS[int(v)]) for c, v in enumerate(cells))
            self._lines.append(Strip([Segment(text, style)]))

    def _build(self) -> None:
        cols, rows = self.size.width, self.size.height
        key = (cols, rows, id(self._img), tuple(self.marks), self.low_colour)
        if key == self._key:
            return
        self._key = key
        self._lines = []
        if self._img is None or cols == 0 or rows == 0:
            return
        fitted = fit_image(self._img, cols, rows)
        n = len(self.levels)
        if self.stretch:
            q = stretch_levels(fitted, n)
        else:
            q = np.minimum((fitted.astype(np.uint16) * n) // 256, n - 1).astype(np.uint8)
        if q.shape[0] % 2:
            q = np.vstack([q, np.zeros((1, q.shape[1]), np.uint8)])
        h, w = self._img.shape
        sx, sy = q.shape[1] / w, q.shape[0] / h
        marks = {(int(my * sy) // 2, int(mx * sx)): ch for mx, my, ch in self.marks}
        if self.low_colour:
            self._build_low(q, marks)
            return
        for r in range(q.shape[0] // 2):
            top, bot = q[2 * r], q[2 * r + 1]
            segs: list[Segment] = []
            run_style, run_len = None, 0
            for c in range(q.shape[1]):
                if (r, c) in marks:
                    if run_len:
                        segs.append(Segment("▀" * run_len, run_style))
                        run_len = 0
                    segs.append(Segment(marks[(r, c)], Style(color=self.levels[-1], bgcolor=self.levels[0])))
                    run_style = None
                    continue
                st = self._styles[(int(top[c]), int(bot[c]))]
                if st is run_style:
                    run_len += 1
                else:
                    if run_len:
                        segs.append(Segment("▀" * run_len, run_style))
                    run_style, run_len = st, 1
            if run_len:
                segs.append(Segment("▀" * run_len, run_style))
            self._lines.append(Strip(segs))

    def render_line(self, y: int) -> Strip:
        self._build()
        if y < len(self._lines):
            line = self._lines[y]
            if line.cell_length < self.size.width:  # pad with black sky, never the terminal's own colour
                line = line.extend_cell_length(self.size.width, self._styles[(0, 0)])
            return line
        return Strip.blank(self.size.width, self._styles[(0, 0)])
