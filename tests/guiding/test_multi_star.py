"""Multi-star guiding (``[guiding] multi_star = 4``) where it could go wrong: a field
with fewer stars than it asks for, hot pixels with no dark library, and a star lost to
clouds.  Each run guides the real engine on the simulator's sky with small frames
(tests/guiding/skyloop.py)."""

import math
from dataclasses import replace

import numpy as np
import pytest
from skyloop import SkyLoop, small_config, steps

from fieldtui.guiding.events import Alert, GuideState, StarFound, StarLost, StarSelected
from fieldtui.guiding.select import select_guide_star
from fieldtui.guiding.settings import GuideSettings

QUIET = {"gusts_per_hour": 0.0}
MS4 = {"multi_star": 4}


def _star_pixels(loop: SkyLoop) -> tuple[np.ndarray, np.ndarray]:
    """Where the catalogue's stars fall on the guide sensor (px, no pointing error)."""
    return loop.sky.guide.to_pixels(loop.sky._stars_x, loop.sky._stars_y)


def _keep_guide_star_and(loop: SkyLoop, n_more: int) -> None:
    """Leave in the sky only the star the engine guides on in this field and ``n_more``
    others, made bright enough to be extras (every other star is taken out)."""
    data, _ = loop.sky.render(loop.sky.guide, loop.t, loop.settings.exposure_s, gain_e_adu=loop.gain())
    p = select_guide_star(data, saturation=loop.engine.saturation, min_stars=1).primary
    px, py = _star_pixels(loop)
    w, h = loop.cfg.guide_camera.width, loop.cfg.guide_camera.height
    keep = [int(np.argmin(np.hypot(px - p.x, py - p.y)))]
    for i in range(len(px)):  # others well inside the frame and apart from the kept ones
        if len(keep) > n_more:
            break
        if 50 < px[i] < w - 50 and 50 < py[i] < h - 50 and min(
                math.hypot(px[i] - px[k], py[i] - py[k]) for k in keep) > 40:
            keep.append(i)
    assert len(keep) == n_more + 1
    s = loop.sky
    s._stars_x, s._stars_y = s._stars_x[keep], s._stars_y[keep]
    s._stars_m = np.array([s._stars_m[keep[0]]] + [10.5] * n_more)


@pytest.mark.parametrize("n", [1, 2])
def test_a_field_with_fewer_stars_than_asked_for_guides_on_what_it_has(n):
    """multi_star = 4 with only the guide star (n = 1), or it and one more (n = 2), in
    view: guiding starts and runs on those, with no error and no star-lost alert."""
    cfg = small_config(sim=QUIET, guiding=MS4)
    loop = SkyLoop(cfg, replace(GuideSettings.from_config(cfg), min_stars=1))
    _keep_guide_star_and(loop, n - 1)
    loop.start()
    loop.run(180.0)
    sel = [e for e in loop.events if isinstance(e, StarSelected)]
    assert len(sel) == 1 and sel[0].extra_stars == n - 1
    used = [s.stars_used for s in steps(loop.events)]
    assert len(used) > 60 and max(used) == n
    assert sum(u == n for u in used) >= 0.9 * len(used)
    assert loop.engine.state == GuideState.GUIDING
    assert not [e for e in loop.events if isinstance(e, (StarLost,))]
    assert not [e for e in loop.events if isinstance(e, Alert) and e.level in ("warning", "error")]
    r = loop.result()
    assert r.ratio < 1.5, (r.rms_total, r.floor)


def test_hot_pixels_without_a_dark_library_never_become_extra_stars():
    """A warm sensor with 3000 hot pixels (no dark library): the guide star and its extras
    are all catalogue stars when guiding starts and after two minutes of it.  (A hot
    pixel that lands in a faint extra's box can make it unmeasurable: that extra is then
    dropped from the average, which goes on with the others.)"""
    cfg = small_config(640, 480, sim=QUIET | {"hot_pixels": 3000, "temperature_c": 30.0}, guiding=MS4)
    loop = SkyLoop(cfg)
    assert len(loop.sky.guide.hot) == 3000
    px, py = _star_pixels(loop)

    m = loop.sky._stars_m

    def on_catalogue_stars() -> int:
        # The field has moved since selection (calibration, drift): the guide star is the
        # bright catalogue star nearest it, and every extra must sit where a catalogue star
        # sits from that one (within 2 px, as a hot pixel in its box can pull its centre;
        # ~1 % of the frame is that close to one).
        g = loop.engine.star
        d = np.where(m <= 12.0, np.hypot(px - g.x, py - g.y), np.inf)
        i = int(np.argmin(d))
        assert d[i] < 15.0
        for e in loop.engine.extras:
            off = np.hypot(px - px[i] - (e.x - g.x), py - py[i] - (e.y - g.y))
            assert float(np.min(off[m <= 15.0])) < 2.0, (e.x, e.y)
            assert e.hfd >= cfg.guiding.min_hfd_px
        return len(loop.engine.extras)

    loop.start()
    loop.step()  # the first guide frame measures the extras where the field is now
    assert on_catalogue_stars() == 4
    loop.run(120.0)
    assert on_catalogue_stars() >= 1
    used = [s.stars_used for s in steps(loop.events)]
    assert used[0] == 5 and min(used) >= 2


def test_a_star_lost_to_clouds_comes_back_with_its_extras():
    """Clouds for 40 s: the guide star is lost and found again, and averaging goes on
    with the extra stars afterwards (they are not dropped while the star is lost)."""
    loop = SkyLoop(small_config(640, 480, sim=QUIET, guiding=MS4))
    loop.start()
    loop.run(60.0)
    assert len(loop.engine.extras) == 4
    loop.sky.clouds_until = loop.t + 40.0
    loop.run(40.0)
    n = len(loop.events)
    loop.run(120.0)
    assert [e for e in loop.events if isinstance(e, StarLost)]
    found = [e for e in loop.events if isinstance(e, StarFound)]
    assert found and found[-1].same_star
    after = [s.stars_used for s in steps(loop.events[n:])]
    assert loop.engine.state == GuideState.GUIDING
    assert len(after) > 30 and max(after) == 5 and after[-1] >= 4, after


def test_the_shipped_config_guides_on_several_stars():
    """The shipped default: the guide star and up to 4 more (PHD2 guides on several
    stars by default too); 0 turns it off."""
    from fieldtui.config import load_config
    assert load_config(user=False).guiding.multi_star == 4 and GuideSettings().multi_star == 4
    assert load_config(user=False, overrides={"guiding": {"multi_star": 0}}).guiding.multi_star == 0
