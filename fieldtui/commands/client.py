"""``fieldtui`` with no subcommand: the terminal client (starts the rig service when none runs)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from ..config import load_config
from .running import config_notice, service_status


def run(args: argparse.Namespace) -> int:
    """Open the Textual client; with a service already running and ``--config`` given, first
    say that the service keeps the config it was started with."""
    cfg = load_config(args.config)
    if args.config:
        status = asyncio.run(service_status())
        if status is not None:
            print(f"fieldtui: {config_notice(status, args.config)}", file=sys.stderr)
            time.sleep(2.0)
    from ..ui import run_client
    return run_client(cfg, config_path=args.config)
