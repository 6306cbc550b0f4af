"""Guide-star auto-selection.

A good guide star has a high SNR, is not saturated (a clipped star has no
measurable centre), has no neighbour inside its guide box, and sits far
enough from the frame edge that a dither or some drift does not push it out.
It is a star, not a hot pixel: the detection drops anything narrower than
a star can be (:func:`fieldtui.imaging.stars.peak_spread`), and, as PHD2
does with its "minimum star HFD" (default 1.5 px), a candidate whose
half-flux diameter is below ``min_hfd`` is refused — for the guide star
and for the extra stars of multi-star guiding alike.
Like the field guide says, guiding on a field with fewer than four or five
visible stars usually means the focus, exposure or gain is wrong: we refuse
and say so instead of locking onto noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..imaging.stars import detect_stars
from .centroid import Candidate, measure_star


class NoGuideStar(Exception):
    """No acceptable guide star; the message says why and what to change."""


@dataclass
class Selection:
    primary: Candidate
    extras: list[Candidate] = field(default_factory=list)
    visible: int = 0  # stars at or above the SNR floor
    candidates: list[Candidate] = field(default_factory=list)


def detect_candidates(data: np.ndarray, saturation: float | None = None,
                      threshold_sigma: float = 5.0) -> list[Candidate]:
    """All stars in the frame (the imaging engine's detection), each measured the
    way the guide loop will measure it: same SNR scale, raw peak for saturation."""
    out = []
    for s in detect_stars(data, threshold_sigma=threshold_sigma):
        m = measure_star(data, float(s.x), float(s.y), half=8, saturation=saturation, recentre=False,
                         fit_narrow=False)
        if m is None:
            continue
        out.append(Candidate(float(s.x), float(s.y), m.snr, m.mass, m.peak, float(s.hfd or m.hfd),
                             bool(s.saturated) or m.saturated))
    return out


UNDERSAMPLED_HFD = 2.0  # px: stars narrower than this are undersampled (FWHM under ~1.7 px)


def undersampled_min_hfd(cands: list[Candidate], min_hfd: float) -> float:
    """The minimum star HFD to apply: ``min_hfd``, or, when the field's real
    stars are all narrower than that (a short guide scope in good seeing
    undersamples them: 120 mm at 1.2″ seeing gives stars of HFD 1.2-1.4 px,
    and a 1.5-px floor throws every one away and guides on a faint blend),
    0.75 x the median HFD of the ten best-exposed unsaturated stars.  Hot
    pixels stay out: a single or paired hot pixel never has the three
    pixels over threshold a star measurement needs, and the dark library
    maps them out."""
    good = sorted((c for c in cands if not c.saturated and c.snr >= 20.0), key=lambda c: -c.snr)[:10]
    if len(good) < 3:
        return min_hfd
    med = float(np.median([c.hfd for c in good]))
    if med >= min_hfd:
        return min_hfd
    return min(min_hfd, 0.75 * med)


def select_guide_star(data: np.ndarray, *, min_snr: float = 6.0, min_stars: int = 4,
                      box_half: int = 12, edge_margin: int | None = None,
                      saturation: float | None = None, extra_stars: int = 0,
                      candidates: list[Candidate] | None = None,
                      min_hfd: float = 1.5) -> Selection:
    """Pick the best guide star (and up to ``extra_stars`` more for
    multi-star averaging) in a 2-D guide frame ``data`` (pixels).

    ``min_hfd`` (px, the star's half-flux diameter) is the narrowest a star
    can be through the guide optics: anything narrower is a hot pixel or a
    cosmic-ray hit and is neither counted as visible nor chosen (PHD2's
    minimum star HFD; lower it for a guide scope that undersamples its
    stars). Raises :class:`NoGuideStar` with a reason."""
    h, w = data.shape
    if edge_margin is None:
        edge_margin = max(3 * box_half, int(0.05 * min(w, h)))
    cands = candidates if candidates is not None else detect_candidates(data, saturation)
    min_hfd = undersampled_min_hfd(cands, min_hfd)
    narrow = [c for c in cands if c.hfd < min_hfd]
    cands = [c for c in cands if c.hfd >= min_hfd]
    visible = [c for c in cands if c.snr >= min_snr]
    if not visible and narrow:
        raise NoGuideStar(
            f"{len(narrow)} spot{'s' if len(narrow) != 1 else ''} found but all narrower than a star "
            f"(HFD below {min_hfd:g} px): hot pixels, or the guide scope undersamples its stars "
            "(then lower guiding.min_hfd_px), or take a dark")
    if len(visible) < min_stars:
        raise NoGuideStar(
            f"only {len(visible)} star{'s' if len(visible) != 1 else ''} visible at SNR ≥ {min_snr:g} "
            f"(need at least {min_stars}): check focus, raise the exposure or gain, "
            "or move the field slightly to take in more stars")
    iso_r = 2.0 * box_half

    def acceptable(c: Candidate) -> str | None:
        if c.saturated:
            return "saturated"
        if not (edge_margin <= c.x < w - edge_margin and edge_margin <= c.y < h - edge_margin):
            return "near the edge"
        for o in cands:
            if o is c:
                continue
            if math.hypot(o.x - c.x, o.y - c.y) < iso_r and o.mass > 0.05 * c.mass:
                return "has a neighbour"
        return None

    good: list[tuple[float, Candidate]] = []
    reasons: dict[str, int] = {}
    for c in visible:
        why = acceptable(c)
        if why is None:
            score = c.snr
            if saturation is not None and c.peak > 0.8 * saturation:
                score *= 0.5  # nearly clipped: centroid already suffers
            good.append((score, c))
        else:
            reasons[why] = reasons.get(why, 0) + 1
    if not good:
        detail = ", ".join(f"{n} {why}" for why, n in reasons.items())
        raise NoGuideStar(f"{len(visible)} stars visible but none usable ({detail}): "
                          "lower the gain or exposure if they are saturated, or move the field")
    good.sort(key=lambda sc: -sc[0])
    primary = good[0][1]
    extras = [c for _, c in good[1:1 + max(0, extra_stars)]]
    return Selection(primary, extras, len(visible), cands)
