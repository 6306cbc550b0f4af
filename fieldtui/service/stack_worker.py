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

A job with ``"calibration": "library"`` (a set the capture finished) first
indexes ``library_root`` in the frame library (``options.library``) and takes
its calibration frames from there by the field guide's rules
(:meth:`fieldtui.library.Library.calibration_for`); the masters are looked up
and kept there as for any job with a library.

``python -m fieldtui.service.stack_worker --live`` is the live stack
(:func:`live_main`): it reads ``{"add": PATH, "library": DB, "root": DATA}`` lines, one light
at a time as the capture saves them, and answers each with
``{"event": "live", "file", "accepted", "reason", "frames", "masters", "thumb"}``.

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


def options_to_json(opts) -> dict[str, Any]:
    """The fields of a :class:`~fieldtui.stacking.StackOptions` that differ from the defaults,
    as JSON (the inverse of :func:`options_from`); paths made absolute."""
    from dataclasses import asdict, fields

    from ..stacking import StackOptions
    default = StackOptions()
    out: dict[str, Any] = {}
    for f in fields(StackOptions):
        v = getattr(opts, f.name)
        if v == getattr(default, f.name):
            continue
        if f.name in ("reference", "master_bias", "master_dark", "master_flat", "save_masters", "library",
                      "scratch") and v:
            v = str(Path(v).resolve())
        out[f.name] = asdict(v) if hasattr(v, "__dataclass_fields__") else v
    return out


def limit_threads(n: int) -> None:
    """Use at most ``n`` threads in this process: the pipeline's pool (its ``threads``
    option), the combination kernel (:func:`fieldtui.stacking.combine.set_threads`; numba's
    too when its fallback runs) and OpenCV (both default to every core)."""
    n = max(1, int(n))
    from ..stacking.combine import set_threads
    set_threads(n)
    try:
        import cv2
        cv2.setNumThreads(n)
    except ImportError:
        pass


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
        limit_threads(opts.threads)
        if job.get("calibration") == "library" and opts.library:
            job = dict(job) | _library_calibration(job, opts.library)
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
            "shape": list(res.image.shape), "thumb": thumbnail(img8), "masters": res.masters}


def _library_calibration(job: dict[str, Any], db: str) -> dict[str, list[str]]:
    """The calibration sets the library gives the job's first light (after indexing
    ``library_root``); sets the job names itself are kept."""
    from ..library import Library, read_record
    from ..stacking.pipeline import frame_files
    lib = Library(db)
    try:
        if job.get("library_root"):
            lib.scan(job["library_root"])
        lights = frame_files(job.get("lights") or [])
        rec = next((r for r in (read_record(p) for p in lights if p.is_file()) if r is not None), None)
        found = lib.calibration_for(rec) if rec else {}
    finally:
        lib.close()
    return {k: v for k, v in found.items() if v and not job.get(k)}


def live_main(lines=None) -> int:
    """The live stack's loop: each ``{"add": PATH, "library": DB}`` line is read, calibrated
    with the library's masters (looked up at the first frame), added to a
    :class:`~fieldtui.stacking.live.LiveStack` and answered with a ``live`` message and a
    thumbnail of the stack so far. A frame that cannot be read or matched is answered
    ``accepted: false`` with its reason; the stack goes on."""
    import numpy as np

    from ..imaging.io import FrameReadError, read_frame
    from ..stacking import calibrate as cal
    from ..stacking.live import LiveStack
    from ..stacking.pipeline import library_masters
    from ..stacking.preview import preview as make_preview

    limit_threads(1)   # a preview: one core at most, whatever else runs
    live: LiveStack | None = None
    masters = None
    info: dict[str, Any] = {}
    shape = None
    for line in lines if lines is not None else sys.stdin:
        msg = json.loads(line)
        if msg.get("end"):
            break
        path = msg.get("add")
        out: dict[str, Any] = {"event": "live", "file": path, "accepted": False}
        try:
            f = read_frame(path)
        except (FrameReadError, OSError) as exc:
            _emit(out | {"reason": getattr(exc, "detail", None) or str(exc),
                         "frames": live.frames if live else 0})
            continue
        if masters is None:
            shape = f.data.shape
            masters, info, warns = (library_masters(msg["library"], f, root=msg.get("root"))
                                    if msg.get("library")
                                    else (cal.Masters(bayer=f.bayer), {}, []))
            live = LiveStack(f.bayer)
            out["warnings"] = warns
        if f.data.ndim != 2 or f.data.shape != shape:
            _emit(out | {"reason": "not the size of the set's first frame", "frames": live.frames})
            continue
        r = cal.calibrate(f.data, masters, light_exposure=f.exposure, white_level=f.white_level)
        res = live.add(r.data, white_level=f.white_level)
        out |= {"accepted": res.accepted, "reason": res.reason, "frames": res.frames,
                "masters": sorted(info), "fwhm": (res.quality or {}).get("fwhm")}
        img = live.image()
        if img is not None and res.accepted:
            img = np.where(np.isfinite(img), img, np.nanmedian(img)).astype(np.float32)
            out["thumb"] = thumbnail(make_preview(img))
        _emit(out)
    return 0


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
    if "--live" in sys.argv[1:]:
        return live_main()
    line = sys.stdin.readline()
    if not line:
        return 0
    job = json.loads(line)
    _emit(run_job(job))
    return 0


if __name__ == "__main__":
    sys.exit(main())
