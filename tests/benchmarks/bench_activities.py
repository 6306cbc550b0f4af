"""What the activity pattern costs while guiding: flight-record writes and
ActivityStatus events per simulated hour, next to the guide points.

    .venv/bin/python -m pytest tests/benchmarks/bench_activities.py -s -n 0
"""

from __future__ import annotations

import asyncio
import time

from fieldtui.clock import VirtualClock
from fieldtui.config import load_config
from fieldtui.events import Command
from fieldtui.service.session import Session

from .bench_core import record

MINUTES = 30.0


def test_recorder_and_status_events_while_guiding(tmp_path):
    cfg = load_config(overrides={"storage": {"data_root": str(tmp_path / "astro")}})

    async def run() -> dict:
        session = Session(cfg, VirtualClock(1_800_000_000.0), record_path=tmp_path / "service-state.json")
        await session.start()
        q = session.subscribe()
        kinds: dict[str, int] = {}
        sizes: dict[str, int] = {}

        async def drain() -> None:
            while True:
                ev = await q.get()
                kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
                sizes[ev.kind] = sizes.get(ev.kind, 0) + len(str(ev.to_dict()))

        drainer = asyncio.ensure_future(drain())
        try:
            await session.command(Command("guide.start", {}))
            while session.guider.state != "guiding":
                await session.clock.sleep(1.0)
            writes0, wall0 = session.recorder.writes, time.monotonic()
            kinds.clear()
            sizes.clear()
            await session.clock.sleep(MINUTES * 60.0)
            per_h = 60.0 / MINUTES
            st = kinds.get("ActivityStatus", 0)
            return {"simulated_min": MINUTES, "wall_s": round(time.monotonic() - wall0, 1),
                    "record_writes_per_h": round((session.recorder.writes - writes0) * per_h),
                    "activity_status_per_h": round(st * per_h),
                    "activity_status_mean_bytes": round(sizes.get("ActivityStatus", 0) / max(st, 1)),
                    "guide_points_per_h": round(kinds.get("GuidePoint", 0) * per_h),
                    "state": session.guider.state}
        finally:
            drainer.cancel()
            await session.stop()

    figures = asyncio.run(run())
    assert figures["state"] == "guiding"
    record("activities", figures)
