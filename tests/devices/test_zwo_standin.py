"""The ZWO driver at its boundary, with a stand-in for ``zwoasi`` that behaves like the SDK
on an ASI120MM Mini: video frames queue up in the SDK's buffer, the first frame after a
change of settings is mixed, frames drop, the camera falls off the USB and comes back."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import ConfigError, GuideCameraCfg, load_config
from fieldtui.devices.base import DeviceDisconnected, DeviceError
from fieldtui.devices.zwo import ZwoGuideCamera

STALE, MIXED = 7, 9           # pixel values (before the 4-bit RAW16 shift) of old frames


class ZWO_Error(Exception):
    pass


class ZWO_IOError(ZWO_Error):
    pass


class FakeAsi:
    ASI_GAIN, ASI_EXPOSURE, ASI_BRIGHTNESS, ASI_BANDWIDTHOVERLOAD = 0, 1, 5, 6
    ASI_TEMPERATURE, ASI_HIGH_SPEED_MODE, ASI_IMG_RAW16 = 8, 14, 2
    ZWO_Error, ZWO_IOError = ZWO_Error, ZWO_IOError

    def __init__(self) -> None:
        self.inited: list[str] = []
        self.present = True
        self.opened: list["FakeCam"] = []
        self.drop_next = 0
        self.stale_on_start = 3

    def init(self, lib: str) -> None:
        self.inited.append(lib)

    def get_num_cameras(self) -> int:
        return 1 if self.present else 0

    def list_cameras(self) -> list[str]:
        return ["ZWO ASI120MM Mini"] if self.present else []

    def Camera(self, index: int) -> "FakeCam":
        if not self.present or index != 0:
            raise ZWO_IOError("Invalid index")
        cam = FakeCam(self)
        self.opened.append(cam)
        return cam


class FakeCam:
    def __init__(self, asi: FakeAsi) -> None:
        self.asi = asi
        self.removed = False
        self.calls: list[tuple] = []
        self.controls: dict[int, int] = {}
        self.queue: list[int] = []
        self.streaming = False
        self.mixed_pending = False
        self.pulses: list[tuple[str, int]] = []

    def _alive(self) -> None:
        if self.removed or not self.asi.present:
            raise ZWO_IOError("Camera removed")

    def get_camera_property(self) -> dict:
        return {"Name": "ZWO ASI120MM Mini", "MaxWidth": 1280, "MaxHeight": 960, "PixelSize": 3.75,
                "BitDepth": 12, "ST4Port": True, "SupportedBins": [1, 2, 0], "IsUSB3Camera": False}

    def set_image_type(self, t: int) -> None:
        self.calls.append(("type", t))

    def set_control_value(self, k: int, v: int) -> None:
        self._alive()
        self.controls[k] = v
        self.calls.append(("ctl", k, v))

    def get_control_value(self, k: int) -> tuple[int, bool]:
        self._alive()
        return (215, False) if k == FakeAsi.ASI_TEMPERATURE else (self.controls.get(k, 0), False)

    def set_roi(self, **kw) -> None:
        self._alive()
        self.calls.append(("roi", kw))

    def start_video_capture(self) -> None:
        self._alive()
        self.streaming = True
        self.queue = [STALE] * self.asi.stale_on_start    # frames from before, still buffered
        self.mixed_pending = True
        self.calls.append(("start",))

    def stop_video_capture(self) -> None:
        self.streaming = False
        self.calls.append(("stop",))

    def capture_video_frame(self, timeout: int | None = None) -> np.ndarray:
        self._alive()
        assert self.streaming
        if self.queue:
            v = self.queue.pop(0)
        elif timeout is not None and timeout <= 1:
            raise ZWO_IOError("Timeout")
        elif self.asi.drop_next > 0:
            self.asi.drop_next -= 1
            raise ZWO_IOError("Timeout")
        elif self.mixed_pending:
            self.mixed_pending, v = False, MIXED
        else:
            v = self.controls[FakeAsi.ASI_GAIN]   # a fresh frame shows the gain it was taken at
        return np.full((96, 128), v << 4, dtype=np.uint16)

    def capture(self) -> np.ndarray:
        self._alive()
        return np.full((96, 128), self.controls[FakeAsi.ASI_GAIN] << 4, dtype=np.uint16)

    def pulse_guide_on(self, d: int) -> None:
        self._alive()
        self.pulses.append(("on", d))

    def pulse_guide_off(self, d: int) -> None:
        self.pulses.append(("off", d))

    def close(self) -> None:
        self.calls.append(("close",))


@pytest.fixture
def asi(monkeypatch, tmp_path):
    fake = FakeAsi()
    monkeypatch.setitem(sys.modules, "zwoasi", fake)
    lib = tmp_path / "libASICamera2.so"
    lib.write_bytes(b"")
    monkeypatch.setenv("ZWO_ASI_LIB", str(lib))
    fake.lib = str(lib)
    return fake


async def test_sdk_path_from_config_else_environment(asi, tmp_path):
    mine = tmp_path / "my" / "libASICamera2.so"
    mine.parent.mkdir()
    mine.write_bytes(b"")
    await ZwoGuideCamera(GuideCameraCfg(driver="zwo", sdk_library=str(mine))).connect()
    await ZwoGuideCamera(GuideCameraCfg(driver="zwo")).connect()
    assert asi.inited == [str(mine), asi.lib]


async def test_connect_applies_offset_bandwidth_high_speed_and_reads_temperature(asi):
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo", offset=12, bandwidth=55, high_speed=True))
    info = await cam.connect()
    c = asi.opened[-1]
    assert ("ctl", 5, 12) in c.calls and ("ctl", 6, 55) in c.calls and ("ctl", 14, 1) in c.calls
    assert info.details["temperature_c"] == 21.5 and info.details["bins"] == [1, 2]
    assert await cam.temperature() == 21.5
    await cam.set_bandwidth(80)
    assert c.controls[6] == 80
    with pytest.raises(DeviceError, match="between 40 and 100"):
        await cam.set_bandwidth(20)


async def test_video_mode_never_returns_a_stale_or_mixed_frame(asi):
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"))
    await cam.connect()
    for gain in (50, 50, 80, 80, 80):
        asi.opened[-1].queue += [STALE, STALE]     # frames pile up between requests
        frame = await cam.expose(0.01, gain=gain)
        assert int(frame.data[0, 0]) == gain          # taken at this gain, after the request
    c = asi.opened[-1]
    assert [k for k in c.calls if k[0] in ("start", "stop")] == [("start",), ("stop",), ("start",)]
    assert cam.stats["stale_dropped"] == 3 + 2 + 3 + 2 + 2   # buffered at each (re)start, then piled up


async def test_roi_and_binning(asi):
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo", binning=2, video=False))
    await cam.connect()
    frame = await cam.expose(0.01, gain=30, roi=(100, 50, 400, 300))
    rois = [k[1] for k in asi.opened[-1].calls if k[0] == "roi"]
    assert rois[-1] == {"start_x": 50, "start_y": 25, "width": 200, "height": 150, "bins": 2}
    assert frame.pixel_um == 7.5 and frame.meta["binning"] == 2
    with pytest.raises(DeviceError, match="outside the 1280x960 sensor"):
        await cam.expose(0.01, roi=(1200, 0, 200, 100))
    bad = ZwoGuideCamera(GuideCameraCfg(driver="zwo", binning=3))
    with pytest.raises(DeviceError, match="binning 3 is not offered.*1, 2"):
        await bad.connect()


async def test_a_dropped_frame_is_retried(asi):
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"))
    await cam.connect()
    await cam.expose(0.01, gain=40)
    asi.drop_next = 1
    frame = await cam.expose(0.01, gain=40)
    assert int(frame.data[0, 0]) == 40 and cam.stats["retries"] == 1


async def test_usb_reset_is_reconnected_without_restarting(asi):
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"))
    await cam.connect()
    await cam.expose(0.01, gain=40)
    asi.opened[-1].removed = True                  # the USB reset: this handle is dead, the camera is back
    frame = await cam.expose(0.01, gain=40)
    assert int(frame.data[0, 0]) == 40
    assert cam.stats["reconnects"] == 1 and len(asi.opened) == 2 and cam.connected


async def test_a_camera_that_stays_away_is_a_clear_error_in_bounded_time(asi):
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"))
    await cam.connect()
    asi.present = False
    t = time.monotonic()
    with pytest.raises(DeviceDisconnected, match="plug it in"):
        await cam.expose(0.01, gain=40)
    assert time.monotonic() - t < 5 and not cam.connected
    asi.present = True                              # plugged back: the next frame works
    assert int((await cam.expose(0.01, gain=40)).data[0, 0]) == 40


async def test_st4_pulse_is_timed_on_the_clock_and_always_released(asi):
    clock = VirtualClock(1_800_000_000.0)
    cam = ZwoGuideCamera(GuideCameraCfg(driver="zwo"), clock)
    await cam.connect()
    port = cam.st4_port()
    t = clock.now()
    await port.pulse("E", 1500)
    assert clock.now() - t == pytest.approx(1.5)
    assert asi.opened[-1].pulses == [("on", 2), ("off", 2)]
    with pytest.raises(ValueError):
        await port.pulse("Q", 10)   # type: ignore[arg-type]


def test_zwo_config_is_validated():
    with pytest.raises(ConfigError, match="guide_camera.bandwidth"):
        load_config(overrides={"guide_camera": {"bandwidth": 120}})
    with pytest.raises(ConfigError, match="guide_camera.binning"):
        load_config(overrides={"guide_camera": {"binning": 5}})
