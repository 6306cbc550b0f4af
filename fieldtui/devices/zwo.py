"""ZWO ASI guide cameras through the ``zwoasi`` binding of ZWO's SDK.

Both the binding and the SDK's shared library must be on the machine; when
either is missing, ``connect()`` fails with a message that says what to
install. Every SDK call runs in a thread with a timeout.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import GuideCameraCfg
from ..frame import Frame
from .base import (DeviceDisconnected, DeviceError, DeviceInfo, Direction, GuideCamera, GuidePort,
                   VendorLibraryMissing, blocking)

SDK_PLACES = ("/usr/local/lib/libASICamera2.so", "/usr/lib/libASICamera2.so",
              "/usr/lib/x86_64-linux-gnu/libASICamera2.so", "/usr/lib/aarch64-linux-gnu/libASICamera2.so")
GUIDE_DIRECTIONS = {"N": 0, "S": 1, "E": 2, "W": 3}  # ASI_GUIDE_NORTH, SOUTH, EAST, WEST
CALL_TIMEOUT_S = 5.0


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
    driver = "zwo"

    def __init__(self, cfg: GuideCameraCfg) -> None:
        self.cfg = cfg
        self.width, self.height, self.pixel_um, self.bit_depth = cfg.width, cfg.height, cfg.pixel_um, cfg.bit_depth
        self._cam: Any = None
        self._asi: Any = None
        self._connected = False
        self._lock = asyncio.Lock()

    async def connect(self) -> DeviceInfo:
        asi = load_binding(self.cfg.sdk_library)
        n = await blocking(asi.get_num_cameras, timeout=CALL_TIMEOUT_S, what="listing ZWO cameras")
        if n <= self.cfg.index:
            raise DeviceDisconnected(f"no ZWO camera at index {self.cfg.index} ({n} found): "
                                     "check the USB cable and that no other program holds the camera")
        cam = await blocking(asi.Camera, self.cfg.index, timeout=CALL_TIMEOUT_S, what="opening the ZWO camera")
        props = await blocking(cam.get_camera_property, timeout=CALL_TIMEOUT_S, what="reading camera properties")
        await blocking(cam.set_image_type, asi.ASI_IMG_RAW16, timeout=CALL_TIMEOUT_S, what="setting RAW16")
        self._asi, self._cam = asi, cam
        self.width, self.height = int(props["MaxWidth"]), int(props["MaxHeight"])
        self.pixel_um = float(props.get("PixelSize", self.pixel_um))
        self.bit_depth = int(props.get("BitDepth", self.bit_depth))
        self._connected = True
        return DeviceInfo(self.kind, self.driver, str(props.get("Name", "ZWO camera")),
                          {"width": self.width, "height": self.height, "pixel_um": self.pixel_um,
                           "bit_depth": self.bit_depth, "st4": bool(props.get("ST4Port", False))})

    async def disconnect(self) -> None:
        if self._cam is not None:
            try:
                await blocking(self._cam.close, timeout=CALL_TIMEOUT_S, what="closing the ZWO camera")
            finally:
                self._cam, self._connected = None, False

    def _need(self) -> Any:
        if self._cam is None:
            raise DeviceDisconnected("ZWO camera is not connected")
        return self._cam

    async def expose(self, seconds: float, gain: int | None = None,
                     roi: tuple[int, int, int, int] | None = None) -> Frame:
        cam, asi = self._need(), self._asi
        gain = self.cfg.gain if gain is None else gain

        def capture() -> np.ndarray:
            cam.set_control_value(asi.ASI_GAIN, int(gain))
            cam.set_control_value(asi.ASI_EXPOSURE, int(seconds * 1e6))
            if roi is not None:
                x, y, w, h = roi
                cam.set_roi(start_x=x, start_y=y, width=w, height=h)
            else:
                cam.set_roi()
            return np.asarray(cam.capture(), dtype=np.uint16)

        async with self._lock:
            try:
                data = await blocking(capture, timeout=seconds + CALL_TIMEOUT_S, what="ZWO exposure")
            except DeviceError:
                raise
            except Exception as exc:
                self._connected = False
                raise DeviceDisconnected(f"ZWO camera failed during an exposure: {exc}") from exc
        shift = 16 - self.bit_depth  # RAW16 carries the ADC value in the high bits
        if shift > 0:
            data = data >> shift
        return Frame(data=data, exposure=seconds, gain=gain, bit_depth=self.bit_depth,
                     white_level=float(2 ** self.bit_depth - 1), pixel_um=self.pixel_um,
                     camera="ZWO", meta={"roi": roi})

    def st4_port(self) -> "ZwoSt4Port":
        return ZwoSt4Port(self)


class ZwoSt4Port(GuidePort):
    """Guide pulses through the camera's ST4 socket."""

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
        cam = self.camera._need()
        code = GUIDE_DIRECTIONS[direction]
        await blocking(cam.pulse_guide_on, code, timeout=CALL_TIMEOUT_S, what="ST4 pulse on")
        try:
            await asyncio.sleep(ms / 1000.0)
        finally:
            await blocking(cam.pulse_guide_off, code, timeout=CALL_TIMEOUT_S, what="ST4 pulse off")
