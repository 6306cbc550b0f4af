"""Picking an attached device on the Equipment screen: the check lists a serial port where the
mount emulator answers (over a real pty), `u` asks, `y` saves the choice to the user's config."""

from __future__ import annotations

from types import SimpleNamespace

from textual.widgets import DataTable

from fieldtui.clock import RealClock
from fieldtui.config import load_config
from fieldtui.devices.emulator import MountEmulator
from fieldtui.devices.sim import SimRig
from fieldtui.ui.app import FieldApp

from .conftest import wait_until


async def test_picking_the_attached_mount_saves_it_to_the_user_config(cfg, service, tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text("# mine\n[site]\nlatitude = 44.0\n")
    monkeypatch.setenv("FIELDTUI_USER_CONFIG", str(user))
    emu = MountEmulator("nexstar", SimRig(cfg, RealClock()).mount)
    port = await emu.start()
    from serial.tools import list_ports
    monkeypatch.setattr(list_ports, "comports", lambda: [SimpleNamespace(device=port, description="")])
    try:
        app = FieldApp()
        async with app.run_test(size=(100, 40)) as pilot:
            assert await wait_until(pilot, lambda: len(app.rig.devices) == 5)
            await pilot.press("e")
            table = app.screen.query_one("#attached", DataTable)
            assert not table.display  # nothing listed before a check
            await pilot.press("r")
            assert await wait_until(pilot, lambda: table.row_count >= 1, timeout=60)
            rows = [[str(c) for c in table.get_row(k)] for k in table.rows]
            assert ["mount", "serial", port, "NexStar 4.21 (nexstar)"] in rows
            await pilot.press("a")
            assert app.screen.focused is table
            for _ in range(len(rows)):
                if str(table.get_row_at(table.cursor_row)[2]) == port:
                    break
                await pilot.press("down")
            await pilot.press("u")
            await pilot.pause(0.2)
            assert user.read_text() == "# mine\n[site]\nlatitude = 44.0\n"  # nothing before the answer
            await pilot.press("y")
            assert await wait_until(pilot, lambda: "nexstar" in user.read_text(), timeout=10)
    finally:
        await emu.close()
    text = user.read_text()
    assert text.startswith("# mine\n[site]\nlatitude = 44.0\n")
    saved = load_config(user, user=False)
    assert (saved.mount.driver, saved.mount.port, saved.site.latitude) == ("nexstar", port, 44.0)
