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
        # At 80x24 "what it answered" wraps in its column: the highlighted row shows the whole
        # answer (every word, in order), the screen never scrolls, and the table fits its width.
        await assert_whole_answers_shown(pilot, app, table)
        # With INDI roles configured the check has an "indi" line: the server's devices and
        # their connection state, a row of the table like the others.
        app.rig.check["checks"].append({"name": "indi", "ok": False, "fix": "start the missing driver",
                                        "detail": "INDI server 127.0.0.1:7624: CCD Simulator (connected), "
                                                  "Telescope Simulator (not connected); missing: focuser"})
        app.screen.refresh_devices()
        assert await wait_until(pilot, lambda: table.row_count == 10)
        row = [str(c) for c in table.get_row("indi")]
        assert row[0] == "FAIL" and row[2] == "failed"
        assert "CCD Simulator (connected)" in " ".join(_table_text(table).split()) or \
            "CCD Simulator (connected)" in row[3]


def _table_text(table):
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


def test_row_heights_show_every_answer_when_they_fit_else_the_highlighted_one():
    from fieldtui.ui.screens.equipment import detail_width, row_heights
    assert row_heights([2, 3, 1], highlighted=0, budget=6) == [2, 3, 1]
    assert row_heights([2, 3, 1], highlighted=1, budget=5) == [1, 3, 1]
    assert row_heights([2, 3, 1], highlighted=2, budget=5) == [1, 1, 1]
    # 80 columns: border 2, scroll bar 1, four cells' padding 8, columns 4 + 12 + 12
    assert detail_width(80) == 80 - 11 - 28 == 41


async def assert_whole_answers_shown(pilot, app, table):
    from fieldtui.ui.screens.equipment import detail_width
    checks = {c["name"]: c["detail"] for c in app.rig.check["checks"]}
    for i, key in enumerate([str(k.value) for k in table.rows]):
        table.move_cursor(row=i)
        await pilot.pause(0.15)
        answer = checks[key]
        assert table.get_row_at(i)[3].plain == answer  # nothing dropped from the cell
        seen = _table_text(table)
        # (a word longer than the column, a path, is folded: compare without the spaces)
        assert "".join(answer.split()) in "".join(seen.split()), (key, answer, seen)
        assert app.screen.max_scroll_y == 0, key  # nothing pushed off the screen
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.columns[list(table.columns)[3]].width == detail_width(table.outer_size.width)


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
