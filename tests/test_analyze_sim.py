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
