"""Guide-camera dark library and bad-pixel map, against the simulator's known hot pixels."""

import numpy as np
import pytest

from fieldtui.config import load_config
from fieldtui.devices.sky import Sky
from fieldtui.guiding.darks import apply_dark, make_guide_dark
from fieldtui.guiding.select import NoGuideStar, detect_candidates
from fieldtui.service.guide_darks import DarkLibrary

GAIN = 50
E_PER_ADU = 3.0 * 10 ** (-GAIN / 200.0)  # the simulated guide camera's


@pytest.fixture(scope="module")
def sky():
    cfg = load_config(user=False, overrides={
        "guide_camera": {"width": 320, "height": 240},
        "sim": {"hot_pixels": 400, "temperature_c": 25.0}})
    return Sky(cfg, 0.0)


@pytest.fixture(scope="module")
def darks(sky):
    frames = [sky.render(sky.guide, 10.0 * i, 2.0, gain_e_adu=E_PER_ADU, light=False)[0]
              for i in range(7)]
    return make_guide_dark(frames, 2.0, GAIN)


def _hot_truth(sky, exposure):
    h = sky.guide.hot
    tfac = 2.0 ** ((sky.cfg.sim.temperature_c - 20.0) / 6.0)
    adu = h[:, 2] * tfac * exposure / E_PER_ADU
    return {(int(x), int(y)): a for x, y, a in zip(h[:, 0], h[:, 1], adu)}


def test_bad_pixel_map_finds_the_simulators_hot_pixels(sky, darks):
    truth = _hot_truth(sky, 2.0)
    ys, xs = np.nonzero(darks.bad)
    mapped = set(zip(xs.tolist(), ys.tolist()))
    # No false alarms: every mapped pixel is one of the simulator's hot pixels.
    assert mapped and mapped <= set(truth)
    # Every hot pixel well above the noise (read noise 5 e-, dark shot noise) is mapped.
    strong = {p for p, a in truth.items() if a > 30.0}
    assert len(strong) > 100 and strong <= mapped


def test_dark_subtraction_flattens_hot_pixels_in_a_light(sky, darks):
    light, _ = sky.render(sky.guide, 500.0, 2.0, gain_e_adu=E_PER_ADU)
    out = apply_dark(light, darks)
    truth = _hot_truth(sky, 2.0)
    bright = [p for p, a in truth.items() if a > 100.0]
    bg = float(np.median(out))
    before = max(float(light[y, x]) - float(np.median(light)) for x, y in bright)
    after = max(abs(float(out[y, x]) - bg) for x, y in bright)
    assert before > 100.0 and after < 20.0


def test_hot_pixels_never_become_guide_star_candidates(sky, darks):
    light, _ = sky.render(sky.guide, 900.0, 2.0, gain_e_adu=E_PER_ADU)
    truth = _hot_truth(sky, 2.0)

    def hot_candidates(img):
        return [c for c in detect_candidates(img) if (int(round(c.x)), int(round(c.y))) in truth]

    assert hot_candidates(light.astype(np.float32))  # the raw frame shows hot pixels as spots
    assert hot_candidates(apply_dark(light, darks)) == []


def test_library_round_trip_and_nearest_exposure(tmp_path, darks):
    lib = DarkLibrary(tmp_path / "darks")
    path = lib.save(darks)
    assert path.name == "guide_dark_2000ms_g50.npz" and not list(path.parent.glob("*.part"))
    short = make_guide_dark([darks.dark * 0 + 16.0] * 3, 0.5, GAIN)
    lib.save(short)
    again = DarkLibrary(tmp_path / "darks")
    got = again.find(3.0, GAIN)
    assert got is not None and got.exposure_s == 2.0 and got.frames == 7
    np.testing.assert_array_equal(got.bad, darks.bad)
    np.testing.assert_allclose(got.dark, darks.dark)
    assert again.find(0.6, GAIN).exposure_s == 0.5
    assert again.find(1.0, GAIN + 1) is None  # another gain: no dark
    assert again.find(1.0, GAIN, shape=(10, 10)) is None  # another frame size
    (tmp_path / "darks" / "guide_dark_1000ms_g50.npz").write_bytes(b"not a dark")
    assert len(DarkLibrary(tmp_path / "darks").load_all()) == 2  # a broken file is skipped


def test_apply_dark_refuses_another_frame_size(darks):
    with pytest.raises(ValueError, match="take darks for this frame size"):
        apply_dark(np.zeros((10, 10), np.uint16), darks)


def test_cli_builds_darks_and_guides_with_them(tmp_path, capsys):
    import json
    from fieldtui.commands.guide import main as guide_main
    d = tmp_path / "gd"
    assert guide_main(["--build-darks", "--fast", "--json", "--dark-exposures", "1",
                       "--dark-frames", "3", "--dark-dir", str(d)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["darks"][0]["hot_pixels"] > 0 and (d / out["darks"][0]["file"]).exists()
    assert guide_main(["--build-darks", "--dark-frames", "2", "--dark-dir", str(d)]) == 2
    assert "at least 3" in capsys.readouterr().err
    assert guide_main(["--darks", "--dark-dir", str(tmp_path / "none"), "--minutes", "1"]) == 2
    assert "--build-darks" in capsys.readouterr().err
    # guiding with the library says which dark it subtracted: the guide exposure's (1 s) at
    # the guiding gain, with the hot pixels the build mapped (small frames: a quick run)
    cfg = tmp_path / "small.toml"
    cfg.write_text("[guide_camera]\nwidth = 320\nheight = 240\n")
    assert guide_main(["--config", str(cfg), "--build-darks", "--fast", "--json", "--dark-exposures", "0.5,1,2",
                       "--dark-frames", "3", "--dark-dir", str(d)]) == 0
    built = {x["exposure_s"]: x for x in json.loads(capsys.readouterr().out)["darks"]}
    assert guide_main(["--config", str(cfg), "--darks", "--dark-dir", str(d), "--minutes", "0.5", "--fast",
                       "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] > 10 and res["exposure_s"] == 1.0
    used = res["guide_dark"]
    assert used["exposure_s"] == 1.0 and used["hot_pixels"] == built[1.0]["hot_pixels"] > 0
    assert used["file"] == str(d / built[1.0]["file"])


def test_bad_pixels_at_the_edge_and_in_clusters_by_hand():
    """A bad pixel takes the median of its good 3x3 neighbours inside the frame; one with
    none (inside a cluster) the frame's median; the dark's median is added back."""
    from fieldtui.guiding.darks import GuideDark, apply_dark
    data = np.arange(25, dtype=np.float32).reshape(5, 5) + 10.0
    dark = np.full((5, 5), 10.0, np.float32)
    bad = np.zeros((5, 5), bool)
    bad[0, 0] = True
    out = apply_dark(data, GuideDark(1.0, 0, dark, bad))
    assert out[0, 0] == 5.0 + 10.0           # median of 1, 5, 6, plus the dark's median
    assert out[2, 2] == data[2, 2]
    bad[0:2, 0:2] = True
    out = apply_dark(data, GuideDark(1.0, 0, dark, bad))
    assert out[0, 0] == 12.0 + 10.0          # no good neighbour: the frame's median
    assert out[0, 1] == 4.5 + 10.0           # median of 2 and 7
    assert out[1, 1] == np.median([2, 7, 10, 11, 12]) + 10.0
