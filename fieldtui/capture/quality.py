"""Light-frame checks as frames land: outliers against the running median.

Source: the usual subframe-selection practice (Siril's and PixInsight's
SubframeSelector): a frame whose HFR, star count or trailing departs from the
night's median by more than a factor is marked, not deleted.
"""

from __future__ import annotations

import statistics

import numpy as np
from typing import Mapping, Sequence

HFR_FACTOR = 1.5         # HFR above 1.5 × the median: focus lost, clouds, wind
STARS_FACTOR = 0.5       # fewer than half the median star count: clouds, dew
ELONGATION_MAX = 1.5     # trailing: major/minor axis ratio
CLIP_EXTRA_PCT = 1.0     # saturated pixels above the median by more than 1 % of pixels
FLAT_TARGET = 0.50       # flats: mean at 50 % of the range (the field guide)
FLAT_TOLERANCE = 0.05


def outlier_reasons(m: Mapping, history: Sequence[Mapping], min_history: int = 3) -> list[str]:
    """Why light ``m`` (a :func:`fieldtui.imaging.metrics.frame_metrics` dict: ``hfr`` px,
    ``stars``, ``elongation``, ``saturated_pct``) is an outlier against the earlier ``history``
    of the same sequence; [] when it is fine. The median needs ``min_history`` frames;
    before that only trailing and a frame without stars are flagged."""
    out = []
    stars = m.get("stars") or 0
    if stars == 0:
        return ["no stars"]
    el = m.get("elongation")
    if el is not None and el > ELONGATION_MAX:
        out.append(f"trailed (elongation {el:.2f})")
    if len(history) >= min_history:
        def med(k: str) -> float | None:
            vals = [h[k] for h in history if h.get(k) is not None]
            return statistics.median(vals) if vals else None
        hfr, mh = m.get("hfr"), med("hfr")
        if hfr is not None and mh and hfr > HFR_FACTOR * mh:
            out.append(f"HFR {hfr:.2f} px vs median {mh:.2f}")
        ms = med("stars")
        if ms and stars < STARS_FACTOR * ms:
            out.append(f"{stars} stars vs median {ms:.0f}")
        c, mc = m.get("saturated_pct"), med("saturated_pct")
        if c is not None and mc is not None and c > mc + CLIP_EXTRA_PCT:
            out.append(f"clipped {c:.1f} % vs median {mc:.1f} %")
    return out


def flat_level(data: np.ndarray, black: float, white: float) -> tuple[float, float]:
    """(mean above black as a fraction of ``white - black``, fraction of pixels at or above
    ``white``) of a flat (any shape, ADU)."""
    d = np.asarray(data)
    span = max(float(white) - float(black), 1.0)
    mean = (float(d.mean(dtype=np.float64)) - float(black)) / span
    clipped = float(np.count_nonzero(d >= white)) / max(d.size, 1)
    return mean, clipped


def next_flat_exposure(exposure: float, mean_frac: float, target: float = FLAT_TARGET,
                       lo: float = 1e-3, hi: float = 30.0) -> float:
    """The exposure (s) that brings a flat's mean to ``target``, assuming the signal grows in
    proportion to the exposure (a steady panel or sky over one search); a clipped or
    empty frame halves or quadruples it. Kept within [``lo``, ``hi``], to 3 significant figures."""
    if mean_frac >= 0.98:
        nxt = exposure / 2
    elif mean_frac <= 0.005:
        nxt = exposure * 4
    else:
        nxt = exposure * target / mean_frac
    return float(f"{min(max(nxt, lo), hi):.3g}")  # 3 figures: a readable name, no false precision
