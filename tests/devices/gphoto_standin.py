"""A stand-in for the ``gphoto2`` binding that behaves like a Canon or Nikon DSLR on it:
widgets with choices (a wrong value is GP_ERROR_BAD_PARAMETERS), Canon's
``eosremoterelease`` or a ``bulb`` toggle, a file event after the shutter closes,
and failures on demand (a code raised by a named call)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any


class GPhoto2Error(Exception):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"[{code}] stand-in error {code}")


@dataclass
class Widget:
    name: str
    value: Any
    choices: list[str] | None = None

    def get_name(self) -> str:
        return self.name

    def get_value(self) -> Any:
        return self.value

    def set_value(self, v: Any) -> None:
        if self.choices is not None and v not in self.choices:
            raise GPhoto2Error(-2)
        self.value = v

    def count_choices(self) -> int:
        return len(self.choices or [])

    def get_choice(self, i: int) -> str:
        return (self.choices or [])[i]


class Root:
    def __init__(self, widgets: dict[str, Widget]) -> None:
        self.widgets = widgets

    def get_child_by_name(self, name: str) -> Widget:
        if name not in self.widgets:
            raise GPhoto2Error(-2)
        w = self.widgets[name]
        return Widget(w.name, w.value, w.choices)   # a copy, as libgphoto2 gives


@dataclass
class Path_:
    folder: str
    name: str


class File:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_data_and_size(self) -> memoryview:
        return memoryview(self.data)


def jpeg_bytes(w: int = 64, h: int = 48) -> bytes:
    from PIL import Image
    import numpy as np
    img = Image.fromarray((np.arange(w * h).reshape(h, w) % 256).astype("uint8"))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


@dataclass
class StandIn:
    """The module. ``clock`` stamps what happens (press, release) on the app's clock."""

    clock: Any
    raw: bytes
    canon: bool = True
    model: str = "Canon EOS 550D"
    fail: dict[str, int] = field(default_factory=dict)      # call name -> error code, once
    cameras: int = 1
    sends_jpeg: bool = False
    log: list[tuple[float, str, Any]] = field(default_factory=list)
    pending: list[Path_] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    n: int = 0

    GP_CAPTURE_IMAGE = 0
    GP_FILE_TYPE_NORMAL = 1
    GP_EVENT_UNKNOWN, GP_EVENT_TIMEOUT, GP_EVENT_FILE_ADDED = 0, 1, 2
    GPhoto2Error = GPhoto2Error

    def __post_init__(self) -> None:
        speeds = ["bulb", "30", "15", "1", "1/100"] if self.canon else ["30", "15", "1", "1/100"]
        self.widgets = {
            "iso": Widget("iso", "800", ["100", "200", "400", "800", "1600", "3200"]),
            "shutterspeed": Widget("shutterspeed", "1/100", speeds),
            "capturetarget": Widget("capturetarget", "Internal RAM", ["Internal RAM", "Memory card"]),
        }
        if self.canon:
            self.widgets["imageformat"] = Widget("imageformat", "RAW",
                                                 ["Large Fine JPEG", "RAW + Large Fine JPEG", "RAW"])
            self.widgets["eosremoterelease"] = Widget(
                "eosremoterelease", "None", ["None", "Press Half", "Press Full", "Release Half", "Release Full"])
        else:
            self.widgets["imagequality"] = Widget("imagequality", "NEF (Raw)", ["JPEG Fine", "NEF (Raw)"])
            self.widgets["bulb"] = Widget("bulb", 0)
        standin = self

        class Camera:
            @staticmethod
            def autodetect() -> list[tuple[str, str]]:
                standin._maybe_fail("autodetect")
                return [(standin.model, f"usb:001,00{i + 4}") for i in range(standin.cameras)]

            def init(self) -> None:
                standin._maybe_fail("init")

            def exit(self) -> None:
                standin.log.append((standin.clock.now(), "exit", None))

            def get_config(self) -> Root:
                standin._maybe_fail("get_config")
                return Root(standin.widgets)

            def set_single_config(self, name: str, widget: Widget) -> None:
                standin._maybe_fail(f"set:{name}={widget.value}")
                standin.widgets[name].set_value(widget.value)
                standin.log.append((standin.clock.now(), name, widget.value))
                if (name, widget.value) in (("eosremoterelease", "Release Full"), ("bulb", 0)):
                    standin._new_file()

            def set_config(self, root: Root) -> None:  # pragma: no cover - set_single_config is used
                raise GPhoto2Error(-6)

            def capture(self, kind: int) -> Path_:
                standin._maybe_fail("capture")
                standin.log.append((standin.clock.now(), "capture", standin.widgets["shutterspeed"].value))
                standin._new_file()
                return standin.pending.pop()

            def wait_for_event(self, ms: int) -> tuple[int, Any]:
                standin._maybe_fail("wait_for_event")
                if standin.pending:
                    return standin.GP_EVENT_FILE_ADDED, standin.pending.pop(0)
                time.sleep(0.001)
                return standin.GP_EVENT_TIMEOUT, None

            def file_get(self, folder: str, name: str, kind: int) -> File:
                standin._maybe_fail("file_get")
                return File(standin.files[name])

            def capture_preview(self) -> File:
                standin._maybe_fail("capture_preview")
                return File(jpeg_bytes())

        self.Camera = Camera

    def _maybe_fail(self, call: str) -> None:
        for key in list(self.fail):
            if call == key or call.startswith(key + "="):
                code = self.fail.pop(key)
                raise GPhoto2Error(code)

    def _new_file(self) -> None:
        self.n += 1
        jpeg = self.sends_jpeg or "JPEG" in str(self.widgets.get("imageformat", Widget("", "")).value) and \
            "RAW" not in str(self.widgets["imageformat"].value)
        name = f"IMG_{self.n:04d}." + ("JPG" if jpeg else ("CR2" if self.canon else "NEF"))
        self.files[name] = jpeg_bytes() if jpeg else self.raw
        self.pending.append(Path_("/store_00020001/DCIM/100CANON", name))

    def presses(self) -> list[tuple[float, Any]]:
        return [(t, v) for t, n, v in self.log if n in ("eosremoterelease", "bulb")]
