"""Where a stacking run's time goes: wall and CPU seconds (user and system), minor page
faults and peak resident memory of each phase of :func:`fieldtui.stacking.stack`.

Run on a set the stacking benchmark wrote (``bench_stacking.py`` with
``FIELDTUI_BENCH_DIR``), in this process, with the run's defaults and the first light as
reference (as the benchmark does)::

    .venv/bin/python tests/benchmarks/bench_stacking_phases.py /tmp/b/stackbench_small_mono

A phase runs from its first progress report to the next phase's (``master bias`` from the
first bias read, ``register`` from the first match, ``write`` the FITS). The machine is
shared: with a load above its two cores the wall times say more about the others than
about the run, the CPU seconds less so.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import threading
import time
from pathlib import Path


def _usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def main(root: Path) -> None:
    from fieldtui.stacking.pipeline import StackOptions, stack, write_stack

    marks: list[tuple[str, float, tuple]] = []
    peaks: dict[str, float] = {}
    stage = ["start"]

    def sample() -> None:  # resident memory every 5 ms, the highest of each phase
        while True:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * resource.getpagesize() / 2**20
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss)
            time.sleep(0.005)

    def progress(name: str, done: int, total: int) -> None:
        if name != stage[0]:
            marks.append((name, time.perf_counter(), _usage()))
            stage[0] = name

    threading.Thread(target=sample, daemon=True).start()
    marks.append(("start", time.perf_counter(), _usage()))
    first = sorted((root / "lights").iterdir())[0]
    res = stack([root / "lights"], darks=[root / "darks"], flats=[root / "flats"], biases=[root / "biases"],
                options=StackOptions(reference=str(first)), progress=progress)
    stage[0] = "write"
    marks.append(("write", time.perf_counter(), _usage()))
    with tempfile.TemporaryDirectory() as tmp:
        write_stack(res, Path(tmp) / "stack.fits")
    marks.append(("end", time.perf_counter(), _usage()))
    print(f"{'phase':14s} {'wall s':>7s} {'user s':>7s} {'sys s':>7s} {'faults':>8s} {'peak MB':>8s}")
    for (name, t, u), (_, t2, u2) in zip(marks, marks[1:]):
        print(f"{name:14s} {t2 - t:7.2f} {u2[0] - u[0]:7.2f} {u2[1] - u[1]:7.2f} {u2[2] - u[2]:8d} "
              f"{peaks.get(name, 0.0):8.0f}")
    t, u = marks[0][1], marks[0][2]
    t2, u2 = marks[-1][1], marks[-1][2]
    print(f"{'total':14s} {t2 - t:7.2f} {u2[0] - u[0]:7.2f} {u2[1] - u[1]:7.2f} {u2[2] - u[2]:8d} "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench_stacking_phases.py SET_FOLDER (with lights/ darks/ flats/ biases/)")
    main(Path(sys.argv[1]))
