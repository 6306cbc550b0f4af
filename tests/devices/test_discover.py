"""Discovery: what answers on a serial port (the emulator over a real pty), the configured
mount's port left alone, gphoto2 cameras (libgphoto2's virtual camera)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldtui.clock import RealClock
from fieldtui.config import load_config
from fieldtui.devices.discover import discover, gphoto2_cameras, probe_port, serial_ports
from fieldtui.devices.emulator import MountEmulator
from fieldtui.devices.sim import SimRig


@pytest.mark.parametrize("protocol,model", [("lx200", "LX200 Emulator"), ("nexstar", "NexStar 4.21"),
                                            ("synscan", "SynScan 4.37")])
async def test_probe_names_the_protocol(cfg, protocol, model):
    import asyncio
    emu = MountEmulator(protocol, SimRig(cfg, RealClock()).mount)
    path = await emu.start()
    try:
        assert await asyncio.to_thread(probe_port, path) == (protocol, model)
        found = await asyncio.to_thread(serial_ports, set(), [path])
        assert [f.answers for f in found if f.where == path] == [protocol]
        found = await asyncio.to_thread(serial_ports, {path}, [path])
        assert [f.what for f in found if f.where == path] == ["in use by the configured mount"]
    finally:
        await emu.close()


async def test_probe_of_a_silent_port_says_nothing_answered(cfg):
    import os
    import tty
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        assert probe_port(os.ttyname(slave), timeout_s=0.1) == ("", "no mount answered")
    finally:
        os.close(master)
        os.close(slave)
    assert probe_port("/dev/ttyNOSUCH7")[0] == ""


def test_gphoto2_cameras_lists_the_virtual_camera(tmp_path, monkeypatch):
    gp = pytest.importorskip("gphoto2")
    monkeypatch.setenv("VCAMERADIR", str(tmp_path))
    monkeypatch.setenv("IOLIBS", str(Path(gp.__file__).parent / "libgphoto2" / "vusb"))
    found = gphoto2_cameras()
    assert [(f.kind, f.what) for f in found] == [("gphoto2", "Nikon DSC D750")]
    items = discover(load_config(), zwo_library="/nonexistent/libASICamera2.so")
    assert {"kind": "gphoto2", "where": found[0].where, "what": "Nikon DSC D750", "answers": ""} in items


def test_check_text_lists_what_is_attached_and_how_to_use_a_mount():
    from fieldtui.commands.check import render_text
    text = render_text({"ok": True, "checks": [], "attached": [
        {"kind": "serial", "where": "/dev/ttyUSB0", "what": "LX200 GPS", "answers": "lx200"},
        {"kind": "serial", "where": "/dev/ttyS0", "what": "no mount answered", "answers": ""}]}, False)
    assert ('attached      serial /dev/ttyUSB0 LX200 GPS: lx200 mount (to use it: [mount] driver = "lx200", '
            'port = "/dev/ttyUSB0")') in text
    assert "serial /dev/ttyS0 no mount answered\n" in text
