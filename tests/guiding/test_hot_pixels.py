"""Hot pixels are never a guide star, nor one of the extra stars of multi-star guiding."""

import math

import numpy as np
import pytest
from bugcases import bugcase

from fieldtui.guiding.centroid import Candidate
from fieldtui.guiding.select import NoGuideStar, detect_candidates, select_guide_star
from fieldtui.imaging import synth
from fieldtui.imaging.io import read_frame

@pytest.fixture
def hotpair() -> np.ndarray:
    return np.asarray(read_frame(bugcase("hot_pixel_guide_star/guide_hotpair_min.fits")).data)


STARS = [(80.4, 70.2), (240.7, 80.9), (160.2, 150.6), (90.8, 180.3)]
HOT = (200.5, 60.0)


def test_hot_pair_bugcase_guide_star(hotpair):
    sel = select_guide_star(hotpair, extra_stars=3)
    assert sel.primary.x == pytest.approx(80.4, abs=0.1) and sel.primary.y == pytest.approx(70.2, abs=0.1)
    chosen = [sel.primary] + sel.extras
    assert len(chosen) == 4
    # every star chosen is one of the four real stars; the hot pair is not even a candidate
    for c in chosen:
        assert min(math.hypot(c.x - x, c.y - y) for x, y in STARS) < 0.2
    assert all(math.hypot(c.x - HOT[0], c.y - HOT[1]) > 5 for c in sel.candidates)
    assert sel.visible == 4


def test_hot_pixels_and_cosmic_rays_never_selected():
    rng = np.random.default_rng(20261129)
    h, w = 480, 640
    img = np.zeros((h, w))
    stars = [(150.3, 120.6), (420.8, 110.2), (300.1, 250.7), (180.6, 360.4), (480.2, 350.9), (520.7, 200.3)]
    for (x, y), f in zip(stars, (3e4, 2.5e4, 2e4, 1.5e4, 1.2e4, 1e4)):
        synth.gaussian_star(img, x, y, f, 3.0)
    img += 300 + rng.normal(0, 6, img.shape)
    for _ in range(60):  # hot pixels and pairs, many brighter than any star's peak
        x, y = int(rng.integers(40, w - 40)), int(rng.integers(40, h - 40))
        img[y, x] += rng.uniform(1500, 4000)
        if rng.random() < 0.5:
            dx, dy = (1, 0) if rng.random() < 0.5 else (0, 1)
            img[y + dy, x + dx] += rng.uniform(1000, 3500)
    for t in range(25):  # a cosmic-ray track
        img[400 + t // 5, 100 + t] += 3000
    data = np.clip(img, 0, 4095).astype(np.uint16)
    sel = select_guide_star(data, saturation=4095, extra_stars=5, box_half=10)
    for c in [sel.primary] + sel.extras:
        assert min(math.hypot(c.x - x, c.y - y) for x, y in stars) < 0.3
    assert len(sel.extras) == 5
    for c in detect_candidates(data, 4095):
        assert min(math.hypot(c.x - x, c.y - y) for x, y in stars) < 0.3


def _cand(x, y, snr, hfd):
    return Candidate(x, y, snr, mass=snr * 100, peak=500.0, hfd=hfd, saturated=False)


def test_min_hfd_refuses_spots_narrower_than_a_star():
    data = np.zeros((240, 320))
    cands = [_cand(100, 100, 900.0, 0.4),  # a hot pixel that got through: brightest of all
             _cand(200, 80, 300.0, 3.4), _cand(150, 160, 200.0, 3.5), _cand(250, 170, 150.0, 3.3),
             _cand(90, 170, 120.0, 3.6)]
    sel = select_guide_star(data, candidates=cands, extra_stars=4)
    assert (sel.primary.x, sel.primary.y) == (200, 80)
    assert all(c.hfd >= 1.5 for c in sel.extras) and len(sel.extras) == 3
    assert sel.visible == 4
    # an undersampling guide scope: every star of the field is narrower than the
    # minimum, so the field itself says how narrow a star is (0.75 x the median)
    small = [_cand(x, y, s, 1.2) for x, y, s in ((200, 80, 300.0), (150, 160, 200.0), (250, 170, 150.0),
                                                (90, 170, 120.0))]
    assert select_guide_star(data, candidates=small).primary.x == 200
    # ... while a spot much narrower than those stars is still refused
    spot = small + [_cand(100, 100, 900.0, 0.6)]
    sel = select_guide_star(data, candidates=spot, extra_stars=4)
    assert sel.primary.x == 200 and all(c.hfd > 1.0 for c in sel.extras)
    # too few stars to tell: the configured minimum holds
    with pytest.raises(NoGuideStar, match="narrower than a star"):
        select_guide_star(data, candidates=small[:2], min_stars=1)


def test_engine_with_multi_star_guides_on_real_stars_only(hotpair):
    from fieldtui.guiding.engine import GuideEngine
    from fieldtui.guiding.events import StarSelected
    from fieldtui.guiding.settings import GuideSettings

    eng = GuideEngine(GuideSettings(multi_star=3), saturation=4095)
    eng.select_star()
    events = eng.on_frame(hotpair.astype(np.float32), 1.0).events
    sel = [e for e in events if isinstance(e, StarSelected)]
    assert len(sel) == 1
    assert (eng.star.x, eng.star.y) == pytest.approx((80.4, 70.2), abs=0.1)
    assert len(eng.extras) == 3
    for s in [eng.star] + eng.extras:
        assert min(math.hypot(s.x - x, s.y - y) for x, y in STARS) < 0.2
