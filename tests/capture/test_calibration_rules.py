"""The field guide's calibration rules: states and reasons for known cases."""

from fieldtui.capture.calibration import LightSet, check_set, checklist, light_sets
from fieldtui.capture.quality import flat_level, next_flat_exposure, outlier_reasons

import numpy as np

NIGHT = "2026-11-28"


def lights(n=20, **kw):
    f = dict(type="light", iso=800, gain=None, exposure=120.0, temperature=12.0, filter="", night=NIGHT, focus=5000)
    f.update(kw)
    return [dict(f) for _ in range(n)]


def darks(n=10, **kw):
    return [dict(f, type="dark") for f in lights(n, **kw)]


def flats(n=10, **kw):
    f = dict(type="flat", iso=800, exposure=2.0, temperature=12.0, filter="", night=NIGHT, focus=5000,
             mean_frac=0.5, clipped_frac=0.0)
    f.update(kw)
    return [dict(f) for _ in range(n)]


def biases(n=10, **kw):
    f = dict(type="bias", iso=800, exposure=1 / 4000, night="2026-10-01")
    f.update(kw)
    return [dict(f) for _ in range(n)]


def states(frames):
    ((_, rules),) = checklist(frames)
    return {r.rule: r for r in rules}


def test_all_done():
    s = states(lights() + darks() + flats() + biases())
    assert [s[k].state for k in ("darks", "flats", "biases")] == ["done"] * 3
    assert s["darkflats"].state == "optional"


def test_darks_at_another_iso_are_mismatched():
    s = states(lights() + darks(iso=1600) + flats() + biases())
    assert s["darks"].state == "mismatched"
    assert "ISO 1600" in s["darks"].reason and "ISO 800" in s["darks"].reason


def test_darks_10c_warmer_are_mismatched_within_tolerance_done():
    s = states(lights() + darks(temperature=22.0) + flats() + biases())
    assert s["darks"].state == "mismatched" and "22 °C" in s["darks"].reason
    assert states(lights() + darks(temperature=13.5) + flats() + biases())["darks"].state == "done"


def test_too_few_darks_missing():
    s = states(lights() + darks(9))
    assert s["darks"].state == "missing" and s["darks"].have == 9


def test_flats_from_another_night_or_focus_are_mismatched():
    s = states(lights() + darks() + flats(night="2026-11-20") + biases())
    assert s["flats"].state == "mismatched" and "2026-11-20" in s["flats"].reason
    s = states(lights() + darks() + flats(focus=5100) + biases())
    assert s["flats"].state == "mismatched" and "focus" in s["flats"].reason


def test_flats_too_bright_or_clipped_are_mismatched():
    assert states(lights() + flats(mean_frac=0.75))["flats"].state == "mismatched"
    s = states(lights() + flats(clipped_frac=0.001))
    assert s["flats"].state == "mismatched" and "clipped" in s["flats"].reason


def test_biases_any_night_same_iso():
    assert states(lights() + biases(night="2025-01-01"))["biases"].state == "done"
    s = states(lights() + biases(iso=100))
    assert s["biases"].state == "mismatched" and "ISO 100" in s["biases"].reason
    assert states(lights())["biases"].state == "missing"


def test_light_sets_split_by_iso_and_filter():
    sets = light_sets(lights(3) + lights(2, iso=1600) + lights(4, filter="Ha"))
    assert sorted((s.iso, s.filter, s.count) for s in sets) == [(800, "", 3), (800, "Ha", 4), (1600, "", 2)]


def test_flat_level_and_next_exposure():
    d = np.full((10, 10), 2048 + 0.25 * (16383 - 2048))
    d[0, 0] = 16383
    mean, clipped = flat_level(d, 2048, 16383)
    assert abs(mean - (0.25 * 99 + 1) / 100) < 1e-9 and clipped == 0.01
    assert next_flat_exposure(1.0, 0.25) == 2.0
    assert next_flat_exposure(1.0, 1.0) == 0.5


def test_outliers_against_running_median():
    hist = [{"stars": 100, "hfr": 2.0, "elongation": 1.1, "saturated_pct": 0.1}] * 5
    assert outlier_reasons({"stars": 95, "hfr": 2.1, "elongation": 1.1, "saturated_pct": 0.1}, hist) == []
    r = outlier_reasons({"stars": 40, "hfr": 3.5, "elongation": 1.8, "saturated_pct": 3.0}, hist)
    assert len(r) == 4
    assert outlier_reasons({"stars": 0}, hist) == ["no stars"]
