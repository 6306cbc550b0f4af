"""``fieldtui guidelog FILE... [--json]`` on the field bug cases and on broken input."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "guiding"))
from bugcases import bugcase  # noqa: E402

from fieldtui.commands import main  # noqa: E402


def test_text_report_of_a_phd2_log(capsys):
    path = bugcase("guide_logs/phd2_desktop.txt")
    assert main(["guidelog", str(path)]) == 0
    out = capsys.readouterr().out
    run1, run2 = out.strip().split("\n\n")
    assert "run 1 of 2: guiding 2024-03-09 20:05:02 to 2024-03-09 20:06:30" in run1
    assert "Camera ZWO ASI Camera (1); mount EQMOD ASCOM HEQ5/6" in run1
    assert "Pixel scale 2.47″/px" in run1
    assert "Frames 38 used, 2 dropped; star lost 2×; dithers 1 (settled 1, failed 0)" in run1
    assert "RMS   RA 1.31″ (0.531 px)  Dec 0.94″ (0.381 px)  total 1.61″ (0.653 px)" in run1
    assert "Peak  RA 5.03″ (2.037 px)  Dec 3.37″ (1.366 px)" in run1
    assert ("Calibration 2024-03-09 20:01:35: complete; 17 steps; RA angle 88.7°, 7.502 px/s; "
            "Dec angle -1.1°, 7.413 px/s") in run1
    assert "Alert: Guide star mass changed, star lost" in run1
    assert "run 2 of 2" in run2 and "Frames 2 used, 0 dropped" in run2
    assert "damaged: line 105: cut row" in run2


def test_no_arcseconds_without_a_pixel_scale(capsys):
    assert main(["guidelog", str(bugcase("guide_logs/asiair_no_scale.txt"))]) == 0
    out = capsys.readouterr().out
    assert "RMS   RA 0.340 px  Dec 0.168 px  total 0.379 px" in out
    assert "Pixel scale not in the log" in out
    assert "″" not in out


def test_json_is_a_list_of_runs(capsys):
    files = [bugcase("guide_logs/phd2_desktop.txt"), bugcase("guide_logs/asiair_no_scale.txt"),
             bugcase("guide_logs/trunc_min.txt")]
    assert main(["guidelog", "--json", *map(str, files)]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(Path(r["file"]).name, r["run"]) for r in runs] == [
        ("phd2_desktop.txt", 1), ("phd2_desktop.txt", 2), ("asiair_no_scale.txt", 1), ("trunc_min.txt", 1)]
    desk, _, asiair, trunc = runs
    assert (desk["frames"], desk["dropped"]) == (38, 2)
    assert desk["rms_total_arcsec"] == pytest.approx(1.613, abs=5e-4)
    assert desk["calibrations"][0]["steps"] == 17 and desk["calibrations"][0]["status"] == "complete"
    assert asiair["rms_total_px"] == pytest.approx(0.379, abs=5e-4) and asiair["rms_total_arcsec"] is None
    assert trunc["frames"] == 2 and trunc["rms_total_arcsec"] == pytest.approx(0.507, abs=5e-4)
    assert len(trunc["problems"]) == 1 and "cut row" in trunc["problems"][0]


def test_missing_and_unreadable_files_are_named_and_the_others_read(tmp_path, capsys):
    good = bugcase("guide_logs/trunc_min.txt")
    notlog = tmp_path / "notes.txt"
    notlog.write_text("not a guide log\n")
    missing = tmp_path / "no" / "such.txt"
    assert main(["guidelog", "--json", str(missing), str(good), str(notlog), str(tmp_path)]) == 1
    cap = capsys.readouterr()
    runs = json.loads(cap.out)
    assert [Path(r["file"]).name for r in runs] == ["trunc_min.txt"]
    err = cap.err.strip().splitlines()
    assert len(err) == 3
    assert err[0] == f"fieldtui guidelog: {missing}: no such guide log"
    assert err[1] == f"fieldtui guidelog: {notlog}: not a guide log (no calibration or guiding section in it)"
    assert err[2] == f"fieldtui guidelog: {tmp_path}: a folder, not a guide log"


def test_calibration_alerts_and_failures_are_shown(tmp_path, capsys):
    log = tmp_path / "PHD2_GuideLog_2024-01-01_200000.txt"
    log.write_text(
        "PHD2 version 2.6.13, Log version 2.5. Log enabled at 2024-01-01 20:00:00\n\n"
        "Calibration Begins at 2024-01-01 20:01:00\nMount = Sim, Calibration Step = 750 ms\n"
        "Direction,Step,dx,dy,x,y,Dist\nWest,1,0.010,0.020,100.010,100.020,0.022\n"
        "RA Calibration Failed: star did not move enough\n\n"
        "Calibration Begins at 2024-01-01 20:05:00\nMount = Sim\nDirection,Step,dx,dy,x,y,Dist\n"
        "West,1,5.000,0.000,105.000,100.000,5.000\n"
        "West calibration complete. Angle = 0.0 deg, Rate = 6.667 px/sec, Parity = Even\n"
        "North calibration complete. Angle = -90.0 deg, Rate = 6.667 px/sec, Parity = Even\n"
        "INFO: Calibration alert: Dec backlash is very large: little or no south movement\n"
        "Calibration complete, mount = Sim.\n")
    assert main(["guidelog", str(log)]) == 0
    out = capsys.readouterr().out
    assert "calibration only, no guiding" in out
    assert ("Calibration 2024-01-01 20:01:00: failed (RA Calibration Failed: star did not move enough); "
            "1 steps") in out
    assert "Calibration 2024-01-01 20:05:00: complete; 1 steps; RA angle 0.0°, 6.667 px/s" in out
    assert "! Dec backlash is very large" in out


@pytest.mark.parametrize("enabled", [True, False])
def test_an_unguided_section_is_reported_as_unguided(tmp_path, capsys, enabled):
    # The guiding assistant's watch is logged with "guiding disabled" (PHD2's words): read
    # back, its RMS is the unguided mount's, never guiding's.  RA ±1 px about 0: RMS 1 px, 2″.
    from fieldtui.guiding.events import GuideStep, GuidingStarted, GuidingStopped
    from fieldtui.guiding.log import GuideLogWriter
    t0 = 1_700_000_000.0
    w = GuideLogWriter(tmp_path, t0)
    cal = {"ra_angle_deg": 0.0, "ra_rate_px_s": 5.0, "dec_angle_deg": 90.0, "dec_rate_px_s": 5.0}
    w.handle(GuidingStarted(t0, 100.0, 100.0, 100.0, 100.0, 2.5, 2.0, 1.0, cal, {},
                            guiding_enabled=enabled))
    for i, ra in enumerate((1.0, -1.0, 1.0, -1.0)):
        w.handle(GuideStep(t0 + i + 1, i + 1, i + 1.0, 100.0 + ra, 100.0, 100.0, 100.0, ra, 0.0,
                           ra, 0.0, 0.0, 0.0, 0, "", 0, "", 30.0, 5000.0, 2.5))
    w.handle(GuidingStopped(t0 + 5, "done"))
    w.close(t0 + 6)
    assert main(["guidelog", str(w.path)]) == 0
    out = capsys.readouterr().out
    head = "guiding 20" if enabled else "unguided (guiding disabled) 20"
    rms = "RMS   RA 2.00″ (1.000 px)" if enabled else "unguided RMS RA 2.00″ (1.000 px)"
    assert head in out and rms in out, out
    assert ("guiding disabled" in w.path.read_text()) is not enabled
