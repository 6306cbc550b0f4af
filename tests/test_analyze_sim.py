"""`fieldtui analyze --simulated KIND`: a frame from the simulated DSLR, through
its raw file, measured and advised like a camera's."""

import json
import subprocess
import sys


def analyze(*args):
    r = subprocess.run([sys.executable, "-m", "fieldtui", "analyze", "--json", *args],
                       capture_output=True, text=True, timeout=180)
    return r.returncode, json.loads(r.stdout)


def test_simulated_light_and_flat():
    rc, out = analyze("--simulated", "light", "--exposure", "30")
    assert rc == 0 and len(out) == 1
    light = out[0]
    assert light["file"].endswith("sim_light_30s_ISO800.dng")
    assert light["bayer"] == "RGGB" and light["black_level"] == 2048 and light["white_level"] == 15000
    assert light["stars"] > 20
    # The simulator's seeing (2.5") and optics at 0.443"/px, out of focus by 130 steps: 6-12 px.
    assert 4.0 < light["fwhm"] < 14.0
    assert any("clipped at black" in a or "exposure" in a for a in light["advice"])
    rc, out = analyze("--simulated", "flat")
    flat = out[0]
    assert rc == 0 and flat["kind"] == "flat" and flat["stars"] == 0
    assert flat["clipped_black_pct"] == 0.0 and flat["saturated_pct"] == 0.0
    assert any("flat mean at" in a for a in flat["advice"])


def test_simulated_dslr_test_exposure_gets_advice_the_rig_can_follow(tmp_path):
    """The simulated DSLR's own 120 s light at f/10 under a 20.5 mag sky: the sky sits ~2 noise
    widths above black. The advice once asked "at least 3840 s"; it must stay within the
    configured longest sub and hand the rest to ISO."""
    import re

    cfg = tmp_path / "rig.toml"
    cfg.write_text("[exposure]\nlongest_sub_s = 200\nlongest_unguided_s = 30\n")
    rc, out = analyze("--simulated", "light", "--config", str(cfg))
    assert rc == 0
    (line,) = [a for a in out[0]["advice"] if "black" in a]
    assert out[0]["black_level_source"] == "raw metadata"
    seconds = [float(s) for s in re.findall(r"(\d+(?:\.\d+)?) s\b", line)]
    assert seconds and max(seconds) <= 200, line
    assert "raise exposure to 200 s, the longest guided sub, and ISO to" in line, line
    rc, out = analyze("--simulated", "light", "--config", str(cfg), "--unguided")
    (line,) = [a for a in out[0]["advice"] if "black" in a]
    assert "shorten subs to 30 s, the longest unguided sub" in line and "ISO" in line, line
