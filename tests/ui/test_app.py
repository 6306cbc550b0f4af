import asyncio

from textual.widgets import DataTable

from fieldtui.ui.app import STAGES, FieldApp

from .conftest import wait_until
from .nightcheck import bad_svg_colours, hex_rgb, is_night




async def test_every_stage_key_and_the_equipment_rows(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: len(app.rig.devices) == 5 and all(
            d["state"] == "connected" for d in app.rig.devices.values()))
        for key, mode, _ in STAGES:
            await pilot.press(key)
            await pilot.pause(0.05)
            assert app.current_mode == mode
            assert app.screen.query("StatusBar"), f"{mode} has no status bar"
        await pilot.press("e")
        table = app.screen.query_one("#devices", DataTable)
        await wait_until(pilot, lambda: table.row_count == 5)
        rows = {str(k.value): [str(c) for c in table.get_row(k)] for k in table.rows}
        assert set(rows) == {"guide_camera", "main_camera", "mount", "guide_port", "focuser"}
        assert all(r[2] == "connected" for r in rows.values())
        assert "ZWO ASI120MM Mini" in rows["guide_camera"][3]
        # The check fills in what each device answered, plus disk, clock, site and CPU.
        await pilot.press("r")
        assert await wait_until(pilot, lambda: table.row_count == 9, timeout=30)
        rows = {str(k.value): [str(c) for c in table.get_row(k)] for k in table.rows}
        assert "1280x960" in rows["guide_camera"][3] and "tracking on" in rows["mount"][3]
        assert rows["disk"][0] == "ok"


async def test_checklist_ticks_are_kept_by_the_service(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: bool(app.rig.checklist))
        await pilot.press("6")
        assert await wait_until(pilot, lambda: app.rig.checklist.get("caps") is True)
        text = str(app.screen.query_one("#checklist").render())
        assert "6 [x] Caps off" in text
    app2 = FieldApp()  # a new client sees the same ticks
    async with app2.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: bool(app2.rig.checklist))
        assert app2.rig.checklist["caps"] is True and app2.rig.checklist["raw"] is False


async def test_failed_device_shows_its_fix(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.devices.get("focuser", {}).get("state") == "connected")
        await app.send("fault", device="focuser", fault="disconnect")
        await app.send("device.reconnect", name="focuser")
        assert await wait_until(pilot, lambda: app.rig.devices["focuser"]["state"] == "failed")
        table = app.screen.query_one("#devices", DataTable)
        table.move_cursor(row=[str(k.value) for k in table.rows].index("focuser"))
        await pilot.pause(0.2)
        fix = str(app.screen.query_one("#fix").render())
        assert "focuser" in fix and "→ fix: check the focuser's cable and power" in fix


async def test_night_theme_every_variable_and_every_screen(service):
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: len(app.rig.devices) == 5)
        variables = app.get_css_variables()
        colours = {k: v for k, v in variables.items() if isinstance(v, str) and v.startswith("#")}
        assert len(colours) > 100
        bad = {k: v for k, v in colours.items() if not is_night(hex_rgb(v[:7]))}
        assert not bad, bad
        await app.send("loop.start", camera="guide_camera", exposure=0.5)
        for key, mode, _ in STAGES:
            await pilot.press(key)
            await pilot.pause(1.0 if mode == "focus" else 0.2)
            svg = app.export_screenshot()
            assert not bad_svg_colours(svg), (mode, bad_svg_colours(svg))
        # Day theme on a key (it asks first: any key but y keeps the night), and back.
        await pilot.press("t")
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.theme == "fieldtui-night"
        await pilot.press("t")
        await pilot.press("y")
        await pilot.pause(0.1)
        assert app.theme == "fieldtui-day"
        assert bad_svg_colours(app.export_screenshot())  # day is not night: the check can fail
        await pilot.press("t")
        assert app.theme == "fieldtui-night"


async def test_client_reconnects_when_the_service_restarts(cfg, runtime):
    from fieldtui.service.daemon import serve
    ready = asyncio.Event()
    first = asyncio.ensure_future(serve(cfg, ready=ready))
    await ready.wait()
    app = FieldApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.rig.connected and len(app.rig.devices) == 5)
        first.cancel()
        try:
            await first
        except BaseException:
            pass
        assert await wait_until(pilot, lambda: not app.rig.connected)
        assert "service not running since" in str(app.screen.query_one("StatusBar").render())
        ready = asyncio.Event()
        second = asyncio.ensure_future(serve(cfg, ready=ready))
        await ready.wait()
        assert await wait_until(pilot, lambda: app.rig.connected and len(app.rig.devices) == 5)
        second.cancel()
        try:
            await second
        except BaseException:
            pass
