"""``fieldtui service start|stop|status|run|resume``: the rig service that owns the night."""

from __future__ import annotations

import argparse

from ..config import load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``action`` and ``--fast``."""
    p.add_argument("action", choices=["start", "stop", "status", "run", "resume"],
                   help="start (detached), stop, status, run in the foreground, or resume the "
                        "guiding an interrupted service was doing")
    p.add_argument("--fast", action="store_true", help="simulated rig on the virtual clock")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done; 1 the service could not start or had nothing to resume;
    3 ``status`` or ``resume`` with no service."""
    from ..service import daemon
    cfg = load_config(args.config)
    return daemon.main(args.action, cfg, config_path=args.config, fast=args.fast)
