"""The guiding-table benchmark's rows are valid configs, and the config files it writes
for ``fieldtui guide --config`` say what the row runs (the bench itself is a script:
tests/benchmarks/bench_guiding_table.py)."""

import tomllib

import pytest

from fieldtui.config import load_config
from tests.benchmarks import bench_guiding_table as bench


@pytest.mark.parametrize("row", bench.ROWS, ids=lambda r: r.key)
def test_each_row_is_one_valid_config_change(row):
    for algo, keys in bench.ALGORITHMS.items():
        ov = bench.merge(bench.SMALL, row.overrides, {"guiding": keys})
        cfg = load_config(user=False, overrides=ov)
        assert (cfg.guiding.ra_algorithm, cfg.guiding.dec_algorithm) == (keys["ra_algorithm"],
                                                                         keys["dec_algorithm"])
        # The file the row's command line uses holds exactly these overrides.
        assert tomllib.loads(bench.toml_text(ov)) == ov
        for table, values in row.overrides.items():
            for key, value in values.items():
                assert getattr(getattr(cfg, table), key) == value


def test_the_issue_rows_are_all_there():
    keys = {r.key for r in bench.ROWS}
    assert {"backlash-30", "backlash-60", "pe-30-240", "pe-45-240", "dec-85", "dec-88", "dec-89",
            "exposure-4", "exposure-0.2", "jitter-0.4", "gusts-20x10", "pe-45-240-4x",
            "backlash-60-no-drift", "backlash-60-dither-2", "pe-45-240-exposure-4",
            "undersampled-120mm", "dec-mode-north", "seed-0", "seed-1", "seed-2", "seed-3",
            "perfect-pa", "multi-star-8", "default-single", "exposure-4-single"} <= keys
    assert len(keys) == len(bench.ROWS)
    assert all(load_config(user=False, overrides=a.overrides) for a in bench.ASSIST)


def test_rows_use_the_shipped_multi_star_and_single_rows_stay_single():
    by_key = {r.key: r for r in bench.ROWS}
    shipped = bench.shipped_multi_star()
    assert shipped == load_config(user=False).guiding.multi_star
    for key, want in (("default", shipped), ("default-single", 0), ("exposure-4-single", 0),
                      ("multi-star-8", 8)):
        cfg = load_config(user=False, overrides=by_key[key].overrides)
        assert cfg.guiding.multi_star == want, key
    # --multi-star N: every row that does not set multi_star gets N, the others keep theirs
    ms0 = {r.key: r for r in bench.with_multi_star(bench.ROWS, 0)}
    assert ms0["default"].overrides == {"guiding": {"multi_star": 0}}
    assert ms0["exposure-4"].overrides["guiding"] == {"exposure_s": 4.0, "multi_star": 0}
    assert ms0["multi-star-8"].overrides["guiding"]["multi_star"] == 8
    assert by_key["exposure-4"].overrides == {"guiding": {"exposure_s": 4.0}}  # not changed in place


def test_selection_and_error_figures():
    assert bench.selected("pe-45-240-4x", ["pe-*"]) and not bench.selected("dec-85", ["pe-*"])
    assert bench.selected("anything", None)
    assert bench.pct(12.0, 10.0) == pytest.approx(20.0)
    assert bench.pct(-0.6, -1.0) == pytest.approx(-40.0)  # falls short of the setting
    assert bench.pct(None, 1.0) is None and bench.pct(1.0, 0.0) is None
    assert bench.command("c.toml", 30, 2.0) == ("FIELDTUI_USER_CONFIG=/dev/null fieldtui guide "
                                                "--config c.toml --minutes 30 --fast --json "
                                                "--dither-every 2")
