"""Which frames the selection leaves out, and why: hand-made measurements with known answers."""

import numpy as np

from fieldtui.stacking.quality import FrameQuality, select


def _q(fwhm, stars=40, roundness=0.9):
    return FrameQuality(fwhm=fwhm, roundness=roundness, stars=stars, background=500.0, noise=10.0,
                        xy=np.zeros((0, 2)))


def test_clouds_roundness_and_keep_best():
    q = {"a": _q(3.0), "b": _q(3.2), "c": _q(2.9, stars=11), "d": _q(3.1, roundness=0.55), "e": _q(3.6),
         "f": _q(float("nan"), stars=40)}
    # the median star count is 40: 11 is under 30 % of it (clouds), 12 would be exactly 30 %
    out = select(q)
    assert set(out) == {"c", "f"}
    assert out["c"] == "only 11 stars (median 40): clouds or a trail?"
    assert out["f"] == "no star could be measured"
    assert "c" not in select({**q, "c": _q(2.9, stars=12)})
    assert set(select(q, min_star_fraction=None)) == {"f"}
    # trailed stars: roundness (minor/major axis) under the limit
    out = select(q, min_roundness=0.6)
    assert out["d"] == "roundness 0.55 below 0.6 (trailed stars)" and set(out) == {"c", "d", "f"}
    # the best half by FWHM of the frames still in: a, b, d, e -> a (3.0) and d (3.1) stay
    out = select(q, keep_best=0.5)
    assert set(out) == {"b", "c", "e", "f"}
    assert out["e"] == "FWHM 3.60 px: not among the best 50%"
    # 0.6 of the four rounds up to three frames kept
    assert set(select(q, keep_best=0.6)) == {"c", "e", "f"}
    # one reason per frame: the clouds come first
    assert select({**q, "c": _q(9.0, stars=11)}, max_fwhm=4.0)["c"].startswith("only 11 stars")


def test_fwhm_limits_by_hand():
    q = {k: _q(f) for k, f in zip("abcdefg", (3.0, 3.1, 2.9, 3.0, 3.2, 2.8, 4.5))}
    # median 3.0, robust sigma 1.4826 x median |f - 3.0| = 1.4826 x 0.1
    sig = 1.4826 * 0.1
    out = select(q, fwhm_sigma=3.0)
    assert set(out) == {"g"}
    assert out["g"] == f"FWHM 4.50 px, {1.5 / sig:.1f} σ above the median 3.00"
    assert select(q, max_fwhm=3.1) == {"e": "FWHM 3.20 px above the limit 3.1",
                                       "g": "FWHM 4.50 px above the limit 3.1"}
    assert select({}) == {}
    assert select(q, keep_best=1.0) == {}
