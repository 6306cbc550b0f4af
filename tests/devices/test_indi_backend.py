"""The INDI backend against INDI's own simulators (``indi_simulator_telescope``,
``indi_simulator_ccd``, ``indi_simulator_focus`` from Debian's indi-bin): an
independent rig none of fieldtui's code draws.

The CCD simulator draws stars from the ``gsc`` catalogue program; Debian has none,
so ``tests/devices/indi_bin/gsc`` stands in (a fixed made-up star field in gsc's line
format). Every server runs on 127.0.0.1 in a private network namespace
(:mod:`tests.devices.netns`) and is stopped by the test."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fieldtui.clock import RealClock
from fieldtui.config import load_config
from fieldtui.devices.factory import build_rig
from fieldtui.imaging.stars import detect_stars

from .netns import INSIDE_ONLY, OUTSIDE_ONLY, require_indi, run_inside

SIMULATORS = ("indi_simulator_telescope", "indi_simulator_ccd", "indi_simulator_focus")
pytestmark = require_indi(*SIMULATORS)
GSC_DIR = Path(__file__).parent / "indi_bin"
TARGET = (350.0, 30.5)           # RA, Dec in degrees: a field of the stand-in catalogue
# The CCD simulator: 1280x1024 pixels of 5.2 µm behind the telescope simulator's 900 mm.
SCALE = 206.265 * 5.2 / 900.0    # arcsec per pixel


# A server killed and restarted mid-guiding (calibration, then guiding in real time, about
# a minute and a half): its own namespace, so that it runs beside the rest of the file.
RESTART = "test_guiding_resumes_after_the_server_is_killed_and_restarted"
# Minutes of real-time guiding on INDI's simulators: outside the default run.
SLOW = ("test_guide_engine_calibrates_and_guides_out_the_periodic_error",
        "test_capture_pauses_and_resumes_when_the_server_is_killed_and_restarted",
        "test_fieldtui_guide_goto_minutes_on_the_indi_rig_with_periodic_error")
RUN_SLOW = os.environ.get("FIELDTUI_SLOW_TESTS") == "1"


@OUTSIDE_ONLY
@pytest.mark.timeout(1500)
def test_indi_backend_runs_in_a_private_network_namespace():
    r = run_inside(__file__, "-k", " and ".join(f"not {t}" for t in (*SLOW, RESTART)), timeout=1400)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout


@OUTSIDE_ONLY
@pytest.mark.timeout(900)
def test_indi_server_restart_mid_guiding_runs_in_a_private_network_namespace():
    r = run_inside(f"{__file__}::{RESTART}", timeout=800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout


@OUTSIDE_ONLY
@pytest.mark.skipif(not RUN_SLOW, reason="real-time guiding on INDI's simulators takes minutes: "
                    "FIELDTUI_SLOW_TESTS=1 runs it")
@pytest.mark.timeout(1500)
def test_indi_guiding_runs_in_a_private_network_namespace():
    r = run_inside("-s", *(f"{__file__}::{t}" for t in SLOW), timeout=1400)
    print(r.stdout[-6000:])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert f"{len(SLOW)} passed" in r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IndiRig:
    def __init__(self, port: int, server: subprocess.Popen, cfg, rig) -> None:
        self.port, self.server, self.cfg, self.rig = port, server, cfg, rig
        self.d = rig.devices if rig is not None else {}

    def start_server(self) -> subprocess.Popen:
        env = {**os.environ, "PATH": f"{GSC_DIR}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.server = subprocess.Popen(["indiserver", "-p", str(self.port), *SIMULATORS], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.server

    def stop_server(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(5)

    def restart_server(self, down_s: float = 3.0) -> None:
        """Kill the server without a goodbye, wait ``down_s`` and start it again (every
        driver starts afresh: the telescope simulator parked at the pole)."""
        self.server.kill()
        self.server.wait(5)
        import time
        time.sleep(down_s)
        self.start_server()

    async def getprop(self, prop: str) -> str:
        p = await asyncio.create_subprocess_exec("indi_getprop", "-p", str(self.port), "-t", "3", "-1", prop,
                                                 stdout=asyncio.subprocess.PIPE)
        out, _ = await p.communicate()
        return out.decode().strip()


def indi_config(port: int, data_root: Path, **extra):
    overrides = {
        "storage": {"data_root": str(data_root)},
        "indi": {"port": port},
        "guide_camera": {"driver": "indi", "indi_device": "CCD Simulator", "width": 1280, "height": 1024,
                         "pixel_um": 5.2, "bit_depth": 16},
        "main_camera": {"driver": "indi", "indi_device": "CCD Simulator", "bayer": ""},
        "mount": {"driver": "indi", "indi_device": "Telescope Simulator"},
        "focuser": {"driver": "indi", "indi_device": "Focuser Simulator", "max_position": 100000},
        "guide_scope": {"focal_length_mm": 900.0},
    }
    for k, v in extra.items():
        overrides.setdefault(k, {}).update(v)
    return load_config(user=False, overrides=overrides)


@pytest.fixture
async def indi(data_root):
    port = free_port()
    r = IndiRig(port, None, None, None)  # type: ignore[arg-type]
    r.start_server()
    await asyncio.sleep(1.5)
    r.cfg = indi_config(port, data_root)
    r.rig = build_rig(r.cfg, RealClock())
    r.d = r.rig.devices
    try:
        yield r
    finally:
        await r.d["mount"].server.close()
        r.stop_server()


def star_shift(ref, img) -> np.ndarray:
    """(dx, dy) in pixels that carries the stars of ``ref`` onto those of ``img``
    (:func:`fieldtui.imaging.align.match_offset`, at least 8 stars matched)."""
    from fieldtui.imaging.align import match_offset
    found = match_offset(detect_stars(ref.data), detect_stars(img.data), tolerance=1.5)
    assert found is not None and found[2] >= 8, f"stars not matched: {found}"
    return np.array(found[:2])


@INSIDE_ONLY
async def test_the_server_is_reachable_from_loopback_only(indi):
    """indiserver listens on every interface of its namespace: the namespace has loopback only."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()
    assert [ln.split(":")[1].strip() for ln in links] == ["lo"]      # (netlink: this namespace's links)
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    assert f":{indi.port}" in listening    # indiserver's own socket is in this namespace


@INSIDE_ONLY
async def test_connects_and_reads_every_device(indi):
    d = indi.d
    for role in ("mount", "guide_camera", "main_camera", "focuser", "guide_port"):
        info = await d[role].connect()
        assert info.driver == "indi"
    server = d["mount"].server
    assert server.devices() == {"Telescope Simulator": True, "CCD Simulator": True, "Focuser Simulator": True}
    cam = d["guide_camera"]
    assert (cam.width, cam.height, cam.pixel_um, cam.bit_depth) == (1280, 1024, pytest.approx(5.2), 16)
    assert d["focuser"].max_position == 100000          # FOCUS_MAX of the simulator, not the config
    assert d["guide_port"].guide_rate == pytest.approx(0.5)
    # the server's own view of the CONNECTION switches, read by INDI's own client
    assert await indi.getprop("CCD Simulator.CONNECTION.CONNECT") == "On"
    assert await indi.getprop("Telescope Simulator.CONNECTION.CONNECT") == "On"


@INSIDE_ONLY
async def test_mount_slews_and_the_stars_follow(indi):
    mount, cam = indi.d["mount"], indi.d["guide_camera"]
    await mount.connect()
    await cam.connect()
    await mount.slew_to(*TARGET)
    st = await mount.state()
    assert st.ra_deg == pytest.approx(TARGET[0], abs=0.2)   # tracking: RA of date moves on
    assert st.dec_deg == pytest.approx(TARGET[1], abs=2 / 3600)
    assert st.tracking and not st.slewing
    ra_h = float(await indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.RA"))
    assert ra_h * 15 == pytest.approx(st.ra_deg, abs=0.01)
    ref = await cam.expose(1.0)
    assert ref.data.shape == (1024, 1280) and ref.data.dtype == np.uint16
    assert ref.path is None and ref.camera == "CCD Simulator"
    assert len(detect_stars(ref.data)) >= 20
    # 0.01° north. The simulator's FITS header records where it pointed (J2000): Dec moved
    # by what was asked, and the stars by that pointing change at the simulator's scale
    # (its J2000 RA also moves a little when only Dec is changed)
    await mount.slew_to(TARGET[0], TARGET[1] + 0.01)
    img = await cam.expose(1.0)
    assert img.meta["DEC"] - ref.meta["DEC"] == pytest.approx(0.01, abs=0.0005)
    d_ra = (img.meta["RA"] - ref.meta["RA"]) * math.cos(math.radians(img.meta["DEC"]))
    pointing_px = math.hypot(d_ra, img.meta["DEC"] - ref.meta["DEC"]) * 3600 / SCALE
    moved = star_shift(ref, img)
    assert math.hypot(*moved) == pytest.approx(pointing_px, rel=0.05)


@INSIDE_ONLY
async def test_focuser_moves(indi):
    foc = indi.d["focuser"]
    await foc.connect()
    assert await foc.move_to(40000) == 40000
    assert float(await indi.getprop("Focuser Simulator.ABS_FOCUS_POSITION.FOCUS_ABSOLUTE_POSITION")) == 40000
    assert await foc.move_by(-1234) == 40000 - 1234
    with pytest.raises(ValueError):
        await foc.move_to(100001)


@INSIDE_ONLY
@pytest.mark.parametrize("via", ["camera", "mount"])
async def test_guide_pulses_move_the_stars(indi, via, data_root):
    cfg = indi_config(indi.port, data_root, guide_port={"via": via})
    await indi.d["mount"].server.close()
    rig = build_rig(cfg, RealClock())
    mount, cam, port = rig.devices["mount"], rig.devices["guide_camera"], rig.devices["guide_port"]
    try:
        await mount.connect()
        await cam.connect()
        info = await port.connect()
        assert info.model.endswith("CCD Simulator" if via == "camera" else "Telescope Simulator")
        await mount.slew_to(*TARGET)
        expected = 0.5 * 15.041 * 2.0 / SCALE        # 2 s at half sidereal: 12.6 px
        shifts = {}
        for direction in "NSEW":
            before = await cam.expose(1.0)
            await port.pulse(direction, 2000)
            shifts[direction] = star_shift(before, await cam.expose(1.0))
        n, s, e, w = (shifts[k] for k in "NSEW")
        assert math.hypot(*n) == pytest.approx(expected, rel=0.25)
        # RA moves on the sky by cos(Dec) of the rate; a driver may or may not apply it
        assert expected * 0.6 < math.hypot(*e) < expected * 1.25
        # the sign depends on pier side and camera orientation: only opposite pulses undo each other
        assert math.hypot(*(n + s)) < 0.15 * expected and math.hypot(*(e + w)) < 0.15 * expected
        cos = float(np.dot(n, e) / (np.linalg.norm(n) * np.linalg.norm(e)))
        assert abs(cos) < math.sin(math.radians(15))   # the axes are perpendicular
    finally:
        await mount.server.close()


PE_MAX_ARCSEC, PE_PERIOD_S = 10.0, 60.0


async def guiding_rig(indi, data_root, **guiding):
    """A guide worker on the INDI simulators (ST4 port of the CCD simulator), the mount
    at the target, the CCD simulator's periodic error on; calibrating, then guiding."""
    from fieldtui.guiding.events import GuideState
    from fieldtui.guiding.settings import GuideSettings
    from fieldtui.service.guide_worker import GuideWorker

    cfg = indi_config(indi.port, data_root, guiding={"exposure_s": 1.0, **guiding})
    await indi.d["mount"].server.close()
    rig = build_rig(cfg, RealClock())
    d = rig.devices
    for role in ("mount", "guide_camera", "guide_port"):
        await d[role].connect()
    await d["mount"].server.set("CCD Simulator", "SIMULATOR_SETTINGS",
                                {"SIM_PEMAX": PE_MAX_ARCSEC, "SIM_PEPERIOD": PE_PERIOD_S})
    await d["mount"].slew_to(*TARGET)
    alerts = []
    worker = GuideWorker(d["guide_camera"], d["guide_port"], RealClock(), GuideSettings.from_config(cfg),
                         mount=d["mount"], pixel_scale=cfg.guide_scale, focal_mm=900.0,
                         on_event=lambda ev: alerts.append(ev) if type(ev).__name__ == "Alert" else None)
    await worker.calibrate(then_guide=True)
    for _ in range(600):
        if worker.state == GuideState.GUIDING:
            break
        await asyncio.sleep(0.5)
    assert worker.state == GuideState.GUIDING, [a.message for a in alerts]
    return rig, worker, alerts


@INSIDE_ONLY
async def test_guide_engine_calibrates_and_guides_out_the_periodic_error(indi, data_root):
    rig, worker, alerts = await guiding_rig(indi, data_root)
    try:
        cal = worker.engine.calibration
        # 0.5x sidereal on the simulator's 1.19″ pixels: 6.3 px/s on each axis
        assert cal.ra_rate == pytest.approx(0.5 * 15.041 / SCALE, rel=0.25)
        assert cal.dec_rate == pytest.approx(0.5 * 15.041 / SCALE, rel=0.25)
        worker.engine.stats.reset()
        await asyncio.sleep(2 * PE_PERIOD_S)
        st = worker.engine.stats.total()
    finally:
        await worker.stop()
        await rig.devices["mount"].server.close()
    # unguided, the worm's sine moves the stars by ±PE_MAX·cos(Dec) along RA: RMS of a sine
    unguided_rms = PE_MAX_ARCSEC * math.cos(math.radians(TARGET[1])) / math.sqrt(2)
    print(f"INDI guided RMS RA {st.rms_ra_arcsec:.2f}″ Dec {st.rms_dec_arcsec:.2f}″ total "
          f"{st.rms_total_arcsec:.2f}″ over {st.frames} frames; unguided periodic error RMS {unguided_rms:.2f}″")
    assert st.frames >= 40
    assert st.rms_ra_arcsec < 0.7 * unguided_rms   # measured: 0.54 (a 60 s worm period is fast)


@INSIDE_ONLY
async def test_guiding_resumes_after_the_server_is_killed_and_restarted(indi, data_root):
    rig, worker, alerts = await guiding_rig(indi, data_root, new_star_after_s=10.0, lost_alert_s=5.0)
    try:
        await asyncio.sleep(10)
        frames_before = worker.frames
        indi.server.kill()                       # the server dies without a goodbye
        indi.server.wait(5)
        await asyncio.sleep(4)
        assert worker.disconnects >= 1 or worker.camera_errors >= 1
        frames_down = worker.frames
        indi.start_server()
        # the restarted simulator mount starts parked at the pole: the backend sends it back
        from fieldtui.guiding.events import GuideState
        for _ in range(120):
            if worker.frames >= frames_down + 10 and worker.state == GuideState.GUIDING:
                break
            await asyncio.sleep(1)
        assert worker.frames >= frames_down + 10, [a.message for a in alerts]
        assert worker.state == GuideState.GUIDING, [a.message for a in alerts]
        assert frames_before > 0
        assert any("back" in a.message for a in alerts)
        server = rig.devices["mount"].server
        assert server.stats["recoveries"] == 1, server.notices
        assert any("slewed back" in t for _, t in server.notices), server.notices
        ra_h = float(await indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.RA"))
        dec = float(await indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.DEC"))
        assert dec == pytest.approx(TARGET[1], abs=60 / 3600)   # guiding moved it by its corrections only
        assert ra_h * 15 == pytest.approx(TARGET[0], abs=0.2)
    finally:
        await worker.stop()
        await rig.devices["mount"].server.close()


async def run_check(cfg):
    from fieldtui.service.check import run_checks
    from fieldtui.service.session import Session
    session = Session(cfg, RealClock())
    try:
        return await run_checks(session)
    finally:
        await session.stop()


@INSIDE_ONLY
async def test_check_lists_the_server_devices_and_a_missing_driver(indi, data_root):
    await indi.d["mount"].server.close()
    cfg = indi_config(indi.port, data_root)
    cfg.focuser.driver = "sim"
    res = await run_check(cfg)
    by = {c["name"]: c for c in res["checks"]}
    assert by["indi"]["ok"], by["indi"]
    # every device of the server, connected only when a configured role uses it
    for name in ("CCD Simulator (connected)", "Telescope Simulator (connected)", "Focuser Simulator (not connected)"):
        assert name in by["indi"]["detail"]
    # Both cameras are the one CCD simulator, tested at once: their exposures take turns (a
    # second CCD_EXPOSURE restarted the first and one of them waited for a frame until it timed out)
    for cam in ("guide_camera", "main_camera"):
        assert by[cam]["ok"] and "CCD Simulator, 1280x1024 px" in by[cam]["detail"], by[cam]
        assert "test frame" in by[cam]["detail"]
    assert by["mount"]["ok"] and by["guide_port"]["ok"], res["checks"]
    assert "Telescope Simulator" in by["mount"]["detail"]
    cfg.focuser.driver, cfg.focuser.indi_device = "indi", "Moonlite"    # no such driver runs on the server
    res = await run_check(cfg)
    by = {c["name"]: c for c in res["checks"]}
    assert not by["indi"]["ok"] and "focuser.indi_device 'Moonlite'" in by["indi"]["detail"]
    assert "indiserver" in by["indi"]["fix"]
    assert not by["focuser"]["ok"] and "Moonlite" in by["focuser"]["detail"]


@INSIDE_ONLY
async def test_check_reports_a_missing_server(data_root):
    """Nothing listens on the port (the test starts no server, so it needs no namespace)."""
    cfg = indi_config(free_port(), data_root, indi={"timeout_s": 2.0}, service={"connect_timeout_s": 3.0})
    res = await run_check(cfg)
    by = {c["name"]: c for c in res["checks"]}
    assert not by["indi"]["ok"] and "no INDI server answers at 127.0.0.1:" in by["indi"]["detail"]
    assert "indiserver" in by["indi"]["fix"]
    assert not by["mount"]["ok"]


async def wait_until(cond, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 4)):
        if cond():
            return
        await asyncio.sleep(0.25)
    pytest.fail(f"not within {seconds:g} s: {what}")


@INSIDE_ONLY
async def test_server_restart_reconnects_and_puts_mount_and_focuser_back(indi):
    """indiserver killed and started again: every device is connected again, the mount
    (restarted parked at the pole) slews back to where it pointed and the focuser to where it
    stood, read back with INDI's own client; the camera takes frames with the same stars."""
    d = indi.d
    mount, cam, foc = d["mount"], d["guide_camera"], d["focuser"]
    for dev in (mount, cam, foc, d["guide_port"]):
        await dev.connect()
    await mount.slew_to(*TARGET)
    await foc.move_to(41234)
    ref = await cam.expose(1.0)
    server = mount.server
    await wait_until(lambda: mount.last_pointing is not None and abs(mount.last_pointing[1] - TARGET[1]) < 1e-3,
                     5, "the mount's pointing noted")
    indi.restart_server()
    pointing = mount.last_pointing          # as the server last said before it died
    await wait_until(lambda: server.stats["recoveries"] == 1, 90, f"devices set up again: {server.notices}")
    levels = [lvl for lvl, _ in server.notices]
    assert levels == ["error", "info"], server.notices
    assert "went away" in server.notices[0][1] and "is back" in server.notices[1][1]
    assert "slewed back" in server.notices[1][1] and "focuser back at 41234" in server.notices[1][1]
    assert float(await indi.getprop("Focuser Simulator.ABS_FOCUS_POSITION.FOCUS_ABSOLUTE_POSITION")) == 41234
    ra_h = float(await indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.RA"))
    dec = float(await indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.DEC"))
    # within the 5″ it aims for (a goto of the simulator lands 0.003 h east in RA: corrected)
    cos = math.cos(math.radians(dec))
    assert ((ra_h - pointing[0]) * 15 * cos, dec) == (pytest.approx(0, abs=5 / 3600),
                                                       pytest.approx(pointing[1], abs=5 / 3600))
    assert await indi.getprop("Telescope Simulator.TELESCOPE_TRACK_STATE.TRACK_ON") == "On"
    assert await indi.getprop("Telescope Simulator.TELESCOPE_PARK.PARK") == "Off"
    img = await cam.expose(1.0)      # the same field: the stars within a few pixels
    shift = math.hypot(*star_shift(ref, img))
    print(f"after the restart: RA {(ra_h - pointing[0]) * 15 * 3600:+.1f}″, Dec {(dec - pointing[1]) * 3600:+.1f}″ "
          f"from where it pointed; stars moved {shift:.1f} px")
    assert shift < 5


def write_config(path: Path, port: int, data_root: Path, guiding: dict) -> Path:
    """The INDI rig of :func:`indi_config` as a TOML file for the command line."""
    tables = {
        "storage": {"data_root": str(data_root)},
        "indi": {"port": port},
        "guide_camera": {"driver": "indi", "indi_device": "CCD Simulator"},
        "main_camera": {"driver": "indi", "indi_device": "CCD Simulator", "bayer": ""},
        "mount": {"driver": "indi", "indi_device": "Telescope Simulator"},
        "focuser": {"driver": "indi", "indi_device": "Focuser Simulator"},
        "guide_scope": {"focal_length_mm": 900.0},
        "plan": {"target": "test field", "ra_deg": TARGET[0], "dec_deg": TARGET[1]},
        "guiding": guiding,
    }
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in table.items()]
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path


async def fieldtui(*args: str) -> tuple[int, str, str]:
    import sys
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "fieldtui", *args, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await p.communicate()
    return p.returncode, out.decode(), err.decode()


async def cli_guide(indi, tmp_path, minutes: float, guiding: dict):
    import json
    cfg = write_config(tmp_path / "indi.toml", indi.port, tmp_path / "data", guiding)
    rc, out, err = await fieldtui("--config", str(cfg), "guide", "--goto", "--minutes", str(minutes), "--json")
    assert rc == 0, out + err
    return cfg, json.loads(out)


@INSIDE_ONLY
async def test_fieldtui_guide_goto_on_the_indi_rig(indi, tmp_path):
    """``fieldtui guide --goto --minutes M --json`` in real time on INDI's simulators (parked at the
    pole when they start): unparks, slews to the plan target, calibrates and guides."""
    await indi.d["mount"].server.close()
    _, res = await cli_guide(indi, tmp_path, 0.1, {"exposure_s": 0.3, "calibration_steps": 3,
                                                   "calibration_px": 8.0})
    g = res["goto"]
    assert (g["mount_ra_deg"], g["mount_dec_deg"]) == (pytest.approx(TARGET[0], abs=0.2),
                                                       pytest.approx(TARGET[1], abs=2 / 3600))
    assert g["tracking"]
    # INDI's own client: the mount is there, unparked and tracking
    assert float(await indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.DEC")) == \
        pytest.approx(TARGET[1], abs=2 / 3600)
    assert await indi.getprop("Telescope Simulator.TELESCOPE_PARK.PARK") == "Off"
    assert res["pixel_scale_arcsec"] == pytest.approx(SCALE, rel=1e-3)   # CCD_INFO, not the config's camera
    cal = res["calibration"]
    assert cal["ra_rate_px_s"] == pytest.approx(0.5 * 15.041 / SCALE, rel=0.3)
    assert cal["dec_rate_px_s"] == pytest.approx(0.5 * 15.041 / SCALE, rel=0.3)
    assert res["frames"] >= 2 and res["rig"] == f"INDI server 127.0.0.1:{indi.port}"
    assert 0 <= res["frame_latency_s_median"] < 5 and res["frame_latency_frames"] > res["frames"]
    assert res["seeing_floor_arcsec"] is None


@INSIDE_ONLY
async def test_fieldtui_guide_goto_minutes_on_the_indi_rig_with_periodic_error(indi, tmp_path):
    """``fieldtui check --json`` and ``fieldtui guide --goto --minutes 2 --json`` against the CCD
    simulator's own periodic error: the figures of the INDI backend."""
    import json
    await indi.d["mount"].server.close()
    p = await asyncio.create_subprocess_exec(
        "indi_setprop", "-p", str(indi.port),
        f"CCD Simulator.SIMULATOR_SETTINGS.SIM_PEMAX;SIM_PEPERIOD={PE_MAX_ARCSEC};{PE_PERIOD_S}")
    await p.wait()
    cfg = write_config(tmp_path / "indi.toml", indi.port, tmp_path / "data", {"exposure_s": 1.0})
    rc, out, err = await fieldtui("--config", str(cfg), "check", "--json")
    check = json.loads(out)
    assert check["via"] == "in-process"
    by = {c["name"]: c for c in check["checks"]}
    for name in ("guide_camera", "main_camera", "mount", "guide_port", "focuser", "indi"):
        assert by[name]["ok"], by[name]
    _, res = await cli_guide(indi, tmp_path, 2.0, {"exposure_s": 1.0})
    unguided_rms = PE_MAX_ARCSEC * math.cos(math.radians(TARGET[1])) / math.sqrt(2)
    print(f"fieldtui guide --goto --minutes 2 on INDI: RMS RA {res['rms_ra_arcsec']:.2f}″ Dec "
          f"{res['rms_dec_arcsec']:.2f}″ total {res['rms_total_arcsec']:.2f}″ over {res['frames']} frames "
          f"(unguided PE RMS {unguided_rms:.2f}″); frame latency {res['frame_latency_s_median']:.3f} s median, "
          f"{res['frame_latency_s_max']:.3f} s max; check took {check['seconds']} s")
    assert res["frames"] >= 60
    assert res["rms_ra_arcsec"] < 0.7 * unguided_rms


CAPTURE_PLAN = """
[plan]
name = "indi restart"
[[target]]
name = "field"
ra_deg = {ra}
dec_deg = {dec}
[[target.sequence]]
type = "light"
count = {n}
exposure = 1
"""


@INSIDE_ONLY
async def test_capture_pauses_and_resumes_when_the_server_is_killed_and_restarted(indi, data_root, tmp_path):
    from fieldtui.service.session import Session
    await indi.d["mount"].server.close()
    cfg = indi_config(indi.port, data_root, storage={"min_free_gb": 0.0})
    s = Session(cfg, RealClock(), activities=("fieldtui.service.capture:Capture",))
    await s.start()
    plan = tmp_path / "plan.toml"
    plan.write_text(CAPTURE_PLAN.format(ra=TARGET[0], dec=TARGET[1], n=8))
    try:
        await s.device("mount").slew_to(*TARGET)
        run = asyncio.ensure_future(s.capture.run_plan(str(plan)))
        await wait_until(lambda: s.capture.summary.get("done", 0) >= 2, 60, "two frames")
        indi.restart_server()
        res = await asyncio.wait_for(run, 240)
        texts = [a.text for a in s.alerts]
    finally:
        await s.stop()
    assert res["state"] == "done" and res["done"] == 8 and res["failed"] == 0, (res, texts)
    assert any("went away" in t for t in texts) and any("is back" in t and "slewed back" in t for t in texts), texts
    assert len(list(data_root.rglob("*.fits"))) == 8
