"""The ``fieldtui`` command line: one module per subcommand.

Each module in this package has ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status), and may have ``DESCRIPTION`` and
``EPILOG``; its one-line help is in ``COMMANDS`` so that ``fieldtui --help``
imports no command module.
``args.config`` is the ``--config FILE`` given before or after the
subcommand (None when absent). With no subcommand, ``fieldtui`` opens the
terminal client.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from .. import __version__
from ..config import ConfigError

#: subcommand name → (module in this package, one-line help), in the order ``--help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("check", "check every device, the disk, the clock and the site"),
    "analyze": ("analyze", "star metrics and exposure advice for FITS and raw files"),
    "stack": ("stack", "calibrate, register and stack lights into a FITS and a preview"),
    "guide": ("guide", "headless autoguiding (simulated rig with --fast)"),
    "guidelog": ("guidelog", "summarise PHD2-format guide logs: RMS, calibrations, events per run"),
    "plan": ("plan", "write a capture plan (plan new M31), check one, or show it through the night"),
    "capture": ("capture", "run a capture plan headless (resumes after an interruption)"),
    "library": ("library", "index the frames under a folder (SQLite) and check their calibration"),
    "service": ("service", "the rig service that owns the night: start, stop, status, run"),
    "fault": ("fault", "switch a fault on in the running simulated rig (testing, demos)"),
    "emulate-mount": ("emulate_mount", "a serial mount (LX200, NexStar, SynScan) on a pseudo-terminal"),
    "config-path": ("config_path", "print where your own config file goes"),
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, with the arguments of subcommand ``only`` (only its module is
    imported: ``fieldtui guide`` never loads Textual, the client never loads the engines)."""
    p = argparse.ArgumentParser(
        prog="fieldtui",
        description="Run an astrophotography night from a terminal. With no command, opens the "
                    "terminal client (starting the rig service if it is not running).")
    p.add_argument("--version", action="version", version=f"fieldtui {__version__}")
    p.add_argument("--config", metavar="FILE", help="a config file on top of the defaults and your own")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        if name != only:
            sub.add_parser(name, help=help_)
            continue
        mod = _module(name)
        sp = sub.add_parser(name, help=help_, description=getattr(mod, "DESCRIPTION", help_),
                            epilog=getattr(mod, "EPILOG", None))
        sp.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="a config file on top of the defaults and your own")
        mod.add_arguments(sp)
        sp.set_defaults(run=mod.run)
    return p


def _subcommand(argv: list[str]) -> str | None:
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--config":
            skip = True
            continue
        if a.startswith("-"):
            continue
        return a if a in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the subcommand; returns the exit status
    (2 for a config error, printed as one line naming the file and key)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(only=_subcommand(argv)).parse_args(argv)
        if args.command is None:
            from . import client
            return client.run(args)
        return args.run(args)
    except ConfigError as exc:
        print(f"fieldtui: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
