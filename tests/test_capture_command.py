"""``fieldtui capture`` headless: the JSON summary, and kill -9 mid-run then a restart."""

import json
import os
import signal
import subprocess
import sys
import time

from astropy.io import fits

PLAN = """
[plan]
name = "kill test"
[[target]]
name = "Field"
ra_deg = 30.0
dec_deg = 40.0
[[target.sequence]]
type = "light"
count = {lights}
exposure = 30
iso = 800
[[target.sequence]]
type = "bias"
count = 2
"""


def _setup(tmp_path, lights):
    cfg = tmp_path / "small.toml"
    cfg.write_text("[main_camera]\nwidth = 640\nheight = 480\n[storage]\nmin_free_gb = 0.0\n")
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(lights=lights))
    return cfg, plan, tmp_path / "data"


def _cmd(cfg, plan, data):
    return [sys.executable, "-m", "fieldtui", "--config", str(cfg), "capture", str(plan), "--fast",
            "--json", "--data", str(data)]


def test_json_summary(tmp_path):
    cfg, plan, data = _setup(tmp_path, 2)
    p = subprocess.run(_cmd(cfg, plan, data), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["planned"], out["done"], out["failed"], out["resumed"]) == (4, 4, 0, False)
    assert len(out["files"]) == 4 and all(os.path.exists(f) for f in out["files"])
    # run again: nothing left to take
    out2 = json.loads(subprocess.run(_cmd(cfg, plan, data), capture_output=True, text=True,
                                     timeout=300).stdout)
    assert (out2["done"], out2["taken"], out2["resumed"]) == (4, 0, True)


def test_bad_plan_is_one_line_and_exit_2(tmp_path):
    cfg, plan, data = _setup(tmp_path, 2)
    plan.write_text(PLAN.format(lights=0))
    p = subprocess.run(_cmd(cfg, plan, data), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "target 1 (Field), sequence 1: count" in p.stderr
    assert not data.exists()


def _journal(data):
    path = data / ".capture" / "kill_test.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_kill_9_mid_run_then_restart_loses_nothing(tmp_path):
    cfg, plan, data = _setup(tmp_path, 12)
    proc = subprocess.Popen(_cmd(cfg, plan, data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    # kill while a frame is in progress: "started" is the last record after a few finished frames
    while time.monotonic() < deadline:
        j = _journal(data)
        if sum(r["ev"] == "finished" for r in j) >= 3 and j[-1]["ev"] in ("started", "saving"):
            break
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {r["path"] for r in _journal(data) if r["ev"] == "finished"}
    assert len(finished_before) >= 3
    t0 = time.monotonic()
    p = subprocess.run(_cmd(cfg, plan, data), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["resumed"] and out["done"] == out["planned"] == 14
    assert out["taken"] + len(finished_before) + out["adopted"] == 14
    frames = sorted(data.rglob("*.fits"))
    assert len(frames) == 14                               # none lost, none taken twice
    assert not list(data.rglob("*.part"))                  # no half-written file left
    for f in frames:                                       # every frame whole
        with fits.open(f) as h:
            assert h[0].data.shape == (480, 640)
    names = [f.name for f in sorted(data.rglob("light/*.fits"))]
    assert names == [f"Field_light_30s_ISO800_13C_{i:04d}.fits" for i in range(1, 13)]
    assert finished_before <= {r["path"] for r in _journal(data) if r["ev"] == "finished"}
    print(f"resume: {time.monotonic() - t0:.2f} s wall for the rest of the plan")
