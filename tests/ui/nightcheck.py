"""Night safety: every colour a screen can emit must be a red (green and blue <= 0x18)."""

from __future__ import annotations

import html
import re

LIMIT = 0x18

# The xterm 256-colour palette: 16-231 the 6x6x6 cube, 232-255 greys.
_CUBE = [0, 95, 135, 175, 215, 255]


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        # System colours depend on the terminal; only black is safe.
        return (0, 0, 0) if n == 0 else (255, 255, 255)
    if n < 232:
        n -= 16
        return _CUBE[n // 36], _CUBE[(n // 6) % 6], _CUBE[n % 6]
    v = 8 + 10 * (n - 232)
    return v, v, v


def is_night(rgb: tuple[int, int, int]) -> bool:
    return rgb[1] <= LIMIT and rgb[2] <= LIMIT


def hex_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def svg_colours(svg: str) -> set[str]:
    """Colours a Textual SVG screenshot shows inside the terminal (not the window chrome)."""
    styles = dict(re.findall(r"\.(terminal-\d+-r\d+) \{ fill: (#[0-9a-fA-F]{6})", svg))
    used: set[str] = set()
    for cls, content in re.findall(r'<text class="(terminal-\d+-r\d+)"[^>]*>([^<]*)</text>', svg):
        if html.unescape(content).replace("\xa0", " ").strip():
            used.add(styles[cls])
    for attrs in re.findall(r"<rect ([^>]*)/?>", svg):
        if 'rx="8"' in attrs:
            continue  # the window frame of the screenshot, not terminal output
        m = re.search(r'fill="(#[0-9a-fA-F]{6})"', attrs)
        if m:
            used.add(m.group(1))
    return used


def bad_svg_colours(svg: str) -> list[str]:
    return sorted(c for c in svg_colours(svg) if not is_night(hex_rgb(c)))


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def sgr_colours(text: str) -> list[tuple[str, tuple[int, int, int]]]:
    """Every colour set by SGR codes in ``text`` (as a terminal receives them)."""
    out = []
    for params in SGR.findall(text):
        p = [int(x) if x else 0 for x in params.split(";")] if params else [0]
        i = 0
        while i < len(p):
            code = p[i]
            if code in (38, 48) and i + 1 < len(p):
                if p[i + 1] == 5 and i + 2 < len(p):
                    out.append((f"{code};5;{p[i + 2]}", xterm256(p[i + 2])))
                    i += 3
                    continue
                if p[i + 1] == 2 and i + 4 < len(p):
                    out.append((f"{code};2;{p[i + 2]};{p[i + 3]};{p[i + 4]}", (p[i + 2], p[i + 3], p[i + 4])))
                    i += 5
                    continue
            if 30 <= code <= 37 or 40 <= code <= 47:
                out.append((str(code), (0, 0, 0) if code in (30, 40) else (255, 255, 255)))
            elif 90 <= code <= 97 or 100 <= code <= 107:
                out.append((str(code), (255, 255, 255)))
            i += 1
    return out


def bad_sgr(text: str) -> list[str]:
    return sorted({code for code, rgb in sgr_colours(text) if not is_night(rgb)})


def default_coloured_text(text: str) -> list[str]:
    """Visible characters drawn in the terminal's own default foreground (not ours)."""
    out, fg_set = [], False
    for line in text.splitlines():  # attributes carry over from line to line
        pos = 0
        for m in SGR.finditer(line + "\x1b[1000m"):
            chunk = line[pos:m.start()]
            if chunk.strip() and not fg_set and not set(chunk.strip()) <= {"▀", "▄", "█"}:
                out.append(chunk.strip())
            params = m.group(1)
            p = [int(x) if x else 0 for x in params.split(";")] if params else [0]
            i = 0
            while i < len(p):
                if p[i] in (0, 39):
                    fg_set = False
                elif p[i] == 38:
                    fg_set = True
                    i += 2 if i + 1 < len(p) and p[i + 1] == 5 else 4
                elif 30 <= p[i] <= 37 or 90 <= p[i] <= 97:
                    fg_set = True
                elif p[i] in (48,):
                    i += 2 if i + 1 < len(p) and p[i + 1] == 5 else 4
                i += 1
            pos = m.end()
    return out


def cells(text: str) -> list[list[tuple[str, object, object, frozenset]]]:
    """Each visible cell of ``capture-pane -p -e`` output: (char, fg, bg, attributes).

    fg and bg are an ANSI index (0-255), an (r, g, b) tuple, or None for the
    terminal's default; ``reverse`` is already applied (fg and bg swapped).
    Attributes (bold, dim, underline) carry over from line to line, as tmux
    sends only changes."""
    fg: object = None
    bg: object = None
    attrs: set[str] = set()
    out = []
    for line in text.splitlines():
        row = []
        pos = 0
        for m in SGR.finditer(line + "\x1b[1000m"):
            for ch in line[pos:m.start()]:
                f, b = fg, bg
                if "reverse" in attrs:  # a reversed default is the terminal's default, the other way round
                    f, b = (bg if bg is not None else "default-bg"), (fg if fg is not None else "default-fg")
                row.append((ch, f, b, frozenset(attrs - {"reverse"})))
            params = m.group(1)
            p = [int(x) if x else 0 for x in params.split(";")] if params else [0]
            i = 0
            while i < len(p):
                c = p[i]
                if c == 0:
                    fg = bg = None
                    attrs.clear()
                elif c in (1, 2, 4, 7):
                    attrs.add({1: "bold", 2: "dim", 4: "underline", 7: "reverse"}[c])
                elif c == 22:
                    attrs.discard("bold")
                    attrs.discard("dim")
                elif c == 24:
                    attrs.discard("underline")
                elif c == 27:
                    attrs.discard("reverse")
                elif c in (38, 48) and i + 1 < len(p):
                    if p[i + 1] == 5:
                        val: object = p[i + 2]
                        i += 2
                    else:
                        val = tuple(p[i + 2:i + 5])
                        i += 4
                    if c == 38:
                        fg = val
                    else:
                        bg = val
                elif 30 <= c <= 37:
                    fg = c - 30
                elif 90 <= c <= 97:
                    fg = c - 90 + 8
                elif c == 39:
                    fg = None
                elif 40 <= c <= 47:
                    bg = c - 40
                elif 100 <= c <= 107:
                    bg = c - 100 + 8
                elif c == 49:
                    bg = None
                i += 1
            pos = m.end()
        out.append(row)
    return out


def same_colour_cells(text: str) -> list[tuple[int, int, str]]:
    """Visible characters drawn in the colour of their own background (red on red)."""
    bad = []
    for y, row in enumerate(cells(text)):
        for x, (ch, f, b, _) in enumerate(row):
            if ch.strip() and f == b and f is not None:
                bad.append((y, x, ch))
    return bad
