"""The ``fieldtui`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Callable

from .config import ConfigError, load_config, user_config_path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fieldtui",
        description="Run an astrophotography night from a terminal. With no command, opens the "
                    "terminal client (starting the rig service if it is not running).")
    p.add_argument("--config", metavar="FILE", help="a config file on top of the defaults and your own")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="check every device, the disk, the clock and the site")
    c.add_argument("--json", action="store_true", help="print {ok, checks: [{name, ok, detail, fix}]}")
    c.add_argument("--fast", action="store_true", help="simulated rig on the virtual clock")
    c.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)

    sub.add_parser("analyze", help="star metrics and exposure advice for FITS and raw files",
                   add_help=False)
    sub.add_parser("guide", help="headless autoguiding (simulated rig with --fast)", add_help=False)

    s = sub.add_parser("service", help="the rig service that owns the night")
    s.add_argument("action", choices=["start", "stop", "status", "run"],
                   help="start (detached), stop, status, or run in the foreground")
    s.add_argument("--fast", action="store_true", help="simulated rig on the virtual clock")
    s.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)

    f = sub.add_parser("fault", help="switch a fault on in the running simulated rig (testing, demos)")
    f.add_argument("device", choices=["guide_camera", "main_camera", "mount", "guide_port", "focuser", "sky"])
    f.add_argument("fault", choices=["drop", "disconnect", "hang", "slow", "garbage", "clouds", "clear"],
                   help="drop N frames, disconnect, hang, slow (seconds), garbage answers, "
                        "clouds (seconds, device 'sky'), clear all faults")
    f.add_argument("value", nargs="?", default="1",
                   help="frames to drop, seconds for slow/clouds, 0 to switch a fault off")

    sub.add_parser("config-path", help="print where your own config file goes")
    return p


def _delegate(argv: list[str], name: str, loader: Callable[[], Callable[[list[str]], int]]) -> int:
    i = argv.index(name)
    rest = argv[:i] + argv[i + 1:]
    return loader()(rest)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Commands with their own parsers take the rest of the line as it is.
    first = next((a for a in argv if not a.startswith("-") and (argv.index(a) == 0 or argv[argv.index(a) - 1] != "--config")), None)
    try:
        if first == "analyze":
            from .imaging import analyze
            return _delegate(argv, "analyze", lambda: analyze.main)
        if first == "guide":
            from .guiding import cli as guide_cli
            return _delegate(argv, "guide", lambda: guide_cli.main)
        args = _parser().parse_args(argv)
        if args.command == "config-path":
            print(user_config_path())
            return 0
        cfg = load_config(args.config)
        if args.command == "check":
            from .service.check import check_command
            return asyncio.run(check_command(cfg, as_json=args.json, fast=args.fast))
        if args.command == "fault":
            return _fault(args.device, args.fault, args.value)
        if args.command == "service":
            from .service import daemon
            return daemon.main(args.action, cfg, config_path=args.config, fast=args.fast)
        from .ui import run_client
        return run_client(cfg, config_path=args.config)
    except ConfigError as exc:
        print(f"fieldtui: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _fault(device: str, fault: str, value: str) -> int:
    from .service.client import CommandFailed, RigClient, ServiceUnavailable

    async def go() -> str:
        c = RigClient()
        await c.connect()
        try:
            v: float | bool = float(value) if fault in ("drop", "slow", "clouds") else value not in ("0", "off", "false")
            return await c.command("fault", device=device, fault=fault, value=v)
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


if __name__ == "__main__":
    sys.exit(main())
