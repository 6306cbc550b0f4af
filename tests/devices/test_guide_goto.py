"""``fieldtui guide --goto`` on the simulated rig: the mount leaves its park position for the
[plan] target and tracks (the INDI rig: tests/devices/test_indi_backend.py)."""

from __future__ import annotations

import math

import pytest

from fieldtui.clock import VirtualClock
from fieldtui.commands.guide import goto_target, run_guide
from fieldtui.devices.sim import SimRig


async def test_goto_takes_a_parked_simulated_mount_to_the_plan_target(cfg):
    rig = SimRig(cfg, VirtualClock())
    await rig.connect_all()
    await rig.mount.park()
    parked = await rig.mount.state()
    assert not parked.tracking and parked.dec_deg == pytest.approx(90.0, abs=0.1)
    t0 = rig.mount.clock.now()
    res = await goto_target(rig.mount, cfg)
    # the slew took the time the simulated mount slews at, from the pole
    assert rig.mount.clock.now() - t0 == pytest.approx((90.0 - cfg.plan.dec_deg) / cfg.mount.slew_rate_deg_s,
                                                       rel=0.05)
    st = await rig.mount.state()
    assert st.tracking and res["tracking"]
    assert st.dec_deg == pytest.approx(cfg.plan.dec_deg, abs=0.05)
    assert (st.ra_deg - cfg.plan.ra_deg) * math.cos(math.radians(st.dec_deg)) == pytest.approx(0, abs=0.05)
    assert res["target"] == cfg.plan.target and res["mount_dec_deg"] == pytest.approx(st.dec_deg, abs=0.01)


async def test_guide_goto_reports_the_goto(cfg):
    res = await run_guide(cfg, minutes=0.2, fast=True, goto=True)
    assert "error" not in res, res
    assert res["goto"]["target"] == cfg.plan.target and res["goto"]["tracking"]
    assert res["frames"] > 0


def _indi_cfg(data_root, port):
    from fieldtui.config import load_config
    return load_config(user=False, overrides={
        "storage": {"data_root": str(data_root)}, "indi": {"port": port, "timeout_s": 1.0},
        "guide_camera": {"driver": "indi", "indi_device": "CCD Simulator"},
        "mount": {"driver": "indi", "indi_device": "Telescope Simulator"}})


async def test_guide_on_an_indi_rig_without_its_server_says_what_to_do(data_root):
    """Nothing listens at [indi] port (no server is started: no namespace needed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = await run_guide(_indi_cfg(data_root, port), minutes=0.1, fast=False, goto=True)
    assert res["error"].startswith(f"guide camera: no INDI server answers at 127.0.0.1:{port}"), res
    assert "indiserver" in res["error"]


def test_guide_fast_on_an_indi_rig_is_refused(data_root, tmp_path, capsys):
    from fieldtui.commands.guide import main
    cfg = tmp_path / "indi.toml"
    cfg.write_text(f'[storage]\ndata_root = "{data_root}"\n[guide_camera]\ndriver = "indi"\n'
                   'indi_device = "CCD Simulator"\n')
    assert main(["--config", str(cfg), "--minutes", "1", "--fast"]) == 2
    assert "a real rig guides in real time (leave out --fast)" in capsys.readouterr().err
