"""Night mode on terminals with 16 or 8 colours (PuTTY's default TERM=xterm, the Linux console).

There the five reds of the night theme all become one red, so a highlighted row
is red on red and a star image a mosaic. In that case every cell is drawn as
ANSI red on black, or reversed (black on red) where the theme has a red
background; the brightest reds are underlined and the dimmest faint. Nothing is
ever bold: on the Linux console bold red is drawn as bright red, which there is
a pink (255,85,85). Images and plots draw their levels with glyphs instead
(see FrameView and the guiding plots).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter

RED = RichColor.from_ansi(1)
BLACK = RichColor.from_ansi(0)
#: (colour name in the config, colours): what ``[ui] colours`` may say
DEPTHS = {"auto": 0, "8": 8, "16": 16, "256": 256, "truecolor": 1 << 24}


def colour_depth(setting: str = "auto", color_system: str | None = None, term: str | None = None) -> int:
    """How many colours the terminal shows: the config's ``[ui] colours`` when it is not "auto",
    else what the terminal says (Rich's detection from TERM and COLORTERM: "standard" is 16;
    TERM=linux, the Linux console, is 8 colours with bold as bright)."""
    if setting != "auto":
        return DEPTHS[setting]
    term = os.environ.get("TERM", "") if term is None else term
    if term == "linux":
        return 8
    return {"standard": 16, "windows": 16, "256": 256, "truecolor": 1 << 24}.get(color_system or "", 1 << 24)


def _red_level(c: Any) -> int:
    """0-255: how bright a colour is (its red channel; the night theme has no other)."""
    if c is None:
        return 0
    if c.is_default:
        return 0
    r, g, b = c.get_truecolor()
    return max(r, g, b)


def _is_glyph(text: str) -> bool:
    """Plot and image cells (braille, blocks, box lines) are never underlined."""
    return any(0x2500 <= ord(ch) <= 0x28FF for ch in text)


@lru_cache(4096)
def night_low_style(style: Style | None, glyph: bool) -> Style:
    """The 16-colour night style of a cell drawn with ``style``: red on black, or reversed
    where the background is red; underline for the brightest text, faint for the dimmest."""
    if style is None:
        return Style(color=RED, bgcolor=BLACK)
    fg, bg = _red_level(style.color), _red_level(style.bgcolor)
    if style.reverse:
        fg, bg = bg, fg
    if bg >= 0x40:  # a red background: cursor row, highlight, key of the current screen
        return Style(color=RED, bgcolor=BLACK, reverse=True, bold=False)
    if fg == 0:
        return Style(color=BLACK, bgcolor=BLACK, bold=False)
    return Style(color=RED, bgcolor=BLACK, bold=False, reverse=False,
                 underline=(fg >= 0xF0 and not glyph) or bool(style.underline),
                 dim=fg <= 0x70)


class NightLowColour(LineFilter):
    """A Textual line filter: every cell red on black or reversed, while ``active()`` says so."""

    def __init__(self, active: Any) -> None:
        super().__init__(enabled=True)
        self.active = active

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not self.active():
            return segments
        return [Segment(s.text, night_low_style(s.style, _is_glyph(s.text)), s.control)
                if not s.control else s for s in segments]
