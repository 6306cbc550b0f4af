"""The followed star's zoom box helpers: its cut-out as an image and its profile as a sparkline."""

from __future__ import annotations

import base64

import numpy as np

BARS = " ▁▂▃▄▅▆▇█"


def decode_cutout(star: dict) -> np.ndarray | None:
    if not star or not star.get("cutout"):
        return None
    n = int(star.get("cut", 15))
    return np.frombuffer(base64.b64decode(star["cutout"]), dtype=np.uint8).reshape(n, n)


def enlarge(img: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Repeat pixels so ``img`` fills about cols × (2·rows) half-block pixels."""
    h, w = img.shape
    k = max(1, min(cols // max(w, 1), (2 * rows) // max(h, 1)))
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1) if k > 1 else img


def sparkline(values: list[float]) -> str:
    """Values in 0..1 as bar characters (a radial profile: centre on the left)."""
    out = []
    for v in values:
        v = min(max(float(v), 0.0), 1.0)
        out.append(BARS[int(round(v * (len(BARS) - 1)))])
    return "".join(out)
