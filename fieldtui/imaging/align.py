"""Translation between two star lists (frame drift), by voting on pair offsets."""

from __future__ import annotations

import numpy as np

from .stars import Star


def match_offset(
    ref: list[Star] | np.ndarray,
    other: list[Star] | np.ndarray,
    *,
    tolerance: float = 2.0,
    max_shift: float | None = None,
    brightest: int = 40,
) -> tuple[float, float, int] | None:
    """Shift ``(dx, dy)`` that carries ``ref`` star positions onto ``other``.

    Every pair of the ``brightest`` stars of each list votes for its offset;
    the offset with the most votes within ``tolerance`` pixels wins and is
    refined as the mean offset of its matched pairs. Returns
    ``(dx, dy, matched)`` or ``None`` with fewer than 3 matches.
    """

    def xy(s):
        if isinstance(s, np.ndarray):
            return np.asarray(s, float)[:brightest, :2]
        return np.array([(st.x, st.y) for st in s[:brightest]], float).reshape(-1, 2)

    a, b = xy(ref), xy(other)
    if len(a) < 3 or len(b) < 3:
        return None
    d = (b[None, :, :] - a[:, None, :]).reshape(-1, 2)
    if max_shift is not None:
        d = d[np.hypot(d[:, 0], d[:, 1]) <= max_shift]
        if len(d) < 3:
            return None
    # votes: offsets within tolerance of each candidate
    close = (np.abs(d[:, None, 0] - d[None, :, 0]) <= tolerance) & (np.abs(d[:, None, 1] - d[None, :, 1]) <= tolerance)
    votes = close.sum(axis=1)
    best = d[int(np.argmax(votes))]
    sel = d[(np.abs(d[:, 0] - best[0]) <= tolerance) & (np.abs(d[:, 1] - best[1]) <= tolerance)]
    if len(sel) < 3:
        return None
    dx, dy = np.median(sel, axis=0)
    return float(dx), float(dy), int(len(sel))
