"""Capture figures on the simulated rig.

    .venv/bin/python tests/benchmarks/bench_capture.py [--small] [--dither]
    .venv/bin/python tests/benchmarks/bench_capture.py --resume [--small]
    .venv/bin/python tests/benchmarks/bench_capture.py --library 1000

Overhead = end of one exposure to the start of the next, from the journal:
simulated (clock) seconds and wall seconds (download/render, star
measurement, FITS write with fsync, journal fsyncs); with ``--dither`` the
plan guides and dithers after every light, so the overhead includes the
dither and the settle (simulated seconds, on the virtual clock).

``--resume``: ``fieldtui capture --fast`` in a subprocess, killed with SIGKILL
during an exposure, then started again: wall seconds from the restart to the
first exposure it starts (process start, imports, rig connection, journal
read-back, leftover clean-up).

``--library N``: N FITS frames with the capture's headers (128 × 128 pixels:
the scan reads headers only), then ``Library.scan`` from empty: files per
second.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from fieldtui.commands.capture import run_capture
from fieldtui.config import load_config

PLAN = """
[plan]
name = "bench"
[[target]]
name = "M31"
[[target.sequence]]
type = "light"
count = {n}
exposure = 60
iso = 800
dither_every = {dither}
"""


KILL_PLAN = """
[plan]
name = "resume bench"
[[target]]
name = "Field"
ra_deg = 30.0
dec_deg = 40.0
[[target.sequence]]
type = "light"
count = 12
exposure = 30
iso = 800
"""


def _journal(path: Path) -> list[dict]:
    out = []
    if path.exists():
        for line in path.read_bytes().split(b"\n"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def resume_after_kill(tmp: Path, small: bool = True) -> dict:
    """Kill -9 a headless run during an exposure, restart it: wall seconds from the restart to
    its first exposure start, and to the end of the plan."""
    import os
    import signal
    import subprocess
    import time
    cfg = tmp / "bench.toml"
    cfg.write_text(("[main_camera]\nwidth = 640\nheight = 480\n" if small else "")
                   + "[storage]\nmin_free_gb = 0.0\n")
    plan = tmp / "plan.toml"
    plan.write_text(KILL_PLAN)
    data = tmp / "data"
    journal = data / ".capture" / "resume_bench.jsonl"
    cmd = [sys.executable, "-m", "fieldtui", "--config", str(cfg), "capture", str(plan), "--fast", "--json",
           "--data", str(data)]
    env = {**os.environ, "FIELDTUI_USER_CONFIG": "/nonexistent"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        j = _journal(journal)
        if sum(r["ev"] == "finished" for r in j) >= 3 and j[-1]["ev"] == "started":
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(_journal(journal))
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    first = None
    while p.poll() is None and first is None:
        new = [r for r in _journal(journal)[n_before:] if r["ev"] == "started"]
        if new:
            first = new[0]["wall"]
        time.sleep(0.002)
    out, _ = p.communicate(timeout=600)
    if first is None:
        new = [r for r in _journal(journal)[n_before:] if r["ev"] == "started"]
        first = new[0]["wall"] if new else None
    res = json.loads(out)
    return {"resume_to_first_exposure_wall_s": round(first - t0, 3) if first else None,
            "restart_to_plan_end_wall_s": round(time.time() - t0, 3), "state": res["state"],
            "done": res["done"], "planned": res["planned"], "adopted": res["adopted"],
            "size": "640x480" if small else "5184x3456"}


def library_scan_rate(tmp: Path, n: int = 1000) -> dict:
    """``n`` small FITS frames with the capture's headers, then a scan from empty."""
    import time

    import numpy as np
    from astropy.io import fits

    from fieldtui.library import Library
    root = tmp / "lib"
    data = np.zeros((128, 128), np.uint16)
    for i in range(n):
        kind = ("light", "dark", "flat", "bias")[i % 4]
        d = root / "2027-01-14" / "M31" / kind
        d.mkdir(parents=True, exist_ok=True)
        h = fits.Header()
        for k, v in (("IMAGETYP", kind.upper()), ("EXPTIME", 60.0), ("ISOSPEED", 800), ("CCD-TEMP", 13.0),
                     ("DATE-OBS", "2027-01-15T01:00:00"), ("OBJECT", "M31"), ("FILTER", "L"),
                     ("BAYERPAT", "RGGB"), ("XPIXSZ", 4.3), ("FOCALLEN", 1000.0), ("RA", 10.68),
                     ("DEC", 41.27), ("SITELAT", 48.0), ("SITELONG", 2.0), ("FOCUSPOS", 5000),
                     ("NIGHT", "2027-01-14"), ("HFR", 2.1), ("NSTARS", 300)):
            h[k] = v
        fits.PrimaryHDU(data, header=h).writeto(d / f"M31_{kind}_60s_ISO800_13C_{i:04d}.fits")
    lib = Library(tmp / "library.sqlite")
    t = time.perf_counter()
    res = lib.scan(root, rebuild=True)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    again = lib.scan(root)
    dt2 = time.perf_counter() - t
    lib.close()
    return {"files": n, "indexed": res["indexed"], "scan_s": round(dt, 3), "files_per_s": round(n / dt),
            "rescan_unchanged_s": round(dt2, 3), "unchanged": again["unchanged"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="640 × 480 frames instead of 5184 × 3456")
    ap.add_argument("--dither", action="store_true", help="guide, and dither after every frame")
    ap.add_argument("--resume", action="store_true", help="time to resume after kill -9")
    ap.add_argument("--library", type=int, metavar="N", help="library scan rate on N frames")
    ap.add_argument("-n", type=int, default=6)
    a = ap.parse_args()
    if a.resume:
        print(json.dumps(resume_after_kill(Path(tempfile.mkdtemp()), a.small), indent=1))
        return
    if a.library:
        print(json.dumps(library_scan_rate(Path(tempfile.mkdtemp()), a.library), indent=1))
        return
    tmp = Path(tempfile.mkdtemp())
    over = {"storage": {"data_root": str(tmp / "data"), "min_free_gb": 0.0}}
    if a.small:
        over["main_camera"] = {"width": 640, "height": 480}
    cfg = load_config(overrides=over)
    plan = tmp / "plan.toml"
    plan.write_text(PLAN.format(n=a.n, dither=1 if a.dither else 0))
    res = asyncio.run(run_capture(cfg, str(plan), fast=True, guide=a.dither))
    recs = [json.loads(x) for x in Path(res["journal"]).read_text().splitlines()]
    fin = [r for r in recs if r["ev"] == "finished"]
    sta = [r for r in recs if r["ev"] == "started"]
    sta = [x for x, y in zip(sta, sta[1:] + [None]) if y is None or y["index"] != x["index"]]  # retakes
    clock = [s["t"] - f["exposed"] for f, s in zip(fin, sta[1:])]
    wall = [s["wall"] - f["exposed_wall"] for f, s in zip(fin, sta[1:])]
    save = [f["wall"] - f["exposed_wall"] for f in fin]
    print(json.dumps({"state": res["state"], "frames": len(fin), "size": "640x480" if a.small else "5184x3456",
                      "dither": a.dither,
                      "overhead_clock_s_median": statistics.median(clock) if clock else None,
                      "overhead_wall_s_median": round(statistics.median(wall), 3) if wall else None,
                      "measure_and_save_wall_s_median": round(statistics.median(save), 3) if save else None},
                     indent=1))


if __name__ == "__main__":
    sys.exit(main())


def test_capture_overhead(tmp_path):
    """Overhead between frames (640 × 480, no dither), recorded to bench-results/."""
    from .bench_core import record
    over = {"storage": {"data_root": str(tmp_path / "data"), "min_free_gb": 0.0},
            "main_camera": {"width": 640, "height": 480}}
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(n=6, dither=0))
    res = asyncio.run(run_capture(load_config(overrides=over), str(plan), fast=True))
    recs = [json.loads(x) for x in Path(res["journal"]).read_text().splitlines()]
    fin = [r for r in recs if r["ev"] == "finished"]
    sta = [r for r in recs if r["ev"] == "started"]
    record("capture_overhead", {
        "overhead_clock_s_median": statistics.median(s["t"] - f["exposed"] for f, s in zip(fin, sta[1:])),
        "overhead_wall_s_median": round(statistics.median(s["wall"] - f["exposed_wall"]
                                                          for f, s in zip(fin, sta[1:])), 3)})


def test_library_scan_rate(tmp_path):
    """Library scan rate on 1,000 frames, recorded to bench-results/."""
    from .bench_core import record
    record("library_scan", library_scan_rate(tmp_path, 1000))


def test_resume_after_kill(tmp_path):
    """Wall time from the restart of a killed headless run to its first exposure."""
    from .bench_core import record
    res = resume_after_kill(tmp_path)
    assert res["state"] == "done" and res["done"] == res["planned"]
    record("capture_resume_after_kill", res)
