"""The ``fieldtui`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Callable

from .config import ConfigError, load_config, user_config_path

if TYPE_CHECKING:
    from pathlib import Path

    from .config import Config


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
            return _delegate(argv, "analyze", lambda: _with_simulated_frames(analyze.main))
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
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _with_simulated_frames(analyze_main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """``fieldtui analyze --simulated KIND``: take a frame with the simulated DSLR
    (its raw file, through the same reader as a camera's) and analyse it."""
    def run(argv: list[str]) -> int:
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--simulated", choices=["light", "flat", "dark", "bias"])
        p.add_argument("--exposure", type=float)
        p.add_argument("--iso", type=int)
        p.add_argument("--keep", metavar="DIR")
        p.add_argument("--config")
        extra, rest = p.parse_known_args(argv)
        if extra.simulated is None:
            return analyze_main(rest)
        import tempfile
        from pathlib import Path

        cfg = load_config(extra.config)
        exposure = extra.exposure if extra.exposure is not None else (
            cfg.plan.light_exposure_s if extra.simulated in ("light", "dark") else 1.0)
        folder = Path(extra.keep) if extra.keep else Path(tempfile.mkdtemp(prefix="fieldtui-sim-"))
        path = folder / f"sim_{extra.simulated}_{exposure:g}s_ISO{extra.iso or cfg.main_camera.iso}.dng"
        asyncio.run(_simulated_frame(cfg, extra.simulated, exposure, extra.iso, path))
        if extra.simulated != "light" and "--kind" not in rest:
            rest = [*rest, "--kind", extra.simulated]
        try:
            return analyze_main([*rest, str(path)])
        finally:
            if not extra.keep:
                path.unlink(missing_ok=True)
                folder.rmdir()
    return run


async def _simulated_frame(cfg: "Config", kind: str, exposure: float, iso: int | None, path: "Path") -> None:
    from .clock import VirtualClock
    from .devices.sim import SimRig
    clock = VirtualClock()
    rig = SimRig(cfg, clock)
    try:
        await rig.main_camera.connect()
        await rig.main_camera.expose(exposure, iso, path=path, kind=kind)
    finally:
        clock.close()


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
