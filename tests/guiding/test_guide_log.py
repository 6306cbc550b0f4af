"""Reading PHD2-format guide logs: PHD2's own, ASIAIR's, KStars/Ekos's, cut and damaged ones."""

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bugcases import bugcase  # noqa: E402

from fieldtui.guiding.log import (  # noqa: E402
    GUIDE_HEADING, GuideLogError, GuideLogWriter, log_runs, parse_guide_log, read_guide_log,
)

ROW = '{n},{t:.3f},"Mount",{ra:.3f},{dec:.3f},{ra:.3f},{dec:.3f},0.000,0.000,0,,0,,,,9000,20.00,0'


def _rows(values, t0=2.0):
    return "\n".join(ROW.format(n=i + 1, t=t0 * (i + 1), ra=ra, dec=dec)
                     for i, (ra, dec) in enumerate(values))


def _std(v):
    m = sum(v) / len(v)
    return (sum((x - m) ** 2 for x in v) / len(v)) ** 0.5


# ------------------------------------------------------------------ bug cases
def test_phd2_desktop_windows_log():
    path = bugcase("guide_logs/phd2_desktop.txt")
    assert b"\r\n" in path.read_bytes()  # the case is about Windows line endings
    log = read_guide_log(path)
    assert log.version == "2.6.13 [Windows]"
    s = log.sessions[0]
    assert (s.frames, s.dropped) == (38, 2)
    assert s.rms_ra_px == pytest.approx(0.531, abs=5e-4)
    assert s.rms_dec_px == pytest.approx(0.381, abs=5e-4)
    assert s.rms_total_px == pytest.approx(0.653, abs=5e-4)
    assert s.pixel_scale == 2.47
    assert s.rms_total_px * s.pixel_scale == pytest.approx(1.613, abs=5e-4)
    assert s.peak_ra_px == pytest.approx(2.037) and s.peak_dec_px == pytest.approx(1.366)
    assert s.camera == "ZWO ASI Camera (1)" and s.mount == "EQMOD ASCOM HEQ5/6"
    assert s.dithers == 1 and s.settling == (1, 0)
    assert s.star_lost_events == 2  # two DROP rows apart; the ALERT after one is not a third
    assert s.alerts == ["Guide star mass changed, star lost"]
    assert s.problems == []
    cal = log.calibrations[0]
    assert len(cal.steps) == 17 and cal.complete and cal.status == "complete"
    assert [st[0] for st in cal.steps].count("Backlash") == 3
    assert cal.axes["West"] == (88.7, 7.502, "Even") and cal.axes["North"] == (-1.1, 7.413, "Even")

    runs = log_runs(log)
    assert len(runs) == 2
    r1 = runs[0]
    assert r1["rms_total_arcsec"] == pytest.approx(1.613, abs=5e-4)
    assert r1["rms_ra_arcsec"] == pytest.approx(0.531 * 2.47, abs=2e-3)
    assert [c["steps"] for c in r1["calibrations"]] == [17]
    assert r1["calibrations"][0]["status"] == "complete"
    assert r1["calibrations"][0]["ra"] == {"angle_deg": 88.7, "rate_px_s": 7.502, "parity": "Even"}


def test_each_run_keeps_its_own_header():
    log = read_guide_log(bugcase("guide_logs/phd2_desktop.txt"))
    first, second = log.sessions
    assert first.started == "2024-03-09 20:05:02" and second.started == "2024-03-09 21:10:00"
    assert len(first.header) == 15 and len(second.header) == 2
    assert second.header[0].startswith("Pixel scale = 2.47")
    assert first.exposure_ms == 2000 and second.exposure_ms is None  # not borrowed from run 1
    assert first.camera is not None and second.camera is None
    assert first.ra_algorithm == "Predictive PEC" and second.ra_algorithm is None
    # The second run was cut by the end of the file: 2 frames, the cut row reported.
    assert second.frames == 2 and second.dropped == 0
    assert len(second.problems) == 1 and "cut row" in second.problems[0]
    assert "line 105" in second.problems[0]


def test_asiair_log_without_pixel_scale():
    log = read_guide_log(bugcase("guide_logs/asiair_no_scale.txt"))
    s = log.sessions[0]
    assert s.pixel_scale is None
    assert s.frames == 6 and s.camera == "ASI120MM Mini"
    assert s.rms_total_px == pytest.approx(0.379, abs=5e-4)
    r = log_runs(log)[0]
    assert r["pixel_scale_arcsec_px"] is None
    assert r["rms_total_px"] == pytest.approx(0.379, abs=5e-4)
    for k in ("rms_ra_arcsec", "rms_dec_arcsec", "rms_total_arcsec", "peak_ra_arcsec", "peak_dec_arcsec"):
        assert r[k] is None, k


def test_truncated_log():
    log = read_guide_log(bugcase("guide_logs/trunc_min.txt"))
    (s,) = log.sessions
    assert s.frames == 2 and [e.frame for e in s.entries] == [1, 2]
    assert s.rms_ra_px == pytest.approx(0.170, abs=5e-4)
    assert s.rms_dec_px == pytest.approx(0.115, abs=5e-4)
    assert s.rms_total_px == pytest.approx(0.205, abs=5e-4)
    assert s.rms_total_px * s.pixel_scale == pytest.approx(0.507, abs=5e-4)
    assert len(s.problems) == 1
    assert "line 8" in s.problems[0] and "cut row" in s.problems[0] and "not counted" in s.problems[0]
    assert '3,6.330,"Mount",0.31' in s.problems[0]


def test_missing_path_is_an_error_naming_it(tmp_path):
    for p in ("no/such/file.txt", Path("no/such/file.txt")):
        with pytest.raises(FileNotFoundError, match="no/such/file.txt"):
            parse_guide_log(p)
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        read_guide_log(tmp_path)
    junk = tmp_path / "notes.txt"
    junk.write_text("shopping list\neggs\n")
    with pytest.raises(GuideLogError, match="notes.txt: not a guide log"):
        read_guide_log(junk)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(GuideLogError, match="empty"):
        read_guide_log(empty)


# ------------------------------------------------------------ other writers
EKOS = """KStars version 3.6.7. PHD2 log version 2.5. Log enabled at 2023-10-14 22:01:05

Calibration Begins at 2023-10-14 22:02:10
Pixel scale = 3.12 arc-sec/px, Binning = 1, Focal length = 250 mm
RA = 20.69 hr, Dec = 45.3 deg, Hour angle = N/A hr, Pier side = West, Rotator pos = N/A, Alt = 70.2 deg, Az = 80.1 deg
Direction,Step,dx,dy,x,y,Dist
West,1,-1.207,0.137,54.800,58.947,1.215
West,2,-3.100,0.300,52.900,59.100,3.114
West calibration complete. Angle = 174.5 deg
East,1,1.500,-0.100,54.400,59.000,1.503
North,1,0.100,2.100,56.100,61.000,2.102
North,2,0.200,4.100,56.200,63.000,4.105
North calibration complete. Angle = 87.2 deg
Calibration complete (Failed)

Calibration Begins at 2023-10-14 22:05:40
Pixel scale = 3.12 arc-sec/px, Binning = 1, Focal length = 250 mm
RA = 20.69 hr, Dec = 45.3 deg, Hour angle = N/A hr, Pier side = West, Rotator pos = N/A, Alt = 70.2 deg, Az = 80.1 deg
Direction,Step,dx,dy,x,y,Dist
West,1,-5.207,0.137,54.800,58.947,5.209
West calibration complete. Angle = 178.5 deg
North,1,0.100,5.100,56.100,61.000,5.101
North calibration complete. Angle = 88.9 deg
Calibration guide speeds: RA = 7.5 a-s/s, Dec = 7.5 a-s/s
Calibration complete

Guiding Begins at 2023-10-14 22:09:00
Pixel scale = 3.12 arc-sec/px, Binning = 1, Focal length = 250 mm
RA = 20.69 hr, Dec = 45.3 deg, Hour angle = N/A hr, Pier side = West, Rotator pos = N/A, Alt = 70.2 deg, Az = 80.1 deg
Mount = mount, xAngle = 178.5, xRate = 5.210, yAngle = 88.9, yRate = 5.101
Frame,Time,mount,dx,dy,RARawDistance,DECRawDistance,RAGuideDistance,DECGuideDistance,RADuration,RADirection,DECDuration,DECDirection,XStep,YStep,StarMass,SNR,ErrorCode
1,1.012,"Mount",0.300,-0.100,0.300,-0.100,0.210,-0.070,120,W,40,S,,,2173,26.91,0
2,2.020,"Mount",-0.100,0.200,-0.100,0.200,-0.070,0.140,40,E,80,N,,,2201,27.01,0
3,3.031,"DROP",0.000,0.000,0.000,0.000,0.000,0.000,0,,0,,,,0,0.00,1
4,4.040,"Mount",0.200,0.100,0.200,0.100,0.140,0.070,80,W,40,N,,,2150,26.50,0
INFO: DITHER by 1.500, -2.000, new lock pos = 56.500, 57.000
INFO: SETTLING STATE CHANGE, Settling started
5,5.050,"Mount",-0.400,0.300,-0.400,0.300,-0.280,0.210,160,E,120,N,,,2180,26.70,0
INFO: SETTLING STATE CHANGE, Settling complete
Guiding Ends at 2023-10-14 22:09:06

Log closed at 2023-10-14 23:00:00
"""


def test_kstars_ekos_log():
    log = parse_guide_log(EKOS)
    assert log.version == "KStars 3.6.7"
    failed, ok = log.calibrations
    assert failed.status == "failed" and failed.failure == "Calibration complete (Failed)"
    assert failed.axes["West"] == (174.5, None, None)  # Ekos writes no rate
    assert ok.status == "complete" and len(ok.steps) == 2
    (s,) = log.sessions
    assert s.program == "KStars 3.6.7" and s.mount == "mount" and s.pixel_scale == 3.12
    assert (s.x_angle, s.x_rate, s.y_angle, s.y_rate) == (178.5, 5.21, 88.9, 5.101)
    assert s.dec_deg == 45.3 and s.pier_side == "West"
    assert (s.frames, s.dropped, s.star_lost_events, s.dithers) == (4, 1, 1, 1)
    ra, dec = [0.3, -0.1, 0.2, -0.4], [-0.1, 0.2, 0.1, 0.3]
    assert s.rms_ra_px == pytest.approx(_std(ra), abs=1e-9)
    assert s.rms_dec_px == pytest.approx(_std(dec), abs=1e-9)
    (run,) = log_runs(log)
    assert [c["status"] for c in run["calibrations"]] == ["failed", "complete"]
    assert run["rms_total_arcsec"] == pytest.approx(3.12 * (_std(ra) ** 2 + _std(dec) ** 2) ** 0.5)


PHD2_FAILED = """PHD2 version 2.6.11, Log version 2.5. Log enabled at 2022-01-02 20:00:00

Calibration Begins at 2022-01-02 20:01:00
Equipment Profile = Newt
Camera = QHY5L-II-M
Exposure = 1500 ms
Pixel scale = unspecified, Binning = 1, Focal length = unspecified
Mount = On-camera, Calibration Step = 750 ms, Calibration Distance = 25 px, Assume orthogonal axes = no
Lock position = 100.000, 100.000, Star position = 100.000, 100.000, HFD = 3.10 px
Direction,Step,dx,dy,x,y,Dist
West,0,0.000,0.000,100.000,100.000,0.000
West,1,0.010,0.020,100.010,100.020,0.022
RA Calibration Failed: star did not move enough
"""


def test_calibration_variants():
    text = ("PHD2 version 2.6.13, Log version 2.5. Log enabled at 2024-01-01 20:00:00\n\n"
            "Calibration Begins at 2024-01-01 20:01:00\nMount = AO-8, Calibration Step = 1\n"
            "Direction,Step,dx,dy,x,y,Dist\nLeft,1,1.000,0.000,101.000,100.000,1.000\n"
            "INFO: STAR LOST during calibration, Mass= 0, SNR= 0.00, Error= 2, Status=Star lost - low SNR\n"
            "Left calibration complete. Angle = 0.5 deg, Rate = 0.800 px/sec, Parity = N/A\n"
            "Up,1,0.000,1.000,100.000,101.000,1.000\n"
            "Up calibration complete. Angle = 90.5 deg, Rate = 0.810 px/sec, Parity = Odd\n"
            "Calibration complete, mount = AO-8.\n\n"
            "Calibration Begins at 2024-01-01 20:11:00\nDirection,Step,dx,dy,x,y,Dist\n"
            "West,1,0.000,0.000,0.000,0.000,0.000\n"
            "INFO: Calibration failed: RA calibration failed: star did not move enough\n"
            "Calibration Ends at 2024-01-01 20:14:00\n")
    ao, bad = parse_guide_log(text).calibrations
    assert ao.status == "complete" and ao.mount == "AO-8" and ao.star_lost == 1
    assert ao.axes == {"West": (0.5, 0.8, "N/A"), "North": (90.5, 0.81, "Odd")}
    assert [st[0] for st in ao.steps] == ["Left", "Up"]
    assert bad.status == "failed"
    assert bad.failure == "Calibration failed: RA calibration failed: star did not move enough"


def test_phd2_failed_calibration_is_its_own_run():
    log = parse_guide_log(PHD2_FAILED)
    (cal,) = log.calibrations
    assert cal.status == "failed" and cal.failure == "RA Calibration Failed: star did not move enough"
    assert cal.mount == "On-camera" and cal.camera == "QHY5L-II-M" and len(cal.steps) == 2
    (run,) = log_runs(log)
    assert run["guided"] is False and run["calibrations"][0]["status"] == "failed"


# --------------------------------------------------------------- damage
def _run(start, rows, scale="2.00 arc-sec/px", heading=True):
    head = f"Guiding Begins at {start}\nPixel scale = {scale}, Binning = 1, Focal length = 200 mm\n"
    return head + (GUIDE_HEADING + "\n" if heading else "") + rows + f"\nGuiding Ends at {start}\n\n"


def test_damaged_run_is_reported_and_the_others_still_read():
    good = [(0.2, -0.1), (-0.3, 0.2), (0.1, 0.05)]
    garbage = "1,2.000,\"Mount\",abc,def,x,y,0,0,0,,0,,,,9000,20.00,0\n\x01\x02binary junk\n2,4.0"
    text = ("PHD2 version 2.6.13, Log version 2.5. Log enabled at 2024-01-01 20:00:00\n\n"
            + _run("2024-01-01 20:10:00", garbage)
            + _run("2024-01-01 21:00:00", _rows(good)))
    log = parse_guide_log(text)
    bad, ok = log.sessions
    assert bad.frames == 0 and len(bad.problems) == 3
    assert "RARawDistance" in bad.problems[0] or "dx" in bad.problems[0]
    assert "not a guiding row" in bad.problems[1]
    assert "cut row" in bad.problems[2]
    assert ok.frames == 3 and ok.problems == []
    assert ok.rms_ra_px == pytest.approx(_std([v[0] for v in good]), abs=1e-6)


def test_rows_without_heading_and_a_cut_row_glued_to_the_next_log():
    # A crash left a half row; the next run appended its first line right after it.
    text = ("PHD2 version 2.6.13, Log version 2.5. Log enabled at 2024-01-01 20:00:00\n"
            "Guiding Begins at 2024-01-01 20:10:00\nPixel scale = 2.00 arc-sec/px\n"
            + _rows([(0.1, 0.1), (0.3, -0.1)]) + "\n3,6.000,\"Mou"
            + "PHD2 version 2.6.13, Log version 2.5. Log enabled at 2024-01-01 22:00:00\n"
            + _run("2024-01-01 22:01:00", _rows([(0.5, 0.5), (-0.5, -0.5)])))
    log = parse_guide_log(text)
    first, second = log.sessions
    assert first.frames == 2 and any("without a column heading" in p for p in first.problems)
    assert any("cut row" in p for p in first.problems)
    assert second.frames == 2 and second.rms_ra_px == pytest.approx(0.5)


def test_latin1_bom_and_nul_bytes(tmp_path):
    body = _run("2024-01-01 21:00:00", _rows([(0.2, 0.1), (-0.2, -0.1)]))
    p = tmp_path / "PHD2_GuideLog_x.txt"
    p.write_bytes(b"\xef\xbb\xbf" + ("PHD2 version 2.6.13, Log version 2.5. Log enabled at 2024-01-01 20:00:00\n"
                                     "Equipment Profile = T\xe9lescope\n").encode("latin-1")
                  + body.encode() + b"\x00" * 64)
    log = read_guide_log(p)
    assert log.sessions[0].frames == 2
    assert any("NUL" in x for x in log.problems)
    assert any("NUL" in x for x in log_runs(log)[0]["problems"])


# ------------------------------------------------------------ our writer
def test_writer_creates_the_log_folder(tmp_path):
    folder = tmp_path / "logs" / "tonight"  # does not exist yet
    w = GuideLogWriter(folder, 1_700_000_000.0, camera="Sim")
    w.close(1_700_000_060.0)
    assert folder.is_dir()
    files = [f.name for f in folder.iterdir()]
    assert len(files) == 1
    assert files[0].startswith("PHD2_GuideLog_") and files[0].endswith(".txt")
    # PHD2_GuideLog_YYYY-MM-DD_HHMMSS.txt
    stem = files[0][len("PHD2_GuideLog_"):-4]
    assert len(stem) == 17 and stem[4] == stem[7] == "-" and stem[10] == "_" and stem[11:].isdigit()
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="afile"):
        GuideLogWriter(afile, 1_700_000_000.0)
    assert afile.read_text() == "x"


def test_writer_says_unspecified_for_an_unknown_pixel_scale():
    from fieldtui.guiding.events import GuidingStarted
    buf = io.StringIO()
    w = GuideLogWriter(buf, 1000.0)
    cal = {"ra_angle_deg": 10.0, "ra_rate_px_s": 2.0, "dec_angle_deg": 100.0, "dec_rate_px_s": 2.0}
    w.handle(GuidingStarted(1000.0, 50.0, 50.0, 50.0, 50.0, 2.5, None, 1.0, cal, {}, "Hysteresis",
                            "ResistSwitch", None, "unknown"))
    assert "Pixel scale = unspecified," in buf.getvalue()
    s = parse_guide_log(buf.getvalue() + "\n").sessions[0]
    assert s.pixel_scale is None


# ----------------------------------------------------- round trip on the rig
def test_guide_log_dir_is_created_and_reads_back_the_guider_rms(tmp_path, capsys):
    """``fieldtui guide --log-dir DIR`` with DIR missing: the folder is made, the log in it
    is named as PHD2 names its own, and it reads back with the RMS the guider reported."""
    from fieldtui.commands import main

    folder = tmp_path / "not" / "yet"
    assert main(["guide", "--minutes", "2", "--fast", "--json", "--log-dir", str(folder)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert folder.is_dir()
    (path,) = folder.iterdir()
    assert path.name.startswith("PHD2_GuideLog_") and path.suffix == ".txt"
    assert out["guide_log"] == str(path)
    log = read_guide_log(path)
    (run,) = log_runs(log)
    assert run["frames"] == out["frames"] > 60
    assert run["dropped"] == out["dropped_frames"]
    # The log keeps 3 decimals of a pixel: the RMS agrees to that.
    for k in ("rms_ra_px", "rms_dec_px", "rms_total_px"):
        assert run[k] == pytest.approx(out[k], abs=1e-3), k
    for k in ("rms_ra_arcsec", "rms_dec_arcsec", "rms_total_arcsec"):
        assert run[k] == pytest.approx(out[k], rel=2e-3, abs=2e-3), k
    assert run["peak_ra_px"] == pytest.approx(out["peak_ra_arcsec"] / out["pixel_scale_arcsec"], abs=1e-3)
    assert run["pixel_scale_arcsec_px"] == pytest.approx(out["pixel_scale_arcsec"], abs=1e-3)
    assert [c["status"] for c in run["calibrations"]] == ["complete"]
    cal = run["calibrations"][0]
    assert cal["ra"]["angle_deg"] == pytest.approx(out["calibration"]["camera_angle_deg"], abs=0.06)
    assert cal["ra"]["rate_px_s"] == pytest.approx(out["calibration"]["ra_rate_px_s"], abs=1e-3)
    assert run["problems"] == []


def test_guide_log_dir_that_is_a_file_is_refused(tmp_path, capsys):
    from fieldtui.commands import main

    afile = tmp_path / "logs"
    afile.write_text("keep me")
    assert main(["guide", "--minutes", "1", "--fast", "--log-dir", str(afile)]) == 2
    assert f"--log-dir {afile} is a file" in capsys.readouterr().err
    assert afile.read_text() == "keep me"


def test_settling_frames_can_be_left_out():
    log = read_guide_log(bugcase("guide_logs/phd2_desktop.txt"))
    s = log.sessions[0]
    # Frames 18-22 lie between "Settling started" and "Settling complete".
    assert [e.frame for e, m in zip(s.entries, s.settling_mask()) if m] == [18, 19, 20, 21, 22]
    kept = [e for e in s.entries if e.included and not 18 <= e.frame <= 22]
    n, ra, dec = s.settled_stats()
    assert n == len(kept) == 33
    assert ra == pytest.approx(_std([e.ra_raw for e in kept]), abs=1e-12)
    assert dec == pytest.approx(_std([e.dec_raw for e in kept]), abs=1e-12)
    assert ra < s.rms_ra_px  # the dither's excursion is gone


def test_guide_log_with_dithers_reads_back_the_guider_rms(tmp_path, capsys):
    """The guider leaves settling frames out of its RMS; so does excluding_settling."""
    from fieldtui.commands import main

    assert main(["guide", "--minutes", "3", "--fast", "--json", "--dither-every", "1",
                 "--log-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dithers"] >= 2
    (run,) = log_runs(read_guide_log(out["guide_log"]))
    assert run["dithers"] == out["dithers"] and run["settled"] == out["settled"]
    x = run["excluding_settling"]
    assert x["frames"] == out["frames"] < run["frames"]
    for k in ("rms_ra_px", "rms_dec_px", "rms_total_px"):
        assert x[k] == pytest.approx(out[k], abs=1e-3), k
    assert x["rms_total_arcsec"] == pytest.approx(out["rms_total_arcsec"], rel=2e-3)


async def test_worker_guides_on_without_a_log_when_the_folder_is_a_file(tmp_path):
    from fieldtui.clock import VirtualClock
    from fieldtui.config import load_config
    from fieldtui.devices.sim import SimRig
    from fieldtui.guiding.events import Alert
    from fieldtui.guiding.settings import GuideSettings
    from fieldtui.service.guide_worker import GuideWorker

    afile = tmp_path / "night"
    afile.write_text("keep me")
    cfg = load_config(user=False)
    clock = VirtualClock(1_800_000_000.0)
    rig = SimRig(cfg, clock)
    await rig.connect_all()
    events = []
    w = GuideWorker(rig.guide_camera, rig.guide_port, clock, GuideSettings.from_config(cfg),
                    mount=rig.mount, pixel_scale=cfg.guide_scale, log_dir=afile, on_event=events.append)
    w.start()
    await clock.sleep(10.0)
    await w.stop()
    clock.close()
    alerts = [e for e in events if isinstance(e, Alert) and e.code == "guide-log"]
    assert len(alerts) == 1 and alerts[0].message.startswith("No guide log:") and str(afile) in alerts[0].message
    assert w.frames >= 5  # the loop ran
    assert afile.read_text() == "keep me"


def test_our_failed_calibration_reads_back_as_failed():
    """A mount that does not move: the engine's calibration fails, the log says so."""
    from synth import SynthSky, run

    from fieldtui.guiding.engine import GuideEngine
    from fieldtui.guiding.events import CalibrationFailed
    from fieldtui.guiding.settings import GuideSettings

    sky = SynthSky(angle_deg=10, guide_rate=0.0)
    eng = GuideEngine(GuideSettings(calibration_step_ms=500), pixel_scale=sky.scale)
    buf = io.StringIO()
    w = GuideLogWriter(buf, 1000.0, camera="Synthetic")
    eng.start_calibration()
    events, t = run(eng, sky, 200)
    for e in events:
        w.handle(e)
    w.close(t)
    failed = [e for e in events if isinstance(e, CalibrationFailed)]
    assert len(failed) == 1
    (cal,) = parse_guide_log(buf.getvalue()).calibrations
    assert cal.status == "failed" and failed[0].reason in cal.failure
    assert len(cal.steps) == len([e for e in events if type(e).__name__ == "CalibrationStep"])
    (run_,) = log_runs(parse_guide_log(buf.getvalue()))
    assert run_["guided"] is False and run_["calibrations"][0]["status"] == "failed"
