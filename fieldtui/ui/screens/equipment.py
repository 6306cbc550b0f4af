"""Equipment: every device live with its state and fix, the check, the manual checklist."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from .base import StageScreen

DEVICE_ORDER = ("guide_camera", "main_camera", "mount", "guide_port", "focuser")
SYSTEM_ORDER = ("disk", "clock", "site", "cpu")


class EquipmentScreen(StageScreen):
    TITLE_TEXT = "EQUIPMENT  r check all · x reconnect · 1-6 tick the checklist"
    BINDINGS = [
        Binding("r", "run_check", "Check"),
        Binding("x", "reconnect", "Reconn"),
        *[Binding(str(i), f"tick({i})", f"Tick {i}", show=False) for i in range(1, 7)],
    ]

    def body(self) -> ComposeResult:
        table = DataTable(id="devices", cursor_type="row", zebra_stripes=False)
        table.add_column("", key="mark", width=4)
        table.add_column("device", key="name", width=12)
        table.add_column("state", key="state", width=12)
        table.add_column("what it answered", key="detail")
        yield table
        yield Static("", id="fix", markup=False)
        yield Static("", id="checklist", markup=False)

    def on_mount(self) -> None:
        self.refresh_all()

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        if part in ("devices", "check", "connection"):
            self.refresh_devices()
        if part in ("checklist", "connection"):
            self.refresh_checklist()

    def refresh_all(self) -> None:
        self.refresh_devices()
        self.refresh_checklist()

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(key, mark, state, detail, fix) for each device and system check."""
        rig = self.app.rig  # type: ignore[attr-defined]
        checks = {c["name"]: c for c in (rig.check or {}).get("checks", [])}
        out = []
        for name in DEVICE_ORDER:
            d = rig.devices.get(name)
            if d is None:
                continue
            c = checks.get(name)
            state = d.get("state", "?")
            ok = state == "connected" and (c is None or c["ok"])
            detail = d.get("error") if state != "connected" else (c["detail"] if c else d.get("model", ""))
            if state == "connected" and d.get("holder") and f"in use by {d['holder']}" not in (detail or ""):
                detail = f"in use by {d['holder']} · {detail}"
            fix = d.get("fix") or (c["fix"] if c and not c["ok"] else "")
            out.append((name, "ok" if ok else "FAIL" if state in ("failed", "disconnected") else "…", state, detail or "", fix or ""))
        for name in SYSTEM_ORDER:
            c = checks.get(name)
            if c is None:
                continue
            out.append((name, "ok" if c["ok"] else "FAIL", "ok" if c["ok"] else "failed", c["detail"], c["fix"] if not c["ok"] else ""))
        return out

    def refresh_devices(self) -> None:
        table = self.query_one("#devices", DataTable)
        rows = self.rows()
        keys = [r[0] for r in rows]
        if [str(k.value) for k in table.rows] != keys:
            table.clear()
            for key, mark, state, detail, _ in rows:
                table.add_row(mark, key.replace("_", " "), state, detail, key=key)
        else:
            for key, mark, state, detail, _ in rows:
                for col, val in (("mark", mark), ("state", state), ("detail", detail)):
                    if table.get_cell(key, col) != val:
                        table.update_cell(key, col, val)
        self.show_fix()

    def show_fix(self) -> None:
        table = self.query_one("#devices", DataTable)
        rows = {r[0]: r for r in self.rows()}
        text = ""
        if table.row_count:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            r = rows.get(str(key))
            if r:
                text = f"{r[0].replace('_', ' ')}: {r[3]}" + (f"\n→ fix: {r[4]}" if r[4] else "")
        self.set_text("#fix", text)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.show_fix()

    def refresh_checklist(self) -> None:
        rig = self.app.rig  # type: ignore[attr-defined]
        labels = rig.checklist_labels
        items = [f" {i} [{'x' if rig.checklist.get(key) else ' '}] {label}"
                 for i, (key, label) in enumerate(labels.items(), 1)]
        lines = ["Before the first light (keys 1-6):"]
        width = max((len(x) for x in items), default=0) + 2
        half = (len(items) + 1) // 2
        if 2 * width <= max(self.size.width, 80) - 2:  # two columns fit: 80x24 keeps every item in view
            lines += [items[i].ljust(width) + (items[i + half] if i + half < len(items) else "")
                      for i in range(half)]
        else:
            lines += items
        self.query_one("#checklist", Static).update("\n".join(lines))

    async def action_run_check(self) -> None:
        self.notify("checking every device…", timeout=3)
        await self.app.send("check")  # type: ignore[attr-defined]

    async def action_reconnect(self) -> None:
        table = self.query_one("#devices", DataTable)
        if not table.row_count:
            return
        key = str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
        if key in DEVICE_ORDER:
            await self.app.send("device.reconnect", name=key)  # type: ignore[attr-defined]

    async def action_tick(self, n: int) -> None:
        keys = list(self.app.rig.checklist_labels)  # type: ignore[attr-defined]
        if 1 <= n <= len(keys):
            await self.app.send("checklist.toggle", item=keys[n - 1])  # type: ignore[attr-defined]
