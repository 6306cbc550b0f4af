"""``fieldtui check [--json] [--fast]``: every device, the disk, the clock and the site."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from ..config import load_config
from .running import config_notice

DESCRIPTION = ("Check every device (found, connected, answering, with what it answered), free disk "
               "against tonight's plan, clock, site and sidereal time, CPU load and temperature. "
               "When a rig service runs, it runs the check (it owns the devices). Exit status 1 "
               "when a check fails.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--json`` and ``--fast``."""
    p.add_argument("--json", action="store_true",
                   help="print {ok, via, checks: [{name, ok, detail, fix}], "
                        "attached: [{kind, where, what, answers}]}")
    p.add_argument("--fast", action="store_true", help="simulated rig on the virtual clock (in-process)")


def render_text(result: dict[str, Any], color: bool) -> str:
    """The check result as lines of text: ``ok``/``FAIL``, name, detail, and the fix of a failure.
    With ``color``, marks are red (bright for failures) in true colour."""
    lines = []
    for c in result["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        if color:
            mark = f"\x1b[38;2;255;0;0m{mark}\x1b[0m" if not c["ok"] else f"\x1b[38;2;135;0;0m{mark}\x1b[0m"
        lines.append(f"{mark} {c['name']:<13} {c['detail']}")
        if c["fix"] and not c["ok"]:
            lines.append(f"     {'':<13} → {c['fix']}")
    for a in result.get("attached") or []:
        tail = (f": {a['answers']} mount (to use it: [mount] driver = \"{a['answers']}\", "
                f"port = \"{a['where']}\")" if a.get("answers") else "")
        lines.append(f"     {'attached':<13} {a['kind']} {a['where']} {a['what']}{tail}")
    lines.append("all checks passed" if result["ok"] else
                 f"{sum(not c['ok'] for c in result['checks'])} check(s) failed")
    return "\n".join(lines)


async def _check_through_service() -> tuple[dict[str, Any], dict[str, Any]] | None:
    """When a rig service owns the devices, it runs the check (never open a device twice).
    Returns (check result, service status) or None when no service answers."""
    from ..service.client import RigClient, ServiceUnavailable
    client = RigClient()
    try:
        await client.connect(timeout=2.0)
    except ServiceUnavailable:
        return None
    try:
        status = await client.command("service.status", timeout=10.0)
        return await client.command("check", timeout=120.0), status
    finally:
        await client.close()


async def check(cfg: Any, *, fast: bool, config_path: str | None = None) -> dict[str, Any]:
    """Run the checks through the running service, or in-process when none runs (or ``fast``).
    The result has ``via`` ("rig service" or "in-process"), ``seconds`` and, through a service,
    ``service`` (one line naming it and its config)."""
    from ..clock import make_clock
    from ..service.check import run_checks
    from ..service.session import Session
    started = time.monotonic()
    through = None if fast else await _check_through_service()
    if through is None:
        session = Session(cfg, make_clock(fast))
        try:
            result = await run_checks(session)
        finally:
            await session.stop()
        result["via"] = "in-process"
    else:
        result, status = through
        result["via"] = "rig service"
        result["service"] = config_notice(status, config_path)
        result["service_config"] = status.get("config") or []
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when every check passed, 1 otherwise."""
    cfg = load_config(args.config)
    result = asyncio.run(check(cfg, fast=args.fast, config_path=args.config))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        if "service" in result:
            print(result["service"])
        print(render_text(result, color=sys.stdout.isatty()))
    return 0 if result["ok"] else 1
