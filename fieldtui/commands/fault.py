"""``fieldtui fault DEVICE FAULT [VALUE]``: switch a fault on in the running simulated rig."""

from __future__ import annotations

import argparse
import asyncio
import sys

DESCRIPTION = ("Switch a fault on in the running simulated rig (testing, demos): drop N frames, "
               "disconnect, hang, slow SECONDS, garbage answers, sky clouds SECONDS, sky clear.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``device``, ``fault`` and an optional ``value``."""
    p.add_argument("device", choices=["guide_camera", "main_camera", "mount", "guide_port", "focuser", "sky"])
    p.add_argument("fault", choices=["drop", "disconnect", "hang", "slow", "garbage", "clouds", "clear"],
                   help="drop N frames, disconnect, hang, slow (seconds), garbage answers, "
                        "clouds (seconds, device 'sky'), clear all faults")
    p.add_argument("value", nargs="?", default="1",
                   help="frames to drop, seconds for slow/clouds, 0 to switch a fault off")


def run(args: argparse.Namespace) -> int:
    """Exit status 1 when no service runs or it refuses the fault."""
    from ..service.client import CommandFailed, RigClient, ServiceUnavailable
    fault, value = args.fault, args.value

    async def go() -> str:
        c = RigClient()
        await c.connect()
        try:
            v: float | bool = (float(value) if fault in ("drop", "slow", "clouds")
                               else value not in ("0", "off", "false"))
            return await c.command("fault", device=args.device, fault=fault, value=v)
        finally:
            await c.close()

    try:
        print(asyncio.run(go()))
    except ServiceUnavailable:
        print("fieldtui: no rig service is running (start it with `fieldtui service start`)", file=sys.stderr)
        return 1
    except (CommandFailed, ValueError) as exc:
        print(f"fieldtui: {exc}", file=sys.stderr)
        return 1
    return 0
