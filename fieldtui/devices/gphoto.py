"""A DSLR or mirrorless camera over USB through libgphoto2 (the ``gphoto2`` binding).

What a night needs from the camera: detect it, read and set ISO, image
format (RAW for a sequence: a JPEG camera is refused), capture target and
shutter speed; exposures up to 30 s with the camera's own shutter speeds and
**bulb exposures of any length timed here** (Canon: the ``eosremoterelease``
widget, Press Full / Release Full; others: the ``bulb`` toggle); each file is
downloaded into the data folder with an atomic rename and read back through
LibRaw; live-view frames (``capture_preview``) for focusing.

Failures: no camera, a USB port another program holds, a camera busy or
switched off mid-exposure each raise a :class:`DeviceError` with what to do.
Nothing is written unless the whole file arrived, and a bulb exposure is
always released, even when the exposure is cancelled.

libgphoto2 is not thread-safe per camera: every call runs in one thread at a
time (a lock), off the event loop (``clock.run_blocking``).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from .. import atomic
from ..clock import Clock, RealClock
from ..config import MainCameraCfg
from ..frame import Frame
from .base import (DeviceDisconnected, DeviceError, DeviceInfo, DeviceTimeout, MainCamera,
                   VendorLibraryMissing)

T = TypeVar("T")

# libgphoto2 result codes (gphoto2-result.h, gphoto2-port-result.h)
GP_ERROR = -1
GP_ERROR_BAD_PARAMETERS = -2
GP_ERROR_NOT_SUPPORTED = -6
GP_ERROR_IO = -7
GP_ERROR_TIMEOUT = -10
GP_ERROR_IO_USB_FIND = -52
GP_ERROR_IO_USB_CLAIM = -53
GP_ERROR_MODEL_NOT_FOUND = -105
GP_ERROR_CAMERA_BUSY = -110
GONE = {GP_ERROR_IO, GP_ERROR_IO_USB_FIND, GP_ERROR_MODEL_NOT_FOUND, -105, -7, -35, -34}

RAW_SUFFIXES = {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".srw", ".orf",
                ".rw2", ".pef", ".raf", ".dng", ".3fr", ".erf", ".kdc", ".mrw", ".x3f", ".iiq"}
BULB_ABOVE_S = 30.0          # longer exposures are timed here in bulb mode
EVENT_WAIT_MS = 500
FILE_WAIT_S = 60.0           # after the shutter closes, the file must come within this

FIX_NO_CAMERA = ("plug the camera in, switch it on, set the mode dial to M (or B), and "
                 "check `fieldtui check` lists it")
FIX_BUSY = ("another program holds the camera's USB port: close photo import tools and the file "
            "manager's camera mount (on GNOME, gvfs-gphoto2-volume-monitor), then reconnect")


class CameraBusy(DeviceError):
    """The camera said it is busy (still writing the last frame): the call is tried again."""


BUSY_RETRIES = 3
BUSY_WAIT_S = 1.0


def file_kind(data: bytes) -> str:
    """What a camera file is, from its first bytes: ``raw`` (TIFF-based CR2/NEF/ARW/DNG,
    Canon CR3, Fuji RAF, Olympus ORF, Panasonic RW2), ``jpeg`` or ``unknown``."""
    head = bytes(data[:16])
    if head[:4] in (b"II*\0", b"MM\0*", b"IIRO", b"IIRS", b"IIU\0") or head[4:11] == b"ftypcrx" \
            or head.startswith(b"FUJIFILMCCD-RAW"):
        return "raw"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return "unknown"


def is_raw_format(value: str) -> bool:
    """Whether an image format setting (Canon ``imageformat``, Nikon ``imagequality``) makes
    raw files: "RAW", "RAW + Large Fine JPEG", "NEF (Raw)", "cRAW"..."""
    v = value.lower()
    return any(k in v for k in ("raw", "nef", "cr2", "cr3", "arw", "dng"))


class GphotoCamera(MainCamera):
    """The main camera through libgphoto2. ``gp`` is the binding (a stand-in in tests);
    ``require_raw`` False lets a camera that only makes JPEGs take frames (tests, framing)."""

    driver = "gphoto2"
    FORMAT_WIDGETS = ("imageformat", "imagequality")
    RELEASE = "eosremoterelease"

    def __init__(self, cfg: MainCameraCfg, clock: Clock | None = None, *, gp: Any = None,
                 require_raw: bool = True, call_timeout_s: float = 30.0) -> None:
        self.cfg = cfg
        self.clock = clock or RealClock()
        self._gp = gp
        self.require_raw = require_raw
        self.call_timeout_s = call_timeout_s
        self.width, self.height, self.pixel_um, self.bit_depth = cfg.width, cfg.height, cfg.pixel_um, cfg.bit_depth
        self.bayer = cfg.bayer or None
        self.iso = cfg.iso
        self.model = cfg.model
        self.cam: Any = None
        self._lock = threading.Lock()
        self._connected = False
        self.last_failure = ""

    # ----- plumbing -----------------------------------------------------------------
    @property
    def gp(self) -> Any:
        if self._gp is None:
            try:
                import gphoto2
            except ImportError:
                raise VendorLibraryMissing(
                    "the gphoto2 binding is not installed: pip install 'fieldtui[dslr]' "
                    "(it brings libgphoto2 with it)") from None
            self._gp = gphoto2
        return self._gp

    def _error(self, exc: Exception, what: str) -> DeviceError:
        code = getattr(exc, "code", GP_ERROR)
        if code == GP_ERROR_IO_USB_CLAIM:
            return DeviceError(f"camera: {what}: USB port busy ({exc}); {FIX_BUSY}")
        if code == GP_ERROR_CAMERA_BUSY:
            return CameraBusy(f"camera busy during {what} ({exc}): it may still be writing the "
                              f"last frame (tried {BUSY_RETRIES + 1} times)")
        if code == GP_ERROR_TIMEOUT:
            return DeviceTimeout(f"camera did not answer during {what} ({exc})")
        if code in GONE:
            self._drop()
            return DeviceDisconnected(f"camera went away during {what} ({exc}): check that it is on, "
                                      "its battery and its USB cable")
        return DeviceError(f"camera: {what} failed ({exc})")

    def _drop(self) -> None:
        self._connected = False
        cam, self.cam = self.cam, None
        if cam is not None:
            with contextlib.suppress(Exception):
                cam.exit()

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """A libgphoto2 call under the lock, its errors mapped (runs in a worker thread)."""
        with self._lock:
            try:
                return fn(*args)
            except self.gp.GPhoto2Error as exc:
                raise self._error(exc, what) from None

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """A call in a worker thread; a busy camera is asked again after BUSY_WAIT_S."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                return await self.clock.run_blocking(self._call, what, fn, *args)
            except CameraBusy:
                if attempt == BUSY_RETRIES:
                    raise
                await self.clock.sleep(BUSY_WAIT_S)
        raise AssertionError("unreachable")

    def _need(self) -> Any:
        if self.cam is None or not self._connected:
            raise DeviceDisconnected(f"camera is not connected; {FIX_NO_CAMERA}")
        return self.cam

    # ----- settings (blocking; call through _run) -------------------------------------
    def _widget(self, names: tuple[str, ...] | str) -> tuple[Any, Any] | None:
        root = self._need().get_config()
        for name in (names,) if isinstance(names, str) else names:
            try:
                return root, root.get_child_by_name(name)
            except self.gp.GPhoto2Error:
                continue
        return None

    def _get(self, names: tuple[str, ...] | str) -> str | None:
        w = self._widget(names)
        return None if w is None else str(w[1].get_value())

    def _choices(self, names: tuple[str, ...] | str) -> list[str]:
        w = self._widget(names)
        if w is None:
            return []
        widget = w[1]
        return [str(widget.get_choice(i)) for i in range(widget.count_choices())]

    def _set(self, name: str, value: Any) -> None:
        got = self._widget(name)
        if got is None:
            raise DeviceError(f"this camera has no '{name}' setting")
        root, widget = got
        widget.set_value(value)
        cam = self._need()
        if hasattr(cam, "set_single_config"):
            try:
                cam.set_single_config(name, widget)
                return
            except self.gp.GPhoto2Error as exc:
                if getattr(exc, "code", 0) != GP_ERROR_NOT_SUPPORTED:
                    raise
        cam.set_config(root)

    # ----- connect ---------------------------------------------------------------------
    def _sync_connect(self) -> DeviceInfo:
        gp = self.gp
        listed = gp.Camera.autodetect()
        found = ([(listed.get_name(i), listed.get_value(i)) for i in range(listed.count())]
                 if hasattr(listed, "get_name") else [tuple(c) for c in listed])
        if not found:
            raise DeviceDisconnected(f"no camera found over USB; {FIX_NO_CAMERA}")
        self._drop()
        cam = gp.Camera()
        try:
            cam.init()
        except gp.GPhoto2Error as exc:
            raise self._error(exc, "connecting") from None
        self.cam, self._connected = cam, True
        name = found[0][0]
        self.model = self.cfg.model if self.cfg.model and len(found) == 1 and self.cfg.model in name else name
        fmt = self._get(self.FORMAT_WIDGETS)
        details = {"port": found[0][1], "iso": self._get("iso"), "image_format": fmt,
                   "raw": None if fmt is None else is_raw_format(fmt),
                   "capture_target": self._get("capturetarget"), "shutter_speed": self._get("shutterspeed"),
                   "bulb": "canon release" if self._widget(self.RELEASE) else
                           ("bulb toggle" if self._widget("bulb") else "none"),
                   "width": self.width, "height": self.height, "bayer": self.bayer}
        if len(found) > 1:
            details["others"] = [f"{n} on {p}" for n, p in found[1:]]
        return DeviceInfo(self.kind, self.driver, self.model, details)

    async def connect(self) -> DeviceInfo:
        """Find the camera (the first libgphoto2 detects) and open it. Raises
        VendorLibraryMissing, DeviceDisconnected (none found) or DeviceError (busy USB)."""
        return await self.clock.run_blocking(self._locked, self._sync_connect)

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    async def disconnect(self) -> None:
        await self.clock.run_blocking(self._locked, self._drop)

    # ----- settings (async) ----------------------------------------------------------------
    async def settings(self) -> dict[str, Any]:
        """ISO, image format, capture target and shutter speed as the camera reports them,
        with the choices it offers."""
        def read() -> dict[str, Any]:
            return {name: {"value": self._get(w), "choices": self._choices(w)}
                    for name, w in (("iso", "iso"), ("image_format", self.FORMAT_WIDGETS),
                                    ("capture_target", "capturetarget"), ("shutter_speed", "shutterspeed"))}
        return await self._run("reading settings", read)

    async def set_iso(self, iso: int) -> None:
        """Raises DeviceError when the camera does not offer that ISO."""
        def go() -> None:
            choices = self._choices("iso")
            if not choices:
                raise DeviceError("this camera has no ISO setting over USB")
            if str(iso) not in choices:
                raise DeviceError(f"ISO {iso} is not offered; this camera has {', '.join(choices)}")
            if self._get("iso") != str(iso):
                self._set("iso", str(iso))
        await self._run(f"setting ISO {iso}", go)
        self.iso = iso

    async def set_image_format(self, value: str) -> None:
        def go() -> None:
            names = self.FORMAT_WIDGETS
            w = self._widget(names)
            if w is None:
                raise DeviceError("this camera has no image format setting over USB")
            choices = self._choices(names)
            if value not in choices:
                raise DeviceError(f"image format {value!r} is not offered; one of {', '.join(choices)}")
            self._set(w[1].get_name(), value)
        await self._run(f"setting the image format to {value}", go)

    async def set_capture_target(self, value: str) -> None:
        """Where the camera keeps the file until it is downloaded (e.g. "Internal RAM",
        "Memory card")."""
        def go() -> None:
            choices = self._choices("capturetarget")
            if value not in choices:
                raise DeviceError(f"capture target {value!r} is not offered; one of {', '.join(choices) or 'none'}")
            self._set("capturetarget", value)
        await self._run(f"setting the capture target to {value}", go)

    async def check_raw(self) -> None:
        """Refuse a sequence on a camera set to JPEG (or not saying what it makes)."""
        fmt = await self._run("reading the image format", self._get, self.FORMAT_WIDGETS)
        if fmt is None:
            if self.require_raw:
                raise DeviceError("the camera does not say its image format over USB; a sequence "
                                  "needs RAW: set it on the camera")
            return
        if not is_raw_format(fmt) and self.require_raw:
            raise DeviceError(f"the camera is set to {fmt!r}: set the image format to RAW "
                              "(a sequence needs raw frames)")

    @staticmethod
    def _speed_seconds(text: str) -> float | None:
        t = text.strip().rstrip("s").strip()
        try:
            if "/" in t:
                a, b = t.split("/", 1)
                return float(a) / float(b)
            return float(t)
        except ValueError:
            return None

    def _pick_speed(self, seconds: float) -> str | None:
        """The camera's own shutter speed within 2 % of ``seconds``, or None (then bulb)."""
        best, err = None, 0.02
        for c in self._choices("shutterspeed"):
            s = self._speed_seconds(c)
            if s and abs(s - seconds) / seconds <= err:
                best, err = c, abs(s - seconds) / seconds
        return best

    # ----- exposures -------------------------------------------------------------------------
    def _wait_file(self, timeout_s: float) -> tuple[str, str]:
        gp = self._gp
        end = time.monotonic() + timeout_s
        cam = self._need()
        while time.monotonic() < end:
            kind, data = cam.wait_for_event(EVENT_WAIT_MS)
            if kind == gp.GP_EVENT_FILE_ADDED:
                return data.folder, data.name
        raise DeviceTimeout(f"no file came from the camera within {timeout_s:g} s of the exposure's end")

    def _bulb_mode(self) -> str:
        if self._widget(self.RELEASE) is not None:
            return "canon"
        if self._widget("bulb") is not None:
            return "toggle"
        raise DeviceError("this camera has no bulb control over USB: use exposures of 30 s or "
                          "less, or a release cable")

    async def _bulb(self, seconds: float) -> tuple[str, str]:
        mode = await self._run("preparing bulb", self._bulb_mode)
        if mode == "canon":
            choices = await self._run("reading shutter speeds", self._choices, "shutterspeed")
            if "bulb" in choices:
                await self._run("setting bulb", self._set, "shutterspeed", "bulb")
            await self._run("pressing the release", self._set, self.RELEASE, "Press Full")
        else:
            await self._run("opening the shutter", self._set, "bulb", 1)

        async def release() -> None:
            if mode == "canon":
                await self._run("releasing", self._set, self.RELEASE, "Release Full")
            else:
                await self._run("closing the shutter", self._set, "bulb", 0)
        try:
            await self.clock.sleep(seconds)
        except BaseException:
            # Always let go of the shutter, even when cancelled (then its own error is the news).
            with contextlib.suppress(DeviceError):
                await asyncio.shield(release())
            raise
        await release()
        return await self._run("waiting for the file", self._wait_file, FILE_WAIT_S)

    async def _shoot(self, seconds: float) -> tuple[str, str]:
        if seconds > BULB_ABOVE_S:
            return await self._bulb(seconds)
        speed = await self._run("reading shutter speeds", self._pick_speed, seconds)
        if speed is None:
            return await self._bulb(seconds)
        current = await self._run("reading the shutter speed", self._get, "shutterspeed")
        if current != speed:
            await self._run(f"setting the shutter speed to {speed}", self._set, "shutterspeed", speed)
        path = await self._run("capturing", lambda: self._need().capture(self.gp.GP_CAPTURE_IMAGE))
        return path.folder, path.name

    def _download(self, folder: str, name: str) -> bytes:
        cam = self._need()
        f = cam.file_get(folder, name, self.gp.GP_FILE_TYPE_NORMAL)
        return bytes(memoryview(f.get_data_and_size()))

    async def expose(self, seconds: float, iso: int | None = None, path: Path | None = None,
                     kind: str = "light") -> Frame:
        """One exposure: the camera's shutter speed up to 30 s, bulb timed here beyond. With
        ``path`` the camera's file is kept there (its own extension), written atomically;
        without, it is read and dropped. Raises DeviceError (JPEG when RAW is required, no
        bulb control), DeviceDisconnected (camera gone: nothing is kept), DeviceTimeout."""
        if seconds <= 0:
            raise DeviceError(f"exposure {seconds:g} s: must be positive")
        self._need()
        if self.require_raw:
            await self.check_raw()
        if iso is not None and iso != self.iso:
            await self.set_iso(iso)
        t0 = self.clock.now()
        folder, name = await self._shoot(seconds)
        data = await self._run(f"downloading {name}", self._download, folder, name)
        what = file_kind(data)
        if not data:
            raise DeviceError(f"camera sent an empty file for {name}; nothing is kept")
        if self.require_raw and what != "raw":
            raise DeviceError(f"camera sent a {what.upper()} ({name}), not a raw file: set the image "
                              "format to RAW; the frame is not kept")
        suffix = Path(name).suffix.lower()
        if what == "raw" and suffix not in RAW_SUFFIXES:
            suffix = Path(path).suffix if path is not None else ".dng"
        if path is not None:
            dest = Path(path).with_suffix(suffix)
            await self.clock.run_blocking(atomic.write_bytes, dest, data)
            return await self._read_back(dest, t0, seconds, kind, name)
        with tempfile.TemporaryDirectory(prefix="fieldtui-dslr-") as tmp:
            dest = Path(tmp) / f"frame{suffix}"
            await self.clock.run_blocking(dest.write_bytes, data)
            frame = await self._read_back(dest, t0, seconds, kind, name)
            frame.path = None
            return frame

    async def _read_back(self, dest: Path, t0: float, seconds: float, kind: str, name: str) -> Frame:
        from ..imaging.io import FrameReadError, read_frame
        try:
            frame = await self.clock.run_blocking(read_frame, dest)
        except FrameReadError as exc:
            dest.unlink(missing_ok=True)      # never left looking like a good frame
            raise DeviceError(f"camera file {name} cannot be read ({exc}); nothing is kept") from None
        frame.timestamp, frame.kind, frame.exposure = t0, kind, seconds
        frame.iso = frame.iso or self.iso
        frame.camera = frame.camera or self.model
        frame.meta["camera_file"] = name
        return frame

    async def live_view(self, seconds: float = 1.0, iso: int | None = None) -> Frame:
        """One live-view frame (the camera's preview JPEG as luminance, 0–255), for focusing."""
        self._need()
        t0 = self.clock.now()
        data = await self._run("live view", lambda: bytes(memoryview(
            self._need().capture_preview().get_data_and_size())))
        try:
            import io

            from PIL import Image
        except ImportError:
            raise VendorLibraryMissing("live view needs Pillow: pip install 'fieldtui[dslr]'") from None
        try:
            img = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint16)
        except Exception as exc:  # noqa: BLE001 - a broken preview frame is a device error
            raise DeviceError(f"camera sent a live-view frame that is not an image ({exc})") from None
        return Frame(data=img, exposure=seconds, timestamp=t0, iso=iso or self.iso, bayer=None,
                     black_level=0.0, white_level=255.0, bit_depth=8, pixel_um=self.pixel_um,
                     focal_mm=None, camera=self.model, kind="live")
