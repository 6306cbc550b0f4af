"""The guiding assistant recovers what the simulator was set to."""

import math

import numpy as np
import pytest

from fieldtui.config import load_config
from fieldtui.guiding.assistant import analyze_unguided

try:
    import fieldtui.guiding.backlash  # noqa: F401
    HAVE_BACKLASH = True
except ImportError:
    HAVE_BACKLASH = False


def test_analysis_of_known_unguided_motion():
    """Hand-made offsets: ±12″ over 300 s on the RA axis at Dec 40° (the star
    moves cos δ of it), RA drift 1.5″/min, Dec drift 3″/min, 0.4″ jitter."""
    rng = np.random.default_rng(3)
    scale, dec = 4.3, 40.0
    cosd = math.cos(math.radians(dec))
    t = np.arange(0.0, 600.0, 1.05)
    ra = (12.0 * np.sin(2 * np.pi * t / 300.0 + 1.0) + 1.5 * t / 60.0) * cosd + rng.normal(0, 0.4, len(t))
    de = 3.0 * t / 60.0 + rng.normal(0, 0.4, len(t))
    f = analyze_unguided(t, ra / scale, de / scale, pixel_scale=scale, dec_deg=dec, exposure_s=1.0)
    assert f.pe_period_s == pytest.approx(300.0, rel=0.02)
    assert f.pe_amplitude_arcsec == pytest.approx(12.0, rel=0.05)
    assert f.ra_drift_arcsec_min == pytest.approx(1.5, rel=0.1)
    assert f.dec_drift_arcsec_min == pytest.approx(3.0, rel=0.05)
    assert f.polar_error_arcmin == pytest.approx(3.8 * 3.0 / cosd, rel=0.05)
    assert f.jitter_ra_arcsec == pytest.approx(0.4, rel=0.15)
    assert f.recommendations["ra_algorithm"] == "predictive"
    with pytest.raises(ValueError, match="at least"):
        analyze_unguided(t[:5], ra[:5], de[:5], pixel_scale=scale, dec_deg=dec, exposure_s=1.0)


async def test_assistant_recovers_the_simulators_mount(tmp_path):
    from fieldtui.commands.guide import run_assistant_cli
    from fieldtui.guiding.log import parse_guide_log
    cfg = load_config(user=False, overrides={
        "guide_camera": {"width": 480, "height": 360},
        "guiding": {"min_stars": 1},
        "sim": {"pe_amplitude_arcsec": 15.0, "pe_period_s": 240.0, "polar_error_arcmin": 10.0,
                "ra_drift_arcsec_min": 2.0, "gusts_per_hour": 0.0, "backlash_arcsec": 20.0}})
    out = await run_assistant_cli(cfg, minutes=8, fast=True, log_dir=str(tmp_path))
    assert "error" not in out, out.get("error")
    f, sim = out["findings"], out["simulator"]
    assert f["pe_amplitude_arcsec"] == pytest.approx(sim["pe_amplitude_arcsec"], rel=0.2)
    assert f["pe_period_s"] == pytest.approx(sim["pe_period_s"], rel=0.2)
    assert f["polar_error_arcmin"] == pytest.approx(sim["polar_error_arcmin"], rel=0.2)
    # The star drifts opposite to the mount's RA tracking error.
    assert -f["ra_drift_arcsec_min"] == pytest.approx(sim["ra_drift_arcsec_min"], rel=0.2)
    assert abs(f["dec_drift_arcsec_min"]) == pytest.approx(sim["dec_drift_arcsec_min"], rel=0.2)
    assert f["jitter_ra_arcsec"] == pytest.approx(sim["seeing_jitter_arcsec"], rel=0.2)
    if HAVE_BACKLASH:
        assert f["backlash_arcsec"] == pytest.approx(sim["backlash_arcsec"], rel=0.2)
    # The findings are in the guide log.
    from pathlib import Path
    log = Path(out["guide_log"]).read_text()
    assert "INFO: Guiding assistant:" in log and "Polar alignment error about" in log
    assert parse_guide_log(out["guide_log"]).sessions
