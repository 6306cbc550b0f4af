"""ZWO ASI guide cameras through the ``zwoasi`` binding of ZWO's SDK.

Both the binding and the SDK's shared library must be on the machine; when
either is missing, ``connect()`` fails with a message that says what to
install. ``zwoasi`` only finds the SDK on the library path, so it is
initialised with ``guide_camera.sdk_library``, else ``ZWO_ASI_LIB``, else
the usual places. Every SDK call runs in a thread with a timeout, one at a
time (the SDK is not safe to call from two threads on one camera).

Video mode (``guide_camera.video``, the default) keeps the camera streaming:
the ASI120 family resets its USB link on every snapshot exposure, and
streaming avoids it. A frame waiting in the SDK's buffer was exposed before
the request, so it is dropped (stale), and so is the first frame after a
change of exposure, gain or region. Dropped frames and exposure timeouts are
retried; a camera that fell off the USB bus is reopened (same index or
name) without restarting anything.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..clock import Clock, RealClock
from ..config import GuideCameraCfg
from ..frame import Frame
from .base import (DIRECTIONS, DeviceDisconnected, DeviceError, DeviceInfo, DeviceTimeout, Direction,
                   GuideCamera, GuidePort, VendorLibraryMissing, blocking)

SDK_PLACES = ("/usr/local/lib/libASICamera2.so", "/usr/lib/libASICamera2.so",
              "/usr/lib/x86_64-linux-gnu/libASICamera2.so", "/usr/lib/aarch64-linux-gnu/libASICamera2.so")
GUIDE_DIRECTIONS = {"N": 0, "S": 1, "E": 2, "W": 3}  # ASI_GUIDE_NORTH, SOUTH, EAST, WEST
CALL_TIMEOUT_S = 5.0
RETRIES = 2                  # a dropped frame or a timeout is tried again this many times
STALE_MAX = 8                # at most this many waiting frames are dropped before a fresh one
LOST_WORDS = ("removed", "closed", "invalid id", "invalid index", "no camera", "not connected")


def load_binding(sdk_library: str = "") -> Any:
    """Import zwoasi and initialise it with the SDK library, or say what is missing."""
    try:
        import zwoasi  # type: ignore[import-not-found]
    except ImportError:
        raise VendorLibraryMissing(
            "the zwoasi Python package is not installed: pip install 'fieldtui[zwo]'") from None
    candidates = [sdk_library, os.environ.get("ZWO_ASI_LIB", ""), *SDK_PLACES]
    lib = next((c for c in candidates if c and Path(c).is_file()), None)
    if lib is None:
        raise VendorLibraryMissing(
            "ZWO's SDK library (libASICamera2.so) was not found: download the ASI Camera SDK for "
            "Linux from zwoastro.com, then set guide_camera.sdk_library or ZWO_ASI_LIB to its path")
    try:
        zwoasi.init(lib)
    except Exception as exc:  # zwoasi raises ZWO_Error or OSError
        if "already" not in str(exc).lower():
            raise VendorLibraryMissing(f"ZWO's SDK library {lib} could not be loaded: {exc}") from None
    return zwoasi


class ZwoGuideCamera(GuideCamera):
    """A ZWO ASI camera as the guide camera. ``clock`` times ST4 pulses."""

    driver = "zwo"

    def __init__(self, cfg: GuideCameraCfg, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or RealClock()
        self.width, self.height, self.pixel_um, self.bit_depth = cfg.width, cfg.height, cfg.pixel_um, cfg.bit_depth
        self.binning = cfg.binning
        self.offset, self.bandwidth, self.high_speed = cfg.offset, cfg.bandwidth, cfg.high_speed
        self.video = cfg.video
        self._cam: Any = None
        self._asi: Any = None
        self._connected = False
        self._lock = asyncio.Lock()
        self._streaming: tuple | None = None     # settings the running video stream was started with
        self.stats = {"stale_dropped": 0, "retries": 0, "reconnects": 0}
        self.model = cfg.model or "ZWO camera"

    # ----- plumbing --------------------------------------------------------------------
    def _ctl(self, *names: str) -> Any:
        for n in names:
            v = getattr(self._asi, n, None)
            if v is not None:
                return v
        return None

    def _lost(self, exc: Exception) -> bool:
        return any(w in str(exc).lower() for w in LOST_WORDS)

    async def _call(self, fn: Any, *args: Any, timeout: float = CALL_TIMEOUT_S, what: str = "") -> Any:
        """A blocking SDK call; a vanished camera becomes DeviceDisconnected."""
        try:
            return await blocking(fn, *args, timeout=timeout, what=what or "ZWO camera")
        except DeviceError:
            raise
        except Exception as exc:  # zwoasi's ZWO_Error family
            if self._lost(exc):
                self._connected = False
                raise DeviceDisconnected(f"ZWO camera went away ({what}: {exc}): check its USB cable; "
                                         "it is reopened when it comes back") from None
            if "timeout" in str(exc).lower():
                raise DeviceTimeout(f"ZWO camera: {what}: {exc}") from None
            raise DeviceError(f"ZWO camera: {what} failed: {exc}") from None

    # ----- connect -----------------------------------------------------------------------
    async def connect(self) -> DeviceInfo:
        """Open the camera (``guide_camera.model`` picks one by name when several are
        plugged in, else ``index``) and apply offset, bandwidth, high-speed and binning."""
        async with self._lock:
            return await self._open()

    async def _open(self) -> DeviceInfo:
        asi = load_binding(self.cfg.sdk_library)
        self._asi = asi
        await self._close_quietly()
        n = await self._call(asi.get_num_cameras, what="listing ZWO cameras")
        index = self.cfg.index
        names: list[str] = []
        if hasattr(asi, "list_cameras"):
            names = list(await self._call(asi.list_cameras, what="listing ZWO cameras"))
            if self.cfg.model and self.cfg.model in names:
                index = names.index(self.cfg.model)
        if n <= index:
            raise DeviceDisconnected(f"no ZWO camera at index {index} ({n} found): plug it in (USB 2 or "
                                     "3, a powered hub for long cables) and check that no other "
                                     "program holds it")
        cam = await self._call(asi.Camera, index, what="opening the ZWO camera")
        props = await self._call(cam.get_camera_property, what="reading camera properties")
        self._cam = cam
        await self._call(cam.set_image_type, asi.ASI_IMG_RAW16, what="setting RAW16")
        self.width, self.height = int(props["MaxWidth"]), int(props["MaxHeight"])
        self.pixel_um = float(props.get("PixelSize", self.pixel_um))
        self.bit_depth = int(props.get("BitDepth", self.bit_depth))
        self.model = str(props.get("Name", "ZWO camera"))
        bins = [int(b) for b in props.get("SupportedBins", [1]) if int(b) > 0] or [1]
        if self.binning not in bins:
            raise DeviceError(f"binning {self.binning} is not offered by the {self.model}: one of "
                              f"{', '.join(map(str, bins))}")
        for names_, value, label in ((("ASI_OFFSET", "ASI_BRIGHTNESS"), self.offset, "offset"),
                                     (("ASI_BANDWIDTHOVERLOAD",), self.bandwidth, "USB bandwidth"),
                                     (("ASI_HIGH_SPEED_MODE",), int(self.high_speed), "high-speed mode")):
            ctl = self._ctl(*names_)
            if ctl is not None:
                await self._call(cam.set_control_value, ctl, int(value), what=f"setting {label}")
        if self.binning != 1:
            await self._call(lambda: cam.set_roi(bins=self.binning), what="setting binning")
        self._streaming = None
        self._connected = True
        return DeviceInfo(self.kind, self.driver, self.model,
                          {"width": self.width, "height": self.height, "pixel_um": self.pixel_um,
                           "bit_depth": self.bit_depth, "st4": bool(props.get("ST4Port", False)),
                           "bins": bins, "binning": self.binning, "offset": self.offset,
                           "bandwidth": self.bandwidth, "high_speed": self.high_speed,
                           "video": self.video, "usb3": bool(props.get("IsUSB3Camera", False)),
                           "temperature_c": await self._temperature()})

    async def _close_quietly(self) -> None:
        cam, self._cam, self._streaming = self._cam, None, None
        self._connected = False
        if cam is not None:
            try:
                if hasattr(cam, "stop_video_capture"):
                    await blocking(cam.stop_video_capture, timeout=CALL_TIMEOUT_S, what="stopping video")
            except Exception:  # noqa: BLE001 - a vanished camera cannot stop
                pass
            try:
                await blocking(cam.close, timeout=CALL_TIMEOUT_S, what="closing the ZWO camera")
            except Exception:  # noqa: BLE001
                pass

    async def disconnect(self) -> None:
        async with self._lock:
            await self._close_quietly()

    def _need(self) -> Any:
        if self._cam is None:
            raise DeviceDisconnected("ZWO camera is not connected")
        return self._cam

    # ----- settings --------------------------------------------------------------------------
    async def _temperature(self) -> float | None:
        ctl = self._ctl("ASI_TEMPERATURE")
        if ctl is None or self._cam is None:
            return None
        try:
            value = await self._call(self._cam.get_control_value, ctl, what="reading the temperature")
        except DeviceError:
            return None
        raw = value[0] if isinstance(value, (tuple, list)) else value
        return float(raw) / 10.0          # the SDK gives tenths of a degree

    async def temperature(self) -> float | None:
        """Sensor temperature in °C (None when the camera has no sensor for it)."""
        async with self._lock:
            self._need()
            return await self._temperature()

    async def set_offset(self, offset: int) -> None:
        await self._set_control(("ASI_OFFSET", "ASI_BRIGHTNESS"), offset, "offset")
        self.offset = offset

    async def set_bandwidth(self, percent: int) -> None:
        """USB bandwidth share (40–100 %); lower it when frames drop on a busy bus."""
        if not 40 <= percent <= 100:
            raise DeviceError(f"USB bandwidth {percent} %: between 40 and 100")
        await self._set_control(("ASI_BANDWIDTHOVERLOAD",), percent, "USB bandwidth")
        self.bandwidth = percent

    async def set_high_speed(self, on: bool) -> None:
        await self._set_control(("ASI_HIGH_SPEED_MODE",), int(on), "high-speed mode")
        self.high_speed = on

    async def set_binning(self, binning: int) -> None:
        async with self._lock:
            cam = self._need()
            await self._call(lambda: cam.set_roi(bins=binning), what=f"setting binning {binning}")
            self.binning, self._streaming = binning, None

    async def _set_control(self, names: tuple[str, ...], value: int, label: str) -> None:
        async with self._lock:
            cam = self._need()
            ctl = self._ctl(*names)
            if ctl is None:
                raise DeviceError(f"this ZWO camera has no {label} control")
            await self._call(cam.set_control_value, ctl, int(value), what=f"setting {label}")
            self._streaming = None

    # ----- exposures --------------------------------------------------------------------------
    def _apply(self, seconds: float, gain: int, roi: tuple[int, int, int, int] | None) -> None:
        cam, asi = self._cam, self._asi
        cam.set_control_value(asi.ASI_GAIN, int(gain))
        cam.set_control_value(asi.ASI_EXPOSURE, int(seconds * 1e6))
        b = self.binning
        if roi is not None:
            x, y, w, h = roi
            if b != 1:
                cam.set_roi(start_x=x // b, start_y=y // b, width=w // b // 8 * 8, height=h // b // 2 * 2, bins=b)
            else:
                cam.set_roi(start_x=x, start_y=y, width=w, height=h)
        elif b != 1:
            cam.set_roi(bins=b)
        else:
            cam.set_roi()

    def _snapshot(self, seconds: float, gain: int, roi: tuple[int, int, int, int] | None) -> np.ndarray:
        self._apply(seconds, gain, roi)
        return np.asarray(self._cam.capture(), dtype=np.uint16)

    def _video_frame(self, seconds: float, gain: int, roi: tuple[int, int, int, int] | None) -> np.ndarray:
        cam = self._cam
        key = (seconds, gain, roi, self.binning)
        if self._streaming != key:
            if self._streaming is not None:
                cam.stop_video_capture()
            self._apply(seconds, gain, roi)
            cam.start_video_capture()
            self._streaming = key
            fresh_needed = 2          # the first frame after a change may mix the old settings
        else:
            fresh_needed = 1
        # Frames already waiting were exposed before this request: drop them.
        for _ in range(STALE_MAX):
            try:
                cam.capture_video_frame(timeout=1)
            except Exception as exc:  # noqa: BLE001 - nothing waiting: the SDK times out
                if self._lost(exc):
                    raise
                break
            self.stats["stale_dropped"] += 1
        wait_ms = int(seconds * 2000 + 500)
        data = None
        for _ in range(fresh_needed):
            data = cam.capture_video_frame(timeout=wait_ms)
        return np.asarray(data, dtype=np.uint16)

    async def expose(self, seconds: float, gain: int | None = None,
                     roi: tuple[int, int, int, int] | None = None) -> Frame:
        """One frame (video mode: a fresh frame from the stream). ``roi`` is (x, y, w, h)
        in unbinned pixels. A dropped frame or timeout is retried; a camera that fell off
        the USB is reopened once. Raises DeviceDisconnected, DeviceTimeout, DeviceError."""
        gain = self.cfg.gain if gain is None else gain
        if roi is not None:
            x, y, w, h = roi
            if not (0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= self.width and y + h <= self.height):
                raise DeviceError(f"region {roi} is outside the {self.width}x{self.height} sensor")
        t0 = self.clock.now()
        async with self._lock:
            data = await self._expose_retrying(seconds, gain, roi)
        shift = 16 - self.bit_depth  # RAW16 carries the ADC value in the high bits
        if shift > 0:
            data = data >> shift
        return Frame(data=data, exposure=seconds, timestamp=t0, gain=gain, bit_depth=self.bit_depth,
                     white_level=float(2 ** self.bit_depth - 1), pixel_um=self.pixel_um * self.binning,
                     camera=self.model, meta={"roi": roi, "binning": self.binning})

    async def _expose_retrying(self, seconds: float, gain: int,
                               roi: tuple[int, int, int, int] | None) -> np.ndarray:
        grab = self._video_frame if self.video else self._snapshot
        reopened = False
        last: DeviceError | None = None
        for _ in range(RETRIES + 1):
            try:
                if self._cam is None or not self._connected:
                    if reopened:
                        break
                    reopened = True
                    self.stats["reconnects"] += 1
                    await self._open()
                return await self._call(grab, seconds, gain, roi, timeout=2 * seconds + CALL_TIMEOUT_S,
                                        what="ZWO exposure")
            except DeviceDisconnected as exc:
                last = exc
                self._connected = False
                await self._close_quietly()
            except (DeviceTimeout, DeviceError) as exc:
                if isinstance(exc, VendorLibraryMissing):
                    raise
                last = exc
                self._streaming = None     # restart the stream on the next try
            self.stats["retries"] += 1
        assert last is not None
        raise last

    def st4_port(self) -> "ZwoSt4Port":
        return ZwoSt4Port(self)


class ZwoSt4Port(GuidePort):
    """Guide pulses through the camera's ST4 socket (the cable to the mount's GUIDE port)."""

    driver = "zwo"

    def __init__(self, camera: ZwoGuideCamera) -> None:
        self.camera = camera

    async def connect(self) -> DeviceInfo:
        if not self.camera.connected:
            raise DeviceDisconnected("the ZWO camera carrying the ST4 port is not connected")
        return DeviceInfo(self.kind, self.driver, "ST4 via ZWO camera", {})

    @property
    def connected(self) -> bool:
        return self.camera.connected

    async def pulse(self, direction: Direction, ms: int) -> None:
        """Relay on for ``ms`` (timed on the camera's clock), then off, even when cancelled."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown guide direction {direction!r}; one of N, S, E, W")
        if ms < 0:
            raise ValueError("pulse duration must not be negative")
        cam = self.camera._need()
        code = GUIDE_DIRECTIONS[direction]
        await self.camera._call(cam.pulse_guide_on, code, what="ST4 pulse on")
        try:
            await self.camera.clock.sleep(ms / 1000.0)
        finally:
            await asyncio.shield(self.camera._call(cam.pulse_guide_off, code, what="ST4 pulse off"))
