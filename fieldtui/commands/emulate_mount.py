"""``fieldtui emulate-mount --protocol lx200|nexstar|synscan``: a serial mount on a pseudo-terminal."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

DESCRIPTION = ("Open a pseudo-terminal that answers like a mount's hand controller (Meade LX200, "
               "Celestron NexStar or SkyWatcher SynScan), driven by the simulated mount: tracking, "
               "periodic error, slews that take time, guide pulses. The first line printed is the "
               "device path to give a driver (this app's `[mount] port`, INDI, a planetarium). "
               "Runs until interrupted.")
EPILOG = ("Faults for testing a driver: --garbage-rate, --drop-rate, --slow-rate (each a "
          "probability per answer, 0-1) and --slow-s (how late a slow answer comes).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--protocol`` and the fault rates."""
    p.add_argument("--protocol", required=True, choices=["lx200", "nexstar", "synscan"],
                   help="the protocol to speak")
    p.add_argument("--garbage-rate", type=float, default=0.0, metavar="P",
                   help="probability that an answer is garbled (default 0)")
    p.add_argument("--drop-rate", type=float, default=0.0, metavar="P",
                   help="probability that an answer is never sent (default 0)")
    p.add_argument("--slow-rate", type=float, default=0.0, metavar="P",
                   help="probability that an answer comes late (default 0)")
    p.add_argument("--slow-s", type=float, default=2.0, metavar="SECONDS",
                   help="how late a slow answer comes (default 2)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random faults")
    p.add_argument("--trace", action="store_true", help="print each command and its answer on stderr")


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when interrupted, 2 on a bad argument."""
    for name in ("garbage_rate", "drop_rate", "slow_rate"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            print(f"fieldtui: --{name.replace('_', '-')}: expected a probability 0-1, found {v:g}",
                  file=sys.stderr)
            return 2
    if args.slow_s < 0:
        print(f"fieldtui: --slow-s: expected seconds >= 0, found {args.slow_s:g}", file=sys.stderr)
        return 2
    from ..clock import RealClock
    from ..config import load_config
    from ..devices.emulator import EmulatorFaults, MountEmulator
    from ..devices.sim import SimRig

    cfg = load_config(args.config)
    faults = EmulatorFaults(garbage_rate=args.garbage_rate, drop_rate=args.drop_rate,
                            slow_rate=args.slow_rate, slow_s=args.slow_s, seed=args.seed)

    async def go() -> None:
        rig = SimRig(cfg, RealClock())
        def trace(cmd: bytes, answer: bytes) -> None:
            print(f"{cmd!r} -> {answer!r}", file=sys.stderr, flush=True)
        emu = MountEmulator(args.protocol, rig.mount, faults=faults, trace=trace if args.trace else None)
        path = await emu.start()
        print(path, flush=True)
        print(f"{args.protocol} mount emulator on {path} (simulated mount at RA {cfg.plan.ra_deg:g}°, "
              f"Dec {cfg.plan.dec_deg:g}°); Ctrl-C ends it", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await emu.close()

    asyncio.run(go())
    return 0
