"""The ZWO driver at its boundary: without the SDK it says what to install;
with a stand-in for the zwoasi binding it drives the calls a real camera gets."""

import sys
import types

import numpy as np
import pytest

from fieldtui.config import GuideCameraCfg
from fieldtui.devices.base import VendorLibraryMissing
from fieldtui.devices.zwo import ZwoGuideCamera


async def test_missing_binding_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "zwoasi", None)
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"))
    with pytest.raises(VendorLibraryMissing, match=r"pip install 'fieldtui\[zwo\]'"):
        await cam.connect()


async def test_missing_sdk_library_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "zwoasi", types.SimpleNamespace(init=lambda lib: None))
    monkeypatch.delenv("ZWO_ASI_LIB", raising=False)
    monkeypatch.setattr("fieldtui.devices.zwo.SDK_PLACES", ())
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"))
    with pytest.raises(VendorLibraryMissing, match="libASICamera2.so.*sdk_library or ZWO_ASI_LIB"):
        await cam.connect()


class FakeCamera:
    def __init__(self, index):
        self.calls = []

    def get_camera_property(self):
        return {"Name": "ZWO ASI120MM Mini", "MaxWidth": 1280, "MaxHeight": 960, "PixelSize": 3.75,
                "BitDepth": 12, "ST4Port": True}

    def set_image_type(self, t):
        self.calls.append(("type", t))

    def set_control_value(self, k, v):
        self.calls.append((k, v))

    def set_roi(self, **kw):
        self.calls.append(("roi", kw))

    def capture(self):
        return np.full((960, 1280), 100 << 4, dtype=np.uint16)

    def pulse_guide_on(self, d):
        self.calls.append(("on", d))

    def pulse_guide_off(self, d):
        self.calls.append(("off", d))

    def close(self):
        pass


async def test_with_the_binding_frames_and_st4_pulses(monkeypatch, tmp_path):
    lib = tmp_path / "libASICamera2.so"
    lib.write_bytes(b"")
    fake = types.SimpleNamespace(init=lambda p: None, get_num_cameras=lambda: 1, Camera=FakeCamera,
                                 ASI_IMG_RAW16=2, ASI_GAIN=0, ASI_EXPOSURE=1)
    monkeypatch.setitem(sys.modules, "zwoasi", fake)
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo", sdk_library=str(lib), video=False))
    info = await cam.connect()
    assert info.model == "ZWO ASI120MM Mini" and info.details["st4"] is True
    frame = await cam.expose(1.5, gain=60)
    assert frame.data.shape == (960, 1280) and int(frame.data[0, 0]) == 100  # 12-bit value from RAW16
    assert (0, 60) in cam._cam.calls and (1, 1_500_000) in cam._cam.calls
    port = cam.st4_port()
    await port.pulse("W", 10)
    assert cam._cam.calls[-2:] == [("on", 3), ("off", 3)]
