"""The gphoto2 camera driver: against libgphoto2's own virtual camera (detection,
configuration, capture, download), and at its boundary with a stand-in behaving like a
Canon or Nikon DSLR on the binding (bulb timing, Canon release widgets, RAW/JPEG,
failures)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from fieldtui.clock import VirtualClock
from fieldtui.config import MainCameraCfg
from fieldtui.devices.base import DeviceDisconnected, DeviceError, VendorLibraryMissing
from fieldtui.devices.dng import write_dng
from fieldtui.devices.gphoto import GphotoCamera, file_kind, is_raw_format
from fieldtui.imaging.io import read_frame

from .gphoto_standin import StandIn, jpeg_bytes

T0 = 1_800_000_000.0


def make_raw(path: Path) -> np.ndarray:
    data = np.random.default_rng(3).integers(2048, 4000, (64, 96)).astype(np.uint16)
    write_dng(path, data, bayer="RGGB", black_level=2048, white_level=15000, model="Canon EOS 550D",
              exposure_s=1.0, iso=800, when="2026:11:29 01:00:00")
    return data


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----- libgphoto2's virtual camera ------------------------------------------------------

@pytest.fixture
def vcam(tmp_path, monkeypatch):
    gp = pytest.importorskip("gphoto2")
    src = tmp_path / "vcam"
    src.mkdir()
    raw = src / "IMG_0001.jpg"            # the virtual camera serves *.jpg files as they are
    make_raw(raw)
    monkeypatch.setenv("VCAMERADIR", str(src))
    monkeypatch.setenv("IOLIBS", str(Path(gp.__file__).parent / "libgphoto2" / "vusb"))
    return raw


async def test_virtual_camera_detected_and_configured(vcam):
    cam = GphotoCamera(MainCameraCfg(), require_raw=False)
    info = await cam.connect()
    assert info.driver == "gphoto2" and info.model == "Nikon DSC D750"   # what the virtual camera says
    assert info.details["capture_target"] in ("Internal RAM", "Memory card")
    s = await cam.settings()
    assert s["capture_target"]["choices"] == ["Internal RAM", "Memory card"]
    assert "0.0100s" in s["shutter_speed"]["choices"]
    for target in ("Memory card", "Internal RAM"):
        await cam.set_capture_target(target)
        assert (await cam.settings())["capture_target"]["value"] == target
    with pytest.raises(DeviceError, match="'Cloud' is not offered; one of Internal RAM, Memory card"):
        await cam.set_capture_target("Cloud")
    with pytest.raises(DeviceError, match="no ISO setting"):
        await cam.set_iso(800)
    await cam.disconnect()


async def test_virtual_camera_captures_and_downloads_atomically(vcam, tmp_path):
    cam = GphotoCamera(MainCameraCfg(), require_raw=False)
    await cam.connect()
    out = tmp_path / "night" / "M33" / "light"
    frame = await cam.expose(0.01, path=out / "light_0001.dng")
    assert frame.path == out / "light_0001.dng"
    assert (out / "light_0001.dng").read_bytes() == vcam.read_bytes()      # the camera's file, whole
    assert leftovers(out) == ["light_0001.dng"]                           # no .part left behind
    source = vcam.with_name("source.dng")
    source.write_bytes(vcam.read_bytes())
    np.testing.assert_array_equal(frame.data, read_frame(source).data)
    assert frame.exposure == 0.01 and frame.kind == "light"
    # Without a path the file is read and nothing is kept.
    frame2 = await cam.expose(0.01)
    assert frame2.path is None and frame2.data.shape == frame.data.shape
    await cam.disconnect()


async def test_virtual_camera_refused_for_a_sequence_when_it_does_not_say_raw(vcam, tmp_path):
    cam = GphotoCamera(MainCameraCfg())          # RAW required, as for a sequence
    await cam.connect()
    with pytest.raises(DeviceError, match="does not say its image format.*needs RAW"):
        await cam.expose(0.01, path=tmp_path / "out" / "light_0001.dng")
    assert leftovers(tmp_path / "out") == []
    await cam.disconnect()


async def test_virtual_camera_cannot_bulb_and_keeps_nothing(vcam, tmp_path):
    cam = GphotoCamera(MainCameraCfg(), require_raw=False)
    await cam.connect()
    with pytest.raises(DeviceError):
        await cam.expose(45.0, path=tmp_path / "out" / "light_0001.dng")
    assert leftovers(tmp_path / "out") == []


# ----- stand-in: Canon / Nikon behaviour, bulb, failures --------------------------------

@pytest.fixture
def raw_bytes(tmp_path):
    (tmp_path / "src").mkdir()
    p = tmp_path / "src" / "src.dng"
    make_raw(p)
    return p.read_bytes()


@pytest.fixture
def out(tmp_path):
    return tmp_path / "out"


def camera(standin, clock, **kw):
    return GphotoCamera(MainCameraCfg(model=standin.model), clock, gp=standin, **kw)


async def test_canon_bulb_is_timed_by_the_app_with_the_release_widgets(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes, canon=True)
    cam = camera(gp, clock)
    await cam.connect()
    frame = await cam.expose(300.0, iso=1600, path=out / "light_0001.dng")
    presses = gp.presses()
    assert [v for _, v in presses] == ["Press Full", "Release Full"]
    assert presses[1][0] - presses[0][0] == pytest.approx(300.0, abs=1e-6)   # the app's 300 s
    assert gp.widgets["shutterspeed"].value == "bulb" and gp.widgets["iso"].value == "1600"
    assert frame.path == out / "light_0001.cr2"                          # the camera's own kind
    assert frame.path.read_bytes() == raw_bytes and frame.exposure == 300.0


async def test_nikon_bulb_uses_the_bulb_toggle_and_short_exposures_the_shutter(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes, canon=False, model="Nikon D5300")
    cam = camera(gp, clock)
    await cam.connect()
    await cam.expose(120.0, path=out / "a.dng")
    assert [v for _, v in gp.presses()] == [1, 0]
    assert gp.presses()[1][0] - gp.presses()[0][0] == pytest.approx(120.0)
    await cam.expose(15.0, path=out / "b.dng")
    assert gp.log[-1][1:] == ("capture", "15")                                # the camera's own 15 s
    assert sorted(p.name for p in out.glob("*.nef")) == ["a.nef", "b.nef"]


async def test_jpeg_format_is_refused_before_the_shutter_opens(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    gp.widgets["imageformat"].value = "Large Fine JPEG"
    cam = camera(gp, clock)
    info = await cam.connect()
    assert info.details["raw"] is False
    with pytest.raises(DeviceError, match="set to 'Large Fine JPEG': set the image format to RAW"):
        await cam.expose(60.0, path=out / "light_0001.dng")
    assert gp.presses() == [] and leftovers(out) == []
    await cam.set_image_format("RAW")
    await cam.expose(60.0, path=out / "light_0001.dng")
    assert is_raw_format("RAW + Large Fine JPEG") and is_raw_format("NEF (Raw)") and not is_raw_format("JPEG Fine")


async def test_a_jpeg_file_from_a_raw_camera_is_not_kept(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes, sends_jpeg=True)
    cam = camera(gp, clock)
    await cam.connect()
    with pytest.raises(DeviceError, match="sent a JPEG.*not kept"):
        await cam.expose(5.0, path=out / "light_0001.dng")
    assert leftovers(out) == []


async def test_camera_switched_off_mid_bulb_keeps_nothing_and_releases(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    cam = camera(gp, clock)
    await cam.connect()
    gp.fail["wait_for_event"] = -7          # the file never comes: I/O error, camera off
    with pytest.raises(DeviceDisconnected, match="went away.*battery"):
        await cam.expose(90.0, path=out / "light_0001.dng")
    assert leftovers(out) == [] and not cam.connected
    assert [v for _, v in gp.presses()] == ["Press Full", "Release Full"]
    # Reconnected, the next frame works.
    await cam.connect()
    await cam.expose(90.0, path=out / "light_0002.dng")
    assert leftovers(out) == ["light_0002.cr2"]


async def test_download_failing_mid_transfer_keeps_nothing(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    cam = camera(gp, clock)
    await cam.connect()
    gp.fail["file_get"] = -7
    with pytest.raises(DeviceDisconnected):
        await cam.expose(1.0, path=out / "light_0001.dng")
    assert leftovers(out) == []


async def test_cancelled_bulb_still_releases_the_shutter(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    cam = camera(gp, clock)
    await cam.connect()
    task = asyncio.ensure_future(cam.expose(600.0, path=out / "light_0001.dng"))
    await clock.sleep(100.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert [v for _, v in gp.presses()] == ["Press Full", "Release Full"]
    assert leftovers(out) == []


async def test_busy_usb_no_camera_and_no_binding_are_clear_messages(raw_bytes, monkeypatch):
    import sys
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    gp.fail["init"] = -53
    with pytest.raises(DeviceError, match="USB port busy.*gvfs-gphoto2-volume-monitor"):
        await camera(gp, clock).connect()
    gp.cameras = 0
    with pytest.raises(DeviceDisconnected, match="no camera found over USB; plug the camera in"):
        await camera(gp, clock).connect()
    monkeypatch.setitem(sys.modules, "gphoto2", None)
    with pytest.raises(VendorLibraryMissing, match=r"pip install 'fieldtui\[dslr\]'"):
        await GphotoCamera(MainCameraCfg(), clock).connect()


async def test_iso_choices_and_live_view(raw_bytes):
    pytest.importorskip("PIL")
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    cam = camera(gp, clock)
    await cam.connect()
    with pytest.raises(DeviceError, match="ISO 250 is not offered; this camera has 100, 200"):
        await cam.set_iso(250)
    await cam.set_iso(400)
    assert gp.widgets["iso"].value == "400"
    frame = await cam.live_view()
    assert frame.kind == "live" and frame.data.shape == (48, 64)
    assert 0 < frame.data.max() <= 255


def test_file_kind_from_magic_bytes(raw_bytes):
    assert file_kind(raw_bytes) == "raw"
    assert file_kind(b"\0\0\0\x18ftypcrx \0\0") == "raw"          # CR3
    assert file_kind(jpeg_bytes()) == "jpeg"
    assert file_kind(b"") == "unknown" and file_kind(b"hello world") == "unknown"


async def test_config_builds_the_gphoto2_camera(data_root):
    from fieldtui.config import load_config
    from fieldtui.devices.factory import build_rig
    cfg = load_config(overrides={"storage": {"data_root": str(data_root)}, "main_camera": {"driver": "gphoto2"}})
    rig = build_rig(cfg, VirtualClock(T0))
    assert isinstance(rig.devices["main_camera"], GphotoCamera)
    assert rig.devices["main_camera"].require_raw


async def test_a_busy_camera_is_asked_again_and_an_unreadable_file_not_kept(raw_bytes, out):
    clock = VirtualClock(T0)
    gp = StandIn(clock, raw_bytes)
    cam = camera(gp, clock)
    await cam.connect()
    gp.fail["capture"] = -110                  # still writing the last frame
    t = clock.now()
    frame = await cam.expose(1.0, path=out / "light_0001.dng")
    assert frame.path.exists() and clock.now() - t >= 1.0     # waited, asked again
    gp.raw = b"II*\0" + b"\0" * 100           # a raw header and nothing LibRaw can read
    with pytest.raises(DeviceError, match="cannot be read.*nothing is kept"):
        await cam.expose(1.0, path=out / "light_0002.dng")
    assert leftovers(out) == ["light_0001.cr2"]
