"""Focus screen benchmark: frame rate and terminal bytes per second on DSLR live view.

The client runs in a real terminal (tmux, TERM=xterm-256color) against the
rig service on the simulated rig with the real clock. Bytes are what tmux's
``pipe-pane`` copies out of the pane: every byte the app wrote to its
terminal. Frames are the FocusFrame/FramePreview events a second client
receives over the same socket in the same window.

Cases: the loop off (idle screen), live view at 2 s (the default) and at
0.5 s (the service's cap, 2 frames a second), each at 80×24 and 160×50.

Run:  .venv/bin/python -m pytest tests/benchmarks/bench_focus_screen.py -s -n 0
  or: .venv/bin/python tests/benchmarks/bench_focus_screen.py
Writes bench-results/focus_screen.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WINDOW_S = float(os.environ.get("FIELDTUI_BENCH_WINDOW", "20"))


class Tmux:
    """A private tmux server (``-L``) with one window, ``bench``."""

    def __init__(self, env: dict[str, str], name: str = "fieldtui-bench") -> None:
        self.sock = f"{name}-{os.getpid()}"
        self.env = env

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              env=self.env).stdout

    def keys(self, *keys: str) -> None:
        for k in keys:
            self("send-keys", "-t", "bench", "--", k)
            time.sleep(0.4)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "bench")


async def count_events(window: float) -> dict[str, int]:
    from fieldtui.service.client import RigClient
    client = RigClient()
    await client.connect(timeout=5)
    counts: dict[str, int] = {}

    async def pump() -> None:
        async for ev in client.events():
            counts[ev.kind] = counts.get(ev.kind, 0) + 1

    task = asyncio.ensure_future(pump())
    await asyncio.sleep(window)
    task.cancel()
    await client.close()
    return counts


def set_exposure(seconds: float) -> None:
    """Start each case from the same exposure (the service keeps it between clients)."""
    async def go() -> None:
        from fieldtui.service.client import RigClient
        client = RigClient()
        await client.connect(timeout=5)
        await client.command("focus.exposure", value=seconds, camera="main_camera")
        await client.close()
    asyncio.run(go())


def measure(tmux: Tmux, log: Path, window: float) -> dict[str, float]:
    if log.exists():
        log.unlink()
    tmux("pipe-pane", "-t", "bench", f"cat >> {log}")
    t0 = time.monotonic()
    counts = asyncio.run(count_events(window))
    elapsed = time.monotonic() - t0
    tmux("pipe-pane", "-t", "bench")  # stop piping
    time.sleep(0.2)
    size = log.stat().st_size if log.exists() else 0
    return {"window_s": round(elapsed, 1), "bytes_per_s": round(size / elapsed, 1),
            "frames_per_s": round(counts.get("FocusFrame", 0) / elapsed, 2),
            "previews_per_s": round(counts.get("FramePreview", 0) / elapsed, 2),
            "events_per_s": round(sum(counts.values()) / elapsed, 2)}


def run() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="fieldtui-bench-"))
    cfgfile = tmp / "bench.toml"
    cfgfile.write_text(f'[storage]\ndata_root = "{tmp / "astro"}"\n')
    env = dict(os.environ, FIELDTUI_RUNTIME_DIR=str(tmp / "rt"), FIELDTUI_STATE_DIR=str(tmp / "state"),
               FIELDTUI_USER_CONFIG=str(tmp / "none.toml"), TERM="xterm-256color")
    env.pop("COLORTERM", None)
    os.environ.update({k: env[k] for k in ("FIELDTUI_RUNTIME_DIR", "FIELDTUI_STATE_DIR", "FIELDTUI_USER_CONFIG")})
    py = sys.executable
    subprocess.run([py, "-m", "fieldtui", "service", "start", "--config", str(cfgfile)], env=env, check=True,
                   capture_output=True, timeout=60)
    tmux = Tmux(env)
    results: dict = {"method": "tmux pipe-pane byte count; frames counted by a second socket client",
                     "term": "xterm-256color (tmux)", "python": platform.python_version(),
                     "machine": platform.machine(), "cpus": os.cpu_count(), "cases": {}}
    try:
        for cols, rows in ((80, 24), (160, 50)):
            tmux("new-session", "-d", "-s", "bench", "-x", str(cols), "-y", str(rows),
                 f"{py} -m fieldtui --config {cfgfile}")
            time.sleep(3.0)
            set_exposure(2.0)
            tmux.keys("f")
            time.sleep(1.0)
            key = f"{cols}x{rows}"
            results["cases"][f"{key} loop off"] = measure(tmux, tmp / "pane.log", WINDOW_S / 2)
            tmux.keys("l")
            time.sleep(3.0)
            results["cases"][f"{key} live view 2 s"] = measure(tmux, tmp / "pane.log", WINDOW_S)
            tmux.keys("-", "-", "-")  # 2 s -> 1.5 -> 1 -> 0.5 s
            time.sleep(2.0)
            results["cases"][f"{key} live view 0.5 s"] = measure(tmux, tmp / "pane.log", WINDOW_S)
            tmux.keys("l")
            time.sleep(1.0)
            tmux("kill-session", "-t", "bench")
            time.sleep(0.5)
    finally:
        tmux("kill-server")
        subprocess.run([py, "-m", "fieldtui", "service", "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def report(results: dict) -> None:
    print(f"\nFocus screen in tmux ({results['term']}), {results['cpus']} CPUs")
    print(f"{'case':28s} {'frames/s':>9s} {'previews/s':>11s} {'bytes/s':>10s}")
    for name, r in results["cases"].items():
        print(f"{name:28s} {r['frames_per_s']:9.2f} {r['previews_per_s']:11.2f} {r['bytes_per_s']:10.0f}")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "focus_screen.json").write_text(json.dumps(results, indent=1))
    print(f"written {out / 'focus_screen.json'}")


def test_focus_screen_bench() -> None:
    if shutil.which("tmux") is None:
        import pytest
        pytest.skip("tmux is not installed")
    report(run())


if __name__ == "__main__":
    report(run())
