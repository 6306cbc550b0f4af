"""Client figures in a real terminal (tmux): time to first paint, idle CPU of
client and service, bytes per second the client writes while idle.

    .venv/bin/python -m pytest tests/benchmarks/bench_client.py -s -n 0
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .bench_core import record

pytestmark = pytest.mark.skipif(subprocess.run(["which", "tmux"], capture_output=True).returncode != 0,
                                reason="needs tmux")
IDLE_S = 30.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def env(tmp_path):
    e = {**os.environ, "FIELDTUI_RUNTIME_DIR": str(tmp_path / "rt"), "FIELDTUI_STATE_DIR": str(tmp_path / "st"),
         "FIELDTUI_USER_CONFIG": "/nonexistent", "TERM": "xterm-256color"}
    e.pop("COLORTERM", None)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[storage]\ndata_root = "{tmp_path / "astro"}"\n')
    e["BENCH_CONFIG"] = str(cfg)
    yield e
    subprocess.run([sys.executable, "-m", "fieldtui", "service", "stop"], env=e, capture_output=True)


def tmux(env, *args):
    return subprocess.run(["tmux", "-L", "bench-client", *args], capture_output=True, text=True, env=env).stdout


def first_paint(env) -> float:
    t0 = time.monotonic()
    tmux(env, "new-session", "-d", "-s", "b", "-x", "80", "-y", "24",
         f"{sys.executable} -m fieldtui --config {env['BENCH_CONFIG']}")
    while "EQUIPMENT" not in tmux(env, "capture-pane", "-p", "-t", "b"):
        time.sleep(0.005)
        assert time.monotonic() - t0 < 30
    return time.monotonic() - t0


def test_first_paint_idle_cpu_and_bytes(env, tmp_path):
    try:
        cold = first_paint(env)            # the service is started on demand
        tmux(env, "kill-session", "-t", "b")
        time.sleep(1.0)
        warm_runs = []
        for _ in range(3):
            warm_runs.append(first_paint(env))
            tmux(env, "kill-session", "-t", "b")
            time.sleep(0.5)
        warm = sorted(warm_runs)[1]
        # Idle on the Equipment screen.
        first_paint(env)
        time.sleep(3.0)
        client = int(tmux(env, "list-panes", "-t", "b", "-F", "#{pane_pid}").strip())
        service = int(Path(env["FIELDTUI_RUNTIME_DIR"], "rig.lock").read_text().strip())
        out = tmp_path / "pane.bytes"
        tmux(env, "pipe-pane", "-o", "-t", "b", f"cat >> {out}")
        c0, s0, t0 = cpu_seconds(client), cpu_seconds(service), time.monotonic()
        time.sleep(IDLE_S)
        c1, s1, t1 = cpu_seconds(client), cpu_seconds(service), time.monotonic()
        tmux(env, "pipe-pane", "-t", "b")
        n = out.stat().st_size if out.exists() else 0
    finally:
        tmux(env, "kill-server")
    dt = t1 - t0
    record("client", {"first_paint_s_service_not_running": round(cold, 2),
                      "first_paint_s_service_running": round(warm, 2),
                      "idle_cpu_pct_client": round(100 * (c1 - c0) / dt, 2),
                      "idle_cpu_pct_service": round(100 * (s1 - s0) / dt, 2),
                      "idle_bytes_per_s": round(n / dt, 1), "idle_window_s": round(dt, 1)})
