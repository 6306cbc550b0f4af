"""Equipment: every device live with its state and fix, the check, what is attached (and
picking one of those for its role), the manual checklist."""

from __future__ import annotations

import asyncio
import time

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from ...config import ConfigError, user_config_path
from ...userconfig import ROLE_OF_KIND, ChoiceError, choice_keys, save_choice, shadowed_by
from .base import StageScreen, age_text, hhmm, in_worker

DEVICE_ORDER = ("guide_camera", "main_camera", "mount", "guide_port", "focuser")
SYSTEM_ORDER = ("indi", "disk", "clock", "site", "cpu")  # "indi": the server's devices, with INDI roles
#: widths of the device table's first three columns ("disconnected" is 12); each column has a
#: cell's padding either side, the table a border and a one-cell scroll bar
MARK_W, NAME_W, STATE_W = 4, 12, 12
#: answers from a check older than this say their age
CHECK_OLD_S = 60.0
TABLE_CHROME = 2 + 2 * 4 + 1


def detail_width(table_width: int) -> int:
    """Cells left for "what it answered" in a device table ``table_width`` cells wide."""
    return max(16, table_width - TABLE_CHROME - MARK_W - NAME_W - STATE_W)


def row_heights(lines: list[int], highlighted: int, budget: int) -> list[int]:
    """Lines each device row takes: every row's whole answer when all of them fit in ``budget``
    lines, else the highlighted row's whole answer and one line (cut with "…") for the others;
    ``lines``: each row's answer wrapped to the column."""
    if sum(lines) <= budget:
        return list(lines)
    return [n if i == highlighted else 1 for i, n in enumerate(lines)]


def in_use_by(rig: object, device: str) -> str:
    """What uses ``device`` now ('' when nothing): the service's lease when it reports one,
    else what the guider's and the focus loop's states imply."""
    holder = (getattr(rig, "devices", {}).get(device) or {}).get("holder")
    if holder:  # the service's lease on the device (DeviceStatus.holder)
        return str(holder)
    g = (getattr(rig, "extra", {}).get("guiding") or {}).get("state", "stopped")
    if g in ("guiding", "settling", "star lost", "calibrating", "assistant") and device in ("guide_camera", "guide_port", "mount"):
        return "guiding"
    if g == "looping" and device == "guide_camera":
        return "the guide loop"
    acts = getattr(rig, "activities", {})
    if acts.get("focus", {}).get("state") in ("running", "waiting"):
        cam = (getattr(rig, "extra", {}).get("events", {}).get("FocusSettings") or {}).get("camera", "main_camera")
        if device in (cam, "focuser"):
            return "the focus loop"
    if acts.get("focus.test", {}).get("state") == "running" and device == "main_camera":
        return "a test exposure"
    for name, a in acts.items():
        if a.get("state") == "running" and name.endswith(f":{device}"):
            return name.split(":")[0]
    return ""


class EquipmentScreen(StageScreen):
    TITLE_TEXT = "EQUIPMENT"
    BINDINGS = [
        Binding("r", "run_check", "Check", tooltip="check every device (a test frame from each camera), "
                "the disk, the clock, the site and the CPU"),
        Binding("x", "reconnect", "Reconn", tooltip="reconnect the highlighted device (asks first when "
                "it is in use)"),
        Binding("a", "attached", "Attached", tooltip="move to the list of attached devices the check "
                "found (arrows pick one)"),
        Binding("u", "use", "Use", tooltip="use the highlighted attached device for its role (ZWO camera: "
                "guide camera, serial port: mount, gphoto2: main camera); asks first, saves it to your "
                "config file, used after the service restarts"),
        *[Binding(str(i), f"tick({i})", f"Tick {i}", show=False, tooltip=f"tick or untick checklist item {i}")
          for i in range(1, 7)],
    ]

    def body(self) -> ComposeResult:
        table = DataTable(id="devices", cursor_type="row", zebra_stripes=False, classes="live")
        self._add_device_columns(table, detail_width(80))
        yield table
        fix = Static("", id="fix", markup=False, classes="live")
        fix.display = False  # shown when the highlighted row has a fix
        yield fix
        yield Static("", id="checklist", markup=False, classes="live")
        attached = DataTable(id="attached", cursor_type="row", zebra_stripes=False, classes="live")
        attached.add_column("for", key="role", width=12)
        attached.add_column("kind", key="kind", width=7)
        attached.add_column("where", key="where", width=14)
        attached.add_column("what answered", key="what")
        attached.display = False
        yield attached

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self._layout: list[tuple[str, int]] = []  # (row key, lines) as the table shows them
        self._detail_w = 0

    def _add_device_columns(self, table: DataTable, width: int) -> None:
        self._detail_w = width
        table.add_column("", key="mark", width=MARK_W)
        table.add_column("device", key="name", width=NAME_W)
        table.add_column("state", key="state", width=STATE_W)
        table.add_column("what it answered", key="detail", width=width)

    def on_mount(self) -> None:
        self.refresh_all()
        self.show_ages()
        self.set_interval(1.0, self.show_ages)

    def show_ages(self) -> None:
        """The device table's title: when the answers in it were checked and, once that is a
        minute ago, how old they are (device states themselves are live)."""
        rig = self.app.rig  # type: ignore[attr-defined]
        t = float((rig.check or {}).get("t") or 0.0)
        if not rig.check:
            title = "devices · r checks them"
        elif not t:
            title = "answers from the last check"
        else:
            title = f"answers from the check at {hhmm(t)} UT"
            age = (rig.now() if rig.connected else time.time()) - t
            if age > CHECK_OLD_S:
                title += f" · {age_text(age)}"
        table = self.query_one("#devices", DataTable)
        if table.border_title != title:
            table.border_title = title

    def on_resize(self, _event: events.Resize) -> None:
        self.refresh_devices()
        self.refresh_checklist()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("run_check", "reconnect", "tick") and not self.app.rig.connected:  # type: ignore[attr-defined]
            return False
        if action == "reconnect":
            return self._highlighted() in DEVICE_ORDER
        if action in ("attached", "use"):
            return bool(self.attached())
        return True

    def _highlighted(self) -> str:
        table = self.query_one("#devices", DataTable)
        if not table.row_count:
            return ""
        return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def rig_changed(self, part: str) -> None:
        super().rig_changed(part)
        if part in ("devices", "check", "connection"):
            self.refresh_devices()
        if part == "check":
            self.refresh_attached()
        if part in ("check", "connection"):
            self.show_ages()
        if part in ("checklist", "connection"):
            self.refresh_checklist()

    def refresh_all(self) -> None:
        self.refresh_attached()
        self.refresh_checklist()
        self.refresh_devices()

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

    def _room(self) -> int:
        """Lines the device table may take (border and header included): what the title, the
        fix, the checklist, the attached list and the bottom bars leave on this screen."""
        height = self.size.height or self.app.size.height
        used = 1  # the title
        fix = self._shown_texts.get("#fix", "")
        if fix:
            used += min(5, len(Text(fix).wrap(self.app.console, max(20, (self.size.width or 80) - 2))))
        used += len(self._shown_texts.get("#checklist", "x\nx\nx\nx").splitlines())
        attached = self.query_one("#attached", DataTable)
        if attached.display:
            used += min(7, 3 + attached.row_count)
        bottom = self.query_one("#bottom")
        used += bottom.outer_size.height or 4
        return max(5, height - used)

    def refresh_devices(self) -> None:
        """The device table: "what it answered" wraps in its column (the highlighted row shows
        its whole answer; every row does when they all fit), so nothing is cut at 80 columns."""
        table = self.query_one("#devices", DataTable)
        rows = self.rows()
        width = detail_width(table.outer_size.width or self.size.width or self.app.size.width)
        cursor = min(table.cursor_row, len(rows) - 1) if rows else 0
        if [str(k.value) for k in table.rows] != [r[0] for r in rows]:
            cursor = 0
        console = self.app.console
        wrapped = [len(Text(r[3] or " ").wrap(console, width)) for r in rows]
        room = self._room()
        heights = row_heights(wrapped, cursor, room - 3)
        layout = [(r[0], h) for r, h in zip(rows, heights)]
        if width != self._detail_w or layout != self._layout:
            self._layout = layout
            if width != self._detail_w:
                table.clear(columns=True)
                self._add_device_columns(table, width)
            else:
                table.clear()
            for (key, mark, state, detail, _), h in zip(rows, heights):
                table.add_row(mark, key.replace("_", " "), state, self._cell(detail, h), key=key, height=h)
            if rows:
                table.move_cursor(row=cursor, animate=False)
                # once the new row heights are laid out, scroll the whole highlighted row into view
                self.call_after_refresh(self._show_cursor_row, table)
        else:
            for (key, mark, state, detail, _), h in zip(rows, heights):
                for col, val in (("mark", mark), ("state", state), ("detail", self._cell(detail, h))):
                    if table.get_cell(key, col) != val:
                        table.update_cell(key, col, val)
        high = min(room, sum(heights) + 3)  # beyond it the table scrolls
        if table.styles.max_height is None or table.styles.max_height.value != high:
            table.styles.max_height = high
            self.call_after_refresh(self._show_cursor_row, table)
        self.show_fix()

    @staticmethod
    def _show_cursor_row(table: DataTable) -> None:
        """Scroll so the highlighted row is in view with all its lines (DataTable scrolls to
        the cursor only when it moves, and before new row heights are laid out)."""
        scroll = getattr(table, "_scroll_cursor_into_view", None)
        if scroll is not None:
            scroll(animate=False)

    @staticmethod
    def _cell(detail: str, height: int) -> Text:
        """A row's answer: wrapped over ``height`` lines, or one line ending in "…" when cut."""
        if height > 1:
            return Text(detail)
        return Text(detail, no_wrap=True, overflow="ellipsis")

    def attached(self) -> list[dict[str, str]]:
        """What the last check found attached (``devices.discover``'s items)."""
        return list((self.app.rig.check or {}).get("attached") or [])  # type: ignore[attr-defined]

    def refresh_attached(self) -> None:
        table = self.query_one("#attached", DataTable)
        items = self.attached()
        table.clear()
        for i, f in enumerate(items):
            role = ROLE_OF_KIND.get(f.get("kind", ""), "")
            usable = role and (f.get("kind") != "serial" or f.get("answers"))
            what = f.get("what", "") + (f" ({f['answers']})" if f.get("answers") else "")
            table.add_row(role.replace("_", " ") if usable else "-", f.get("kind", ""), f.get("where", ""),
                          what, key=str(i))
        if table.display != bool(items):
            table.display = bool(items)
            self.refresh_devices()  # the device table's room changed
        self.refresh_keys()

    def action_attached(self) -> None:
        self.query_one("#attached", DataTable).focus()

    def action_use(self) -> None:
        table = self.query_one("#attached", DataTable)
        items = self.attached()
        if not table.row_count or not items:
            return
        found = items[int(str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value))]
        try:
            role, keys = choice_keys(found)
        except ChoiceError as exc:
            self.message(str(exc), "warning")
            return
        path = user_config_path()
        label = role.replace("_", " ")
        sets = ", ".join(f"{role}.{k} = {v!r}" for k, v in keys.items())

        async def save() -> None:
            try:
                await asyncio.to_thread(save_choice, role, keys, path)
            except (ConfigError, OSError) as exc:
                self.message(f"not saved: {exc}", "error")
                return
            shadow = await asyncio.to_thread(shadowed_by, self.app.config_path, role, keys)  # type: ignore[attr-defined]
            if shadow:
                self.message(f"saved {sets} in {path}, but {shadow} also sets it and wins: change it there "
                             "or start without it", "warning")
                return
            self.message(f"saved {sets} in {path}; the service uses the new {label} after a restart "
                         "(`fieldtui service stop`, then `fieldtui`)")

        self.ask(f"Use {found.get('what', '')} at {found.get('where', '')} as the {label}? "
                 f"This saves {sets} in {path}.", save)

    def show_fix(self) -> None:
        table = self.query_one("#devices", DataTable)
        rows = {r[0]: r for r in self.rows()}
        text = ""
        if table.row_count:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            r = rows.get(str(key))
            if r and r[4]:  # (its whole answer is in its row)
                text = f"{r[0].replace('_', ' ')} → fix: {r[4]}"
        if self._shown_texts.get("#fix", "") != text:
            self.set_text("#fix", text)
            self.query_one("#fix").display = bool(text)
            self.call_after_refresh(self.refresh_devices)  # the device table's room changed

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "devices":
            self.refresh_devices()  # the highlighted row shows its whole answer
        self.refresh_keys()

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
        self.set_text("#checklist", "\n".join(lines))

    @in_worker(lane="check")
    async def action_run_check(self) -> None:
        self.message("checking every device (a test frame from each camera)…")
        res = await self.app.send("check", timeout=120.0)  # type: ignore[attr-defined]
        if isinstance(res, dict):
            bad = [c["name"] for c in res.get("checks", []) if not c.get("ok")]
            self.message("check: all ok" if not bad else f"check: {', '.join(bad)} failed (highlight it: its fix shows below the table)",
                         "information" if not bad else "warning")

    def action_reconnect(self) -> None:
        key = self._highlighted()
        if key not in DEVICE_ORDER:
            return
        send = lambda: self.app.send("device.reconnect", name=key)  # type: ignore[attr-defined]  # noqa: E731
        user = in_use_by(self.app.rig, key)  # type: ignore[attr-defined]
        if user:
            self.ask(f"Reconnect the {key.replace('_', ' ')}? It is in use by {user}, which "
                     "loses it for a while.", send)
        else:
            self.run_command(send())

    @in_worker
    async def action_tick(self, n: int) -> None:
        keys = list(self.app.rig.checklist_labels)  # type: ignore[attr-defined]
        if 1 <= n <= len(keys):
            await self.app.send("checklist.toggle", item=keys[n - 1])  # type: ignore[attr-defined]
