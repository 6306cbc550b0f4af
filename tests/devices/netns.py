"""Run INDI tests where indiserver cannot be reached from beyond this machine.

indiserver listens on every interface (Debian's 1.9.9 has no listen-address option),
so a test that starts one re-runs its body in a network namespace of its own
(``unshare --net --map-root-user``, loopback up): nothing started there is reachable
from any other host or from the rest of this one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

IN_PRIVATE_NET = os.environ.get("FIELDTUI_PRIVATE_NETNS") == "1"
INSIDE_ONLY = pytest.mark.skipif(not IN_PRIVATE_NET, reason="runs inside its private network namespace "
                                 "(started by the file's test_*_in_a_private_network_namespace)")
OUTSIDE_ONLY = pytest.mark.skipif(IN_PRIVATE_NET, reason="already inside the private network namespace")


def have(*programs: str) -> bool:
    return all(shutil.which(p) is not None for p in programs)


def require_indi(*programs: str) -> pytest.MarkDecorator:
    """Skip without INDI (``apt-get install indi-bin``); under CI a missing INDI is an error."""
    ok = have("indiserver", *programs)
    if not ok and os.environ.get("CI"):
        raise RuntimeError("INDI (indi-bin) is not installed, and CI must run the INDI tests")
    return pytest.mark.skipif(not ok, reason=f"needs INDI ({', '.join(('indiserver',) + programs)}; "
                              "apt-get install indi-bin)")


def private_net_works() -> bool:
    try:
        r = subprocess.run(["unshare", "--net", "--map-root-user", "ip", "link", "set", "lo", "up"],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def run_inside(*tests: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run pytest on ``tests`` (node ids) in a private network namespace with loopback up;
    skips the caller when no such namespace can be made here."""
    if not private_net_works():
        pytest.skip("no private network namespace here (unshare --net): indiserver would listen "
                    "beyond loopback, so the INDI tests are not run")
    return subprocess.run(["unshare", "--net", "--map-root-user", "sh", "-c",
                           'ip link set lo up && exec "$0" -m pytest -o addopts= -q -p no:cacheprovider "$@"',
                           sys.executable, *tests],
                          env={**os.environ, "FIELDTUI_PRIVATE_NETNS": "1"}, capture_output=True, text=True,
                          timeout=timeout)
