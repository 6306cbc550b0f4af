"""The stacking worker's child process: ``python -m fieldtui.service.stack_worker``.

It reads one job as a JSON line on stdin::

    {"id": 1, "lights": [...], "darks": [...], "flats": [...], "biases": [...],
     "dark_flats": [...], "options": {...}, "out": "/night/stacks/set1.fits"}

runs :func:`fieldtui.stacking.stack` on it and answers JSON lines on stdout:

- ``{"event": "progress", "id", "stage", "done", "total", "elapsed_s", "left_s"}``
  at most every :data:`PROGRESS_EVERY_S` seconds (and at each stage's end);
  ``left_s`` is the time left in the current stage (from its rate so far),
  ``null`` until one step is done;
- ``{"event": "done", "id", "output", "preview", "frames_used", "frames_rejected",
  "frames", "seconds", "warnings", "shape", "thumb"}`` (``thumb``: see :func:`thumbnail`) — then it exits with status 0;
- ``{"event": "error", "id", "error"}`` when no stack could be made (status 0:
  the job failed, not the worker).

The parent (:class:`fieldtui.service.stacking.StackWorker`) starts it niced;
SIGTERM ends it at once (the default action), which is how a job is cancelled.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

PROGRESS_EVERY_S = 0.5
#: the thumbnail sent back for the terminal preview (pixels a side, at most)
THUMB_SIDE = 240


def options_from(d: dict[str, Any]):
    """:class:`~fieldtui.stacking.StackOptions` from a JSON dict; ``rejection`` as
    ``{"kind", "low", "high"}``. Raises ValueError on an unknown option."""
    from dataclasses import fields

    from ..stacking import Rejection, StackOptions
    known = {f.name for f in fields(StackOptions)}
    d = dict(d or {})
    bad = sorted(set(d) - known)
    if bad:
        raise ValueError(f"unknown stacking option(s): {', '.join(bad)}")
    for k in ("rejection", "master_rejection"):
        if isinstance(d.get(k), dict):
            d[k] = Rejection(**d[k])
    return StackOptions(**d)


def _emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Stack one job, emitting progress; returns the ``done`` or ``error`` message."""
    from ..atomic import write_bytes
    from ..stacking import StackError, stack, write_stack
    from ..stacking.preview import png_bytes, preview as make_preview

    jid = job.get("id")
    t0 = time.monotonic()
    stage_t0 = {"stage": None, "t": t0}
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != stage_t0["stage"]:
            stage_t0.update(stage=stage, t=now)
        if now - last[0] < PROGRESS_EVERY_S and done < total:
            return
        last[0] = now
        el = now - stage_t0["t"]
        left = el / done * (total - done) if done > 0 else None
        _emit({"event": "progress", "id": jid, "stage": stage, "done": done, "total": total,
               "elapsed_s": round(now - t0, 2), "left_s": None if left is None else round(left, 1)})

    try:
        opts = options_from(job.get("options") or {})
        res = stack(job.get("lights") or [], darks=job.get("darks") or [], flats=job.get("flats") or [],
                    biases=job.get("biases") or [], dark_flats=job.get("dark_flats") or [],
                    options=opts, progress=progress)
        out = Path(job["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        write_stack(res, out)
        img8 = make_preview(res.image)
        preview = write_bytes(out.with_suffix(".png"), png_bytes(img8))
    except (StackError, ValueError, OSError) as exc:
        return {"event": "error", "id": jid, "error": str(exc) or type(exc).__name__}
    return {"event": "done", "id": jid, "output": str(out), "preview": str(preview),
            "frames_used": len(res.used), "used": res.used, "frames_rejected": res.rejected,
            "frames": res.quality, "seconds": round(res.seconds, 2), "warnings": res.warnings,
            "shape": list(res.image.shape), "thumb": thumbnail(img8)}


def thumbnail(img8, max_side: int = THUMB_SIDE) -> dict[str, Any]:
    """A grey uint8 thumbnail of a preview (``(H, W)`` or ``(H, W, 3)``), block-averaged
    to at most ``max_side`` pixels a side, as ``{"width", "height", "pixels"}`` (base64),
    the frame previews' format (``ui.widgets.frameview.decode_preview``)."""
    import base64

    import numpy as np
    a = np.asarray(img8, np.float32)
    if a.ndim == 3:
        a = a.mean(axis=2)
    k = max(1, -(-max(a.shape) // max_side))
    h, w = a.shape[0] // k, a.shape[1] // k
    a = a[:h * k, :w * k].reshape(h, k, w, k).mean(axis=(1, 3))
    px = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return {"width": w, "height": h, "pixels": base64.b64encode(px.tobytes()).decode()}


def main() -> int:
    line = sys.stdin.readline()
    if not line:
        return 0
    job = json.loads(line)
    _emit(run_job(job))
    return 0


if __name__ == "__main__":
    sys.exit(main())
