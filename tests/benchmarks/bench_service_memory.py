"""Does the rig service's memory stay flat over a long night? RSS while guiding.

    .venv/bin/python tests/benchmarks/bench_service_memory.py [--hours 12] [--python-path DIR]

Starts ``fieldtui service run --fast`` as a subprocess in a private runtime
and state folder, starts guiding through the client protocol and lets the
virtual clock run for ``--hours`` simulated hours of guiding, reading the
service's resident memory (VmRSS, from /proc) after 1 h and at the end, and
every simulated half hour in between.  A client stays attached the whole
time (it reads every event), as the terminal client would.

Prints the RSS at 1 h and at the end and their difference, and writes every
sample to ``bench-results/service_memory.json``.  Target: flat (the growth
from 1 h to 12 h is within a few MB: histories are bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_service_ping import fast_service, guiding_client  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


async def measure(hours: float, sock: Path, pid: int) -> dict:
    client, drain = await guiding_client(sock)
    samples: list[dict] = []
    t_wall = time.monotonic()
    try:
        while (st := await client.command("guide.state", minutes=0.0, timeout=60))["state"] != "guiding":
            await asyncio.sleep(0.5)
        t0 = (await client.command("ping", timeout=60))["clock"]
        next_h = 0.5
        while True:
            await asyncio.sleep(1.0)
            now = (await client.command("ping", timeout=60))["clock"]
            h = (now - t0) / 3600.0
            if h >= next_h or h >= hours:
                st = await client.command("guide.state", minutes=0.0, timeout=60)
                samples.append({"sim_h": round(h, 3), "rss_mb": round(rss_mb(pid), 1),
                                "wall_s": round(time.monotonic() - t_wall, 1),
                                "state": st["state"], "frames": st["frames"],
                                "rms_total_arcsec": st.get("rms_total_arcsec")})
                print(json.dumps(samples[-1]), flush=True)
                next_h += 0.5
            if h >= hours:
                break
    finally:
        drain.cancel()
        await client.close()
    at1 = min(samples, key=lambda s: abs(s["sim_h"] - 1.0))
    end = samples[-1]
    return {"hours": hours, "rss_mb_1h": at1["rss_mb"], "rss_mb_end": end["rss_mb"],
            "growth_mb_1h_to_end": round(end["rss_mb"] - at1["rss_mb"], 1),
            "wall_s": end["wall_s"], "samples": samples}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=12.0, help="simulated hours of guiding")
    ap.add_argument("--python-path", help="run the service from this source tree")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "service_memory.json"))
    args = ap.parse_args(argv)
    with fast_service(args.python_path) as (sock, pid):
        res = asyncio.run(measure(args.hours, sock, pid))
    res["python_path"] = args.python_path or str(ROOT)
    print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


def test_service_memory_over_a_night() -> None:
    """``pytest tests/benchmarks/bench_service_memory.py -s -n 0``: 12 simulated hours
    (about an hour of wall time; FIELDTUI_BENCH_HOURS sets fewer)."""
    hours = os.environ.get("FIELDTUI_BENCH_HOURS", "12")
    assert main(["--hours", hours]) == 0


if __name__ == "__main__":
    sys.exit(main())
