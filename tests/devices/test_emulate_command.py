"""``fieldtui emulate-mount``: the device path on the first line of stdout, and a
driver in another process drives the emulated mount through it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fieldtui.devices.emulator import driver_class

from .conftest import QUIET_SKY


@pytest.mark.parametrize("protocol", ["lx200", "synscan"])
async def test_emulate_mount_prints_a_path_a_driver_can_use(tmp_path, protocol):
    cfgf = tmp_path / "c.toml"
    cfgf.write_text("[plan]\nra_deg = 150.0\ndec_deg = -0.5\n[sim]\n"
                    + "".join(f"{k} = {v}\n" for k, v in QUIET_SKY.items()))
    p = subprocess.Popen([sys.executable, "-m", "fieldtui", "emulate-mount", "--protocol", protocol,
                          "--config", str(cfgf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env={**os.environ})
    try:
        path = p.stdout.readline().strip()
        assert path.startswith("/dev/pts/") and os.path.exists(path)
        drv = driver_class(protocol)(path, timeout_s=1.0)
        info = await drv.connect()
        assert info.driver == protocol
        st = await drv.state()
        # The simulated mount starts at the plan's target; Dec -00°30' keeps its sign.
        assert st.dec_deg == pytest.approx(-0.5, abs=1 / 3600)
        assert st.ra_deg == pytest.approx(150.0, abs=15 / 3600)
        await drv.disconnect()
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err


def test_emulate_mount_rejects_a_bad_rate():
    r = subprocess.run([sys.executable, "-m", "fieldtui", "emulate-mount", "--protocol", "lx200",
                        "--drop-rate", "1.5"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "fieldtui: --drop-rate: expected a probability 0-1, found 1.5"
