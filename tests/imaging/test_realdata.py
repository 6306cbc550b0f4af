"""Detections on real sky frames against known answers."""

from pathlib import Path

import numpy as np
import pytest

from fieldtui.imaging import detect_stars, measure_frame_stars
from fieldtui.imaging.align import match_offset
from fieldtui.imaging.io import read_frame

CATALOGUE = Path(__file__).parent / "data" / "sep_image_cat.txt"


def test_sep_image_against_sextractor_catalogue(testdata):
    cat = np.loadtxt(CATALOGUE)
    assert len(cat) == 65
    cx, cy, flux = cat[:, 1] - 1.0, cat[:, 2] - 1.0, cat[:, 3]  # SExtractor counts from 1
    data = read_frame(testdata / "fits" / "sep_image.fits").data
    stars = detect_stars(data, max_fit=100)
    assert 55 <= len(stars) <= 80
    xy = np.array([(s.x, s.y) for s in stars])
    nearest = np.hypot(xy[:, None, 0] - cx[None], xy[:, None, 1] - cy[None]).min(axis=0)
    assert np.count_nonzero(nearest < 1.5) >= 60
    bright = np.argsort(-flux)[:20]
    assert np.median(nearest[bright]) < 0.2
    assert nearest[bright].max() < 1.2


def test_m13_frames_stars_and_consistent_drift(testdata):
    lists = [
        measure_frame_stars(read_frame(testdata / "fits" / f"astropydata_M13_blue_000{i}.fits")) for i in (1, 2, 3)
    ]
    assert all(len(s) >= 20 for s in lists)
    d12 = match_offset(lists[0], lists[1], max_shift=40)
    d23 = match_offset(lists[1], lists[2], max_shift=40)
    d13 = match_offset(lists[0], lists[2], max_shift=40)
    assert d12 and d23 and d13
    # the telescope drifts about 10-13 px per frame, mostly along -x
    assert -15 < d12[0] < -8 and -15 < d23[0] < -8
    # drift 1->2 plus 2->3 equals drift 1->3
    assert d12[0] + d23[0] == pytest.approx(d13[0], abs=2.0)
    assert d12[1] + d23[1] == pytest.approx(d13[1], abs=2.0)
