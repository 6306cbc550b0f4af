"""The whole stacking run on files: masters, calibration, quality, registration, stack.

This is the one module of the package that touches files: it reads frames
with :func:`fieldtui.imaging.io.read_frame`, keeps calibrated frames in
raw float32 scratch files (read back by rows with ``pread``, so nothing is
memory-mapped and the resident memory stays bounded: one block of rows of
every frame at a time, whatever the number of frames), and hands arrays
to the pure engines (:mod:`.calibrate`, :mod:`.debayer`, :mod:`.register`,
:mod:`.combine`, :mod:`.quality`, :mod:`.preview`).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..frame import Frame
from ..imaging.io import FITS_SUFFIXES, RAW_SUFFIXES, FrameReadError, read_frame
from . import calibrate as cal
from . import quality as qual
from .combine import Rejection, combine, rows_per_chunk
from .debayer import debayer, debayer_reach
from .register import (RegistrationError, common_box, match_stars, match_translation, noise_correlation, noise_factor,
                       refine, source_box, warp)

Progress = Callable[[str, int, int], None]


@dataclass
class StackOptions:
    """Everything a user can choose about a stacking run.

    ``rejection`` for the lights; ``method`` ``"mean"`` (with rejection) or
    ``"median"``; ``normalise`` additive with scaling; ``weighting``
    ``"noise"`` (inverse variance) or ``"none"``; ``master_method`` and
    ``master_rejection`` for the masters; ``dark_scaling`` ``none``,
    ``exposure`` or ``optimise``; selection thresholds as in
    :func:`.quality.select`; ``kernel`` the resampling kernel of
    :func:`.register.warp` (``linear`` by default: see :mod:`.register` for the
    measured trade-off); ``model`` ``similarity`` or ``affine``;
    ``crop`` the partly covered borders; ``reference`` the light whose grid
    the stack is on (a path; default the frame with the most and sharpest
    stars); ``master_bias``/``master_dark``/``master_flat`` master files
    made before (by ``save_masters``, a folder the masters of this run are
    written to, or by another program: a master flat with the bias already
    removed) used instead of combining frames; ``library`` a frame library
    (:class:`fieldtui.library.Library` database file) whose masters are used
    where the field guide's rules allow (:meth:`~fieldtui.library.Library.find_master`:
    biases and darks from any night, flats only from the lights' night) and
    where the masters this run combines are written (``DATA/masters/``) and
    indexed; ``memory_mb`` the budget of one block of rows.
    """

    rejection: Rejection = field(default_factory=Rejection)
    method: str = "mean"
    normalise: bool = True
    weighting: str = "noise"
    master_method: str = "mean"
    master_rejection: Rejection = field(default_factory=lambda: Rejection("winsorized", 3.0, 3.0))
    dark_scaling: str = "none"
    cosmetic: bool = True
    debayer: str = "rcd"
    kernel: str = "linear"
    model: str = "similarity"
    max_fwhm: float | None = None
    fwhm_sigma: float | None = None
    min_roundness: float | None = None
    min_star_fraction: float | None = 0.3
    keep_best: float | None = None
    crop: bool = True
    reference: str | None = None
    master_bias: str | None = None
    master_dark: str | None = None
    master_flat: str | None = None
    save_masters: str | None = None
    library: str | None = None
    memory_mb: int = 64
    threads: int = 2
    scratch: str | None = None


@dataclass
class StackResult:
    """The stacked image and the story of the run.

    ``image`` float32 ``(H, W)`` or ``(H, W, 3)`` RGB; ``header`` FITS
    keywords; ``used`` the light files stacked; ``rejected`` ``[{file,
    reason}]``; ``quality`` per light file; ``warnings`` for the user.
    """

    image: np.ndarray
    header: dict
    used: list[str]
    rejected: list[dict]
    quality: dict[str, dict]
    warnings: list[str]
    crop: tuple[int, int, int, int]
    reference: str
    seconds: float = 0.0
    masters: dict = field(default_factory=dict)


class StackError(Exception):
    """A run that cannot produce a stack (no usable light, no common area)."""


# --------------------------------------------------------------------------
# scratch frames


class _Scratch:
    """Float32 frames in raw files of a private folder, read back by rows."""

    def __init__(self, parent: str | None):
        self.dir = Path(tempfile.mkdtemp(prefix="fieldtui-stack-", dir=parent))
        self._names = itertools.count()
        self._lock = threading.Lock()

    def put(self, a: np.ndarray) -> Path:
        """Write a frame to a new file of its own (safe from several threads at once)."""
        with self._lock:  # two threads reading the same count would write one file
            p = self.dir / f"{next(self._names):05d}.f32"
        np.ascontiguousarray(a, dtype=np.float32).tofile(p)
        return p

    @staticmethod
    def rows(path: Path, width: int, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``y0`` … ``y1`` of a scratch frame ``width`` wide (into ``out`` when given)."""
        if out is None:
            out = np.empty((y1 - y0, width), np.float32)
        with open(path, "rb", buffering=0) as fh:
            fh.seek(y0 * width * 4)
            fh.readinto(memoryview(out).cast("B"))
        return out

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


_MALLOC_SET = False


def _thread_buffer(tls: threading.local, shape: tuple, dtype=np.float32) -> np.ndarray:
    """A float32 array of ``shape`` kept by the calling thread (``tls``) from one frame to
    the next: a fresh frame-sized array has its pages zeroed by the system on first touch
    (~7 % of a run's CPU time went there). The caller is done with it before its next frame."""
    buf = getattr(tls, "buf", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        tls.buf = buf = None  # the old one goes first
        tls.buf = buf = np.empty(shape, dtype)
    return buf


def _large_arrays_back_to_the_os() -> None:
    """glibc: arrays of 1 MiB and more always in their own mappings, given back to the
    system when freed; smaller blocks stay with the process once freed (up to 64 MiB free
    at the top of a heap before it is given back).

    By default glibc raises the mapping threshold to the size of the last freed block (up
    to 32 MiB), after which frame-sized temporaries come from the heap and its per-thread
    arenas, which keep them: on 16 lights of 4.3 MP the peak resident memory fell from 568
    to 475 MB with the threshold fixed (the same run otherwise). Fixing it also fixes the
    trim threshold at 128 KiB, and then every free of a few hundred KB at a heap's top
    went back to the system and came back as fresh pages the system zeroes: 16 lights of
    4.3 MP (``tests/benchmarks/bench_stacking_phases.py``) took 900k page faults and 3.0 s
    of system time, 400k and 2.0 s with 64 MiB (5.7 → 5.0 s wall; peak 233 → 245 MB)."""
    global _MALLOC_SET
    if _MALLOC_SET:
        return
    _MALLOC_SET = True
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def frame_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Frame files named or inside the named folders (FITS and camera raw), sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                              and (q.suffix.lower() in RAW_SUFFIXES or any(q.name.lower().endswith(s) for s in FITS_SUFFIXES))))
        else:
            out.append(p)
    return out


_FOLDER_KINDS = {"light": "lights", "lights": "lights", "dark": "darks", "darks": "darks", "flat": "flats",
                 "flats": "flats", "bias": "biases", "biases": "biases", "offset": "biases", "offsets": "biases",
                 "darkflat": "dark_flats", "darkflats": "dark_flats", "dark_flat": "dark_flats",
                 "dark_flats": "dark_flats", "flatdark": "dark_flats", "flatdarks": "dark_flats"}


def night_folder(root: str | os.PathLike) -> dict[str, list[Path]]:
    """The frames of a night's folder by kind (``lights``, ``darks``, ``flats``,
    ``biases``, ``dark_flats``), from the type folders fieldtui writes
    (``NIGHT/TARGET/Light/…``) or any folder named like them."""
    sets: dict[str, list[Path]] = {k: [] for k in ("lights", "darks", "flats", "biases", "dark_flats")}
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        kind = _FOLDER_KINDS.get(Path(dirpath).name.lower().replace("-", "_").replace(" ", "_"))
        if kind:
            sets[kind].extend(frame_files([dirpath]))
    return sets


# --------------------------------------------------------------------------


def _read(path: Path, rejected: list[dict], shape: tuple[int, int] | None = None) -> Frame | None:
    try:
        f = read_frame(path)
    except FrameReadError as exc:
        rejected.append({"file": str(path), "reason": exc.detail})
        return None
    except Exception as exc:  # a reader bug must not end the stack
        rejected.append({"file": str(path), "reason": f"cannot read ({type(exc).__name__}: {exc})"})
        return None
    if f.data.ndim != 2:
        rejected.append({"file": str(path), "reason": "already debayered or a cube: stack raw frames"})
        return None
    if shape is not None and f.data.shape != shape:
        rejected.append({"file": str(path), "reason": f"{f.data.shape[1]}×{f.data.shape[0]} pixels, "
                                                      f"the set is {shape[1]}×{shape[0]}"})
        return None
    return f


def _master(files: list[Path], kind: str, opts: StackOptions, scratch: _Scratch, rejected: list[dict],
            subtract: np.ndarray | None = None, normalise: bool = False,
            progress: Progress | None = None) -> tuple[np.ndarray | None, Frame | None]:
    """Combine calibration frames into a master (in row blocks).

    The frames are read, converted (offset removed, flat level measured) and put in
    scratch files on ``opts.threads`` threads, in order of the files; a frame not the
    size of the first readable one is left out with its reason."""
    paths, scales, first = [], [], None
    temps: list[float] = []
    shape = None

    tls = threading.local()

    def load(p: Path):
        # one frame: its settings and its scratch file (the pixels never go back to the caller,
        # so no more than ``threads`` frames are held at once)
        bad: list[dict] = []
        f = _read(p, bad, None)
        if f is None:
            return p, None, None, bad[0]["reason"], None, None
        fshape = f.data.shape
        if subtract is not None and subtract.shape != fshape:
            return p, f, fshape, "not the size of the master it is calibrated by", None, None
        a = _thread_buffer(tls, fshape)
        if subtract is not None:
            np.subtract(f.data, subtract, out=a, dtype=np.float32)
        else:
            np.copyto(a, f.data)
        f.data = None  # only its settings are kept (``first``): the pixels are in ``a``
        scale = cal.flat_scale(a) if normalise else None
        return p, f, fshape, None, scratch.put(a), scale

    with ThreadPoolExecutor(max(1, opts.threads)) as pool:
        for i, (p, f, fshape, reason, path, scale) in enumerate(pool.map(load, files)):
            if progress:
                progress(f"master {kind}", i + 1, len(files))
            if f is not None and shape is not None and fshape != shape:
                reason = f"{fshape[1]}×{fshape[0]} pixels, the set is {shape[1]}×{shape[0]}"
                f = None
            if f is not None:  # the set's size: it counts for the settings, even when not used
                shape = fshape
                first = first or f
                if f.temperature is not None:
                    temps.append(float(f.temperature))
            if reason is not None:
                rejected.append({"file": str(p), "reason": reason})
                if path is not None:
                    path.unlink(missing_ok=True)
                continue
            if normalise:
                scales.append(scale)
            paths.append(path)
    if not paths:
        return None, None
    if temps:
        first.temperature = float(np.median(temps))
    first.meta["ncombine"] = len(paths)
    h, w = shape
    if normalise:
        ref = float(np.mean(scales))
        weights_scale = [ref / s if s > 0 else 1.0 for s in scales]
    else:
        weights_scale = [1.0] * len(paths)
    out = np.empty((h, w), np.float32)
    step = rows_per_chunk(len(paths), w, opts.memory_mb * 2**20)
    block = np.empty((len(paths), min(step, h), w), np.float32)
    for y in range(0, h, step):
        y1 = min(h, y + step)
        b = block[:, :y1 - y]
        for i, (p, k) in enumerate(zip(paths, weights_scale)):
            scratch.rows(p, w, y, y1, out=b[i])
            if k != 1.0:
                b[i] *= np.float32(k)
        out[y:y1] = combine(b, method=opts.master_method, rejection=opts.master_rejection, threads=opts.threads)
    del block
    for p in paths:
        p.unlink(missing_ok=True)
    return out, first


def stack(
    lights: list[str | os.PathLike],
    *,
    darks: list[str | os.PathLike] = (),
    flats: list[str | os.PathLike] = (),
    biases: list[str | os.PathLike] = (),
    dark_flats: list[str | os.PathLike] = (),
    options: StackOptions | None = None,
    progress: Progress | None = None,
) -> StackResult:
    """Calibrate, measure, select, register and stack ``lights`` (files).

    Corrupt or mismatched frames are left out with their reason; frames
    that cannot be registered too. Raises :class:`StackError` when no light
    is left to stack.
    """
    t0 = time.perf_counter()
    _large_arrays_back_to_the_os()
    opts = options or StackOptions()
    rejected: list[dict] = []
    warnings: list[str] = []
    scratch = _Scratch(opts.scratch)
    try:
        return _stack(lights, darks, flats, biases, dark_flats, opts, progress, rejected, warnings, scratch, t0)
    finally:
        scratch.close()


def _masters(first: Frame, biases, darks, flats, dark_flats, opts: StackOptions, scratch: "_Scratch",
             rejected: list[dict], progress: Progress | None, warnings: list[str]):
    """The masters for the lights of ``first``: given (``opts.master_*``), from the library where
    the rules allow, or combined from the frames (and kept in the library).
    Returns (masters with bias and dark, dark's Frame, flat (None or normalised when it is the
    lights' size), flat's Frame, ``{kind: {path, reused}}``)."""
    lib = _open_library(opts.library, warnings)
    shelf = _Shelf(lib, _settings(first), opts, warnings)
    master_info: dict[str, dict] = {}
    masters = cal.Masters()
    dframe = fframe = None
    flat = dflat = None
    try:
        if opts.master_bias:
            masters.bias, _ = _load_master(opts.master_bias, "bias")
            master_info["bias"] = {"path": opts.master_bias, "reused": True}
        else:
            masters.bias, _ = shelf.get("bias", frame_files(biases), scratch, rejected, progress)
        if opts.master_dark:
            masters.dark, dframe = _load_master(opts.master_dark, "dark")
            master_info["dark"] = {"path": opts.master_dark, "reused": True}
        else:
            masters.dark, dframe = shelf.get("dark", frame_files(darks), scratch, rejected, progress)
        if dframe is not None:
            masters.dark_exposure = dframe.exposure or None
        if opts.master_flat:
            flat, fframe = _load_master(opts.master_flat, "flat")
            master_info["flat"] = {"path": opts.master_flat, "reused": True}
        else:
            flat_files = frame_files(flats)
            flat, fframe = shelf.lookup("flat", flat_files)
            if flat is None and flat_files:
                dflat, _ = shelf.get("darkflat", frame_files(dark_flats), scratch, rejected, progress,
                                     like=flat_files)
                flat_offset = dflat if dflat is not None else masters.bias
                flat, fframe = _master(flat_files, "flat", opts, scratch, rejected, subtract=flat_offset,
                                       normalise=True, progress=progress)
                if flat is not None:
                    flat = cal.normalise_flat(flat, first.bayer) if flat.shape == first.data.shape else flat
                    shelf.keep("flat", flat, fframe, flat_files)
        master_info.update(shelf.info)
    finally:
        if lib is not None:
            lib.close()
    return masters, dframe, flat, fframe, master_info


def _stack(lights, darks, flats, biases, dark_flats, opts, progress, rejected, warnings, scratch, t0):
    light_files = frame_files(lights)
    if not light_files:
        raise StackError("no light frames to stack")
    # ----- the first readable light: the set's settings
    first = None
    for p in light_files:
        first = _read(p, [], None)
        if first is not None:
            break
    if first is None:
        for p in light_files:
            _read(p, rejected)
        raise StackError("no light frame could be read")
    # ----- masters: given, from the library (the reuse rules), or combined (and then indexed)
    masters, dframe, flat, fframe, master_info = _masters(first, biases, darks, flats, dark_flats, opts, scratch,
                                                          rejected, progress, warnings)
    bayer = first.bayer
    masters.bayer = bayer
    shape = first.data.shape
    h, w = shape
    first.data = None  # its settings only, from here on
    for name in ("bias", "dark"):
        m = getattr(masters, name)
        if m is not None and m.shape != shape:
            warnings.append(f"master {name} is {m.shape[1]}×{m.shape[0]}, the lights {w}×{h}: not used")
            setattr(masters, name, None)
    if flat is not None:
        if flat.shape != shape:
            warnings.append(f"master flat is {flat.shape[1]}×{flat.shape[0]}, the lights {w}×{h}: not used")
        else:
            if fframe is not None and fframe.bayer != bayer:
                warnings.append("the flats and lights do not have the same Bayer pattern")
            masters.flat = cal.normalise_flat(flat, bayer)
    del flat
    if opts.save_masters:
        _save_masters(Path(opts.save_masters), masters, first, dframe)
    if opts.cosmetic:
        masters.bad_pixels = cal.find_bad_pixels(masters)
    calstat = "".join(c for c, m in (("B", masters.bias), ("D", masters.dark), ("F", masters.flat)) if m is not None)
    if masters.dark is not None and opts.dark_scaling == "none":
        masters.bias = None  # the dark holds the bias: calibration reads only the dark
    if masters.dark is not None and dframe is not None and first.exposure and dframe.exposure \
            and abs(dframe.exposure - first.exposure) > 0.05 * first.exposure and opts.dark_scaling == "none":
        warnings.append(f"darks of {dframe.exposure:g} s for lights of {first.exposure:g} s "
                        "(take darks at the lights' exposure, or use --dark-scaling)")

    items: dict[str, dict] = {}
    neg_warned = False

    tls = threading.local()

    def one(p: Path):
        f = _read(p, rejected, shape)
        if f is None:
            return p, None
        r = cal.calibrate(f.data, masters, light_exposure=f.exposure, dark_scaling=opts.dark_scaling,
                          cosmetic=opts.cosmetic, white_level=f.white_level, out=_thread_buffer(tls, shape))
        f.data = None  # the raw pixels, while the calibrated ones are measured
        q = qual.measure(r.data, bayer, white_level=f.white_level)
        stats = _channel_stats(r.data, bayer)
        path = scratch.put(r.data)
        # only figures go back: pool.map keeps finished results until their turn comes,
        # and a frame's pixels held there would grow memory with the number of frames
        f.data = None
        r.data = None
        return p, {"frame": f, "path": path, "q": q, "stats": stats, "cal": r}

    done = 0
    with ThreadPoolExecutor(max(1, opts.threads)) as pool:
        for p, it in pool.map(one, light_files):
            done += 1
            if progress:
                progress("calibrate", done, len(light_files))
            if it is None:
                continue
            r = it.pop("cal")
            if r.warnings and not neg_warned:
                warnings.extend(r.warnings)
                neg_warned = True
            items[str(p)] = it
    # the calibrated frames are in the scratch files: the masters are done with
    masters.bias = masters.dark = masters.flat = masters.bad_pixels = None
    if not items:
        raise StackError("no light frame could be read")
    # ----- selection
    qualities = {k: v["q"] for k, v in items.items()}
    out = qual.select(qualities, max_fwhm=opts.max_fwhm, fwhm_sigma=opts.fwhm_sigma,
                      min_roundness=opts.min_roundness, min_star_fraction=opts.min_star_fraction,
                      keep_best=opts.keep_best)
    for k, reason in out.items():
        rejected.append({"file": k, "reason": reason})
    cands = [k for k in items if k not in out]
    if not cands:
        raise StackError("every light frame was rejected")
    # reference: many stars, small FWHM (sensor px; on colour frames the green pixels', which
    # picked the sharpest of five simulated undersampled frames 0.05 px apart 29 times in 40,
    # the 2x2 super-pixels' 23; of five 3.0-3.3 px frames 32 and 28)
    ref = max(cands, key=lambda k: qualities[k].stars / max(qualities[k].fwhm, 0.5) ** 2)
    if opts.reference is not None:
        want = [k for k in cands if Path(k).resolve() == Path(opts.reference).resolve()]
        if not want:
            raise StackError(f"the reference frame {opts.reference} is not among the frames to stack")
        ref = want[0]
    ref_xy = qualities[ref].xy
    # matching tolerance: centroids of wide or faint stars scatter more
    fw = qualities[ref].fwhm
    tol = float(np.clip(0.25 * fw, 2.0, 5.0)) if math.isfinite(fw) else 2.0
    mats: dict[str, np.ndarray] = {}

    def reg_one(k: str):
        if k == ref:
            return None, "reference"
        return _register(ref_xy, qualities[k].xy, opts.model, tol, 0.1 * math.hypot(h, w),
                         fine=(qualities[ref], qualities[k]))

    # frames matched on the run's threads, their results taken in order
    if progress:
        progress("register", 0, len(cands))
    with ThreadPoolExecutor(max(1, opts.threads)) as pool:
        futures = [pool.submit(reg_one, k) for k in cands]
        regs = []
        for i, fut in enumerate(futures):
            regs.append(fut.result())
            if progress:
                progress("register", i + 1, len(cands))
    for k, (reg, how) in zip(cands, regs):
        if k == ref:
            mats[k] = np.array([[1.0, 0, 0], [0, 1.0, 0]])
            continue
        if reg is None:
            rejected.append({"file": k, "reason": f"cannot be registered: {how}"})
            continue
        mats[k] = reg.matrix
        items[k]["registration"] = {"method": how, "matched": reg.matched, "rms": round(reg.rms, 3),
                                    "rotation_deg": round(reg.rotation_deg, 3),
                                    "shift": [round(v, 2) for v in reg.shift]}
    used = [k for k in cands if k in mats]
    # ----- stack
    if opts.crop:
        try:
            box = common_box([mats[k] for k in used], shape)
        except ValueError as exc:
            raise StackError(str(exc)) from None
    else:
        box = (0, 0, w, h)
    x0, y0, x1, y1 = box
    ow, oh = x1 - x0, y1 - y0
    nch = 3 if bayer else 1
    ref_stats = items[ref]["stats"]
    # debayered planes: the noise of neighbouring pixels is correlated, and resampling
    # lowers it less than a sensor's independent noise
    corr = _debayered_noise_correlation(items[ref]["path"], shape, bayer, opts.debayer) if bayer else None
    norm = []
    wts = []
    frame_noise = []  # per pixel, normalised and resampled: what each frame's values scatter by
    for k in used:
        st = items[k]["stats"]
        if opts.normalise:
            sc = np.where(st[:, 1] > 0, ref_stats[:, 1] / np.maximum(st[:, 1], 1e-12), 1.0)
            off = ref_stats[:, 0] - st[:, 0] * sc
        else:
            sc, off = np.ones(nch), np.zeros(nch)
        norm.append((sc.astype(np.float32), off.astype(np.float32)))
        kept = noise_factor(mats[k], shape, opts.kernel, correlation=corr)
        frame_noise.append(qualities[k].noise * float(np.mean(sc)) * math.sqrt(kept))
        wts.append(qual.weight(qualities[k], float(np.mean(sc)), kept) if opts.weighting == "noise" else 1.0)
    wts = np.asarray(wts, float)
    wts = wts / wts.max() if wts.max() > 0 else np.ones(len(used))
    frame_noise = np.asarray(frame_noise, float)
    if not (np.isfinite(frame_noise).all() and (frame_noise > 0).all()):
        frame_noise = None
    image = np.empty((oh, ow, nch), np.float32)
    step = rows_per_chunk(len(used), ow * nch, opts.memory_mb * 2**20)
    n_chunks = math.ceil(oh / step)
    block_all = np.empty((len(used), min(step, oh), ow, nch), np.float32)
    # the kernel's reach plus, for colour, how far the debayering looks beyond the pixels
    # read, so each strip's pixels are debayered as in the whole frame
    margin = 5 + max(2, debayer_reach(opts.debayer) if bayer else 2)
    # the frames of a block are resampled on the run's threads, one frame a thread (so the
    # debayering of one frame runs on one)
    inner = 1 if opts.threads > 1 else opts.threads

    def resample(i: int, yy: int, rows: int, block: np.ndarray) -> None:
        # frame i's part of the block: its source rows read, debayered, warped, normalised
        k = used[i]
        block[i].fill(np.nan)
        sb = source_box(mats[k], (x0, y0 + yy), (rows, ow), shape, margin=margin, even=bool(bayer))
        if sb is None:
            return
        fx0, fy0, fx1, fy1 = sb
        region = scratch.rows(items[k]["path"], w, fy0, fy1)[:, fx0:fx1]
        if bayer:
            region = debayer(region, bayer, opts.debayer, threads=inner)
        wp = warp(region, mats[k], (rows, ow), origin=(x0, y0 + yy), src_origin=(fx0, fy0), kernel=opts.kernel)
        wp = wp.reshape(rows, ow, nch)
        sc, off = norm[i]
        np.multiply(wp, sc, out=block[i])
        block[i] += off

    # each frame writes its own plane of the block
    with ThreadPoolExecutor(max(1, opts.threads)) as pool:
        for ci, yy in enumerate(range(0, oh, step)):
            rows = min(step, oh - yy)
            block = block_all[:, :rows]
            for f in [pool.submit(resample, i, yy, rows, block) for i in range(len(used))]:
                f.result()
            image[yy:yy + rows] = combine(np.ascontiguousarray(block) if rows < step else block, method=opts.method,
                                          rejection=opts.rejection, weights=wts, noise=frame_noise,
                                          threads=opts.threads)
            if progress:
                progress("stack", ci + 1, n_chunks)
    image = image[..., 0] if nch == 1 else image
    hdr = _header(items[ref]["frame"], used, items, opts, box, calstat, bayer)
    quality = {}
    for k, it in items.items():
        d = it["q"].as_dict()
        if "registration" in it:
            d["registration"] = it["registration"]
        quality[k] = d
    return StackResult(image=image, header=hdr, used=used, rejected=rejected, quality=quality, warnings=warnings,
                       crop=box, reference=ref, seconds=time.perf_counter() - t0, masters=master_info)


def _debayered_noise_correlation(path: Path, shape: tuple[int, int], bayer: str, method: str) -> np.ndarray:
    """The correlation of a debayered frame's noise between neighbouring pixels
    (:func:`.register.noise_correlation`, averaged over the three planes: the noise factor
    is linear in it), from a band of rows across the middle of the calibrated frame at
    ``path`` (a scratch file, ``shape`` rows × columns, Bayer ``pattern``), debayered
    with ``method``.

    Why: each frame's weight and rejection threshold count how much resampling lowers its
    noise per pixel (:func:`.register.noise_factor`); for independent noise bilinear keeps
    4/9 of it on average, but three of a debayered plane's pixels in four are interpolated
    from their neighbours (RCD: correlation ~0.4 between neighbours), so it keeps more,
    and the reference (not resampled) was weighted as 1.5× noisier per pixel than the
    others where it is 1.2× (measured against the truth on the small colour benchmark)."""
    h, w = shape
    rows, cols = min(h, 192), min(w, 1024)
    y0 = (h - rows) // 4 * 2  # even: the pattern kept
    x0 = (w - cols) // 4 * 2
    region = _Scratch.rows(path, w, y0, y0 + rows)[:, x0:x0 + cols]
    rgb = debayer(region, bayer, method)
    m = min(debayer_reach(method), rows // 4, cols // 4)
    inner = rgb[m:rows - m, m:cols - m]
    return np.mean([noise_correlation(inner[..., c]) for c in range(3)], axis=0)


def _open_library(db: str | None, warnings: list[str]):
    if not db:
        return None
    from ..library import Library
    try:
        return Library(db)
    except Exception as exc:  # sqlite3.Error, OSError: stack without it, say so
        warnings.append(f"frame library {db} cannot be opened ({exc}): masters neither reused nor kept")
        return None


def _settings(f: Frame) -> dict:
    """What a master must match for the lights of ``f``: ISO/gain, exposure, temperature,
    night, filter, focus position (the last three from the file, as the library reads them)."""
    from ..library import read_record
    rec = None
    if f.path is not None:
        try:
            rec = read_record(Path(f.path))
        except OSError:
            rec = None
    rec = rec or {}
    return {"iso": f.iso, "gain": f.gain, "exposure": f.exposure, "temperature": f.temperature,
            "night": rec.get("night"), "filter": rec.get("filter") or "", "focus": rec.get("focus")}


class _Shelf:
    """The masters of one run against a frame library (or none): look up, combine, keep."""

    def __init__(self, lib, settings: dict, opts: StackOptions, warnings: list[str]):
        self.lib, self.settings, self.opts, self.warnings = lib, settings, opts, warnings
        self.info: dict[str, dict] = {}

    def _query(self, kind: str, files: list[Path], like: list[Path] | None) -> dict:
        s = self.settings
        q = {"iso": s["iso"], "gain": s["gain"]}
        if kind == "dark":
            q |= {"exposure": s["exposure"], "temperature": s["temperature"]}
        elif kind == "darkflat":
            from ..library import read_record
            ref = read_record(like[0]) if like else None  # the flats' exposure
            q |= {"exposure": ref["exposure"] if ref else None}
        elif kind == "flat":
            q |= {"night": s["night"], "filter": s["filter"], "focus": s["focus"]}
        if files:
            from ..library import source_hash
            q["source"] = source_hash(files)
        return q

    def lookup(self, kind: str, files: list[Path], like: list[Path] | None = None):
        """(master, its Frame) from the library: combined from exactly ``files`` when given,
        else any master the rules allow; (None, None) when there is none."""
        if self.lib is None:
            return None, None
        rec = self.lib.find_master(kind, **self._query(kind, files, like))
        if rec is None:
            if kind == "flat" and not files and self.settings.get("night"):
                if self.lib.frames("master = 1 AND type = 'flat'"):
                    self.warnings.append(f"no master flat of the night of {self.settings['night']} in the "
                                         "library (flats are never reused across nights): no flat applied")
            return None, None
        try:
            data, f = _load_master(rec["path"], kind)
        except StackError as exc:
            self.warnings.append(f"library master {kind} not used: {exc}")
            return None, None
        self.info[kind] = {"path": rec["path"], "reused": True}
        return data, f

    def get(self, kind: str, files: list[Path], scratch: "_Scratch", rejected: list[dict],
            progress: Progress | None, like: list[Path] | None = None):
        """The master of ``kind``: from the library when the rules allow, else combined from
        ``files`` (and kept in the library)."""
        data, f = self.lookup(kind, files, like)
        if data is not None or not files:
            return data, f
        label = {"darkflat": "dark flat"}.get(kind, kind)
        data, f = _master(files, label, self.opts, scratch, rejected, progress=progress)
        if data is not None:
            self.keep(kind, data, f, files)
        return data, f

    def keep(self, kind: str, data: np.ndarray, f: Frame | None, files: list[Path]) -> None:
        """Write a combined master to ``DATA/masters/`` and index it (nothing without a library)."""
        self.info[kind] = {"path": None, "reused": False}
        if self.lib is None or f is None:
            return
        from ..library import read_record, source_hash
        rec = read_record(Path(f.path)) if f.path is not None else None
        night = (rec or {}).get("night") or self.settings.get("night") or ""
        src = source_hash(files)
        setting = f"gain{f.gain}" if f.gain is not None else f"ISO{f.iso}"
        parts = [kind, setting]
        if kind in ("dark", "darkflat"):
            parts.append(f"{f.exposure:g}s")
            if f.temperature is not None:
                parts.append(f"{f.temperature:.0f}C")
        if kind == "flat":
            parts.append(night or "night")
            if (rec or {}).get("filter"):
                parts.append(str(rec["filter"]))
        path = self.lib.path.parent / "masters" / f"master_{'_'.join(parts)}_{src[:8]}.fits"
        try:
            _write_master(path, data, kind, f, night=night, filter=(rec or {}).get("filter") or "",
                          focus=(rec or {}).get("focus"), source=src)
            self.lib.add_file(path)
        except (OSError, Exception) as exc:  # noqa: BLE001 - the stack goes on without keeping it
            self.warnings.append(f"master {kind} not kept in the library: {exc}")
            return
        self.info[kind]["path"] = str(path)


def library_masters(db: str | os.PathLike, light: Frame, *, root: str | os.PathLike | None = None,
                    cosmetic: bool = True) -> tuple[cal.Masters, dict, list[str]]:
    """The masters for the lights of ``light`` from a frame library, ready for
    :func:`.calibrate.calibrate`: (masters, ``{kind: {path, reused}}``, warnings).

    The library's masters where the rules allow (:meth:`~fieldtui.library.Library.find_master`);
    where it has none, the calibration frames it gives the light
    (:meth:`~fieldtui.library.Library.calibration_for`, after indexing ``root`` when given)
    are combined, and the masters kept there (so the final stack finds them made). For the
    live stack, whose lights arrive one by one."""
    warnings: list[str] = []
    sets: dict[str, list] = {}
    lib = _open_library(str(db), warnings)
    if lib is not None:
        try:
            if root is not None:
                lib.scan(root)
            from ..library import read_record
            rec = read_record(Path(light.path)) if light.path is not None else None
            sets = lib.calibration_for(rec) if rec else {}
        finally:
            lib.close()
    opts = StackOptions(library=str(db), cosmetic=cosmetic)
    scratch = _Scratch(None)
    try:
        masters, dframe, flat, _, info = _masters(light, sets.get("biases", []), sets.get("darks", []),
                                                  sets.get("flats", []), sets.get("dark_flats", []), opts,
                                                  scratch, [], None, warnings)
    finally:
        scratch.close()
    masters.bayer = light.bayer
    for kind in ("bias", "dark"):
        m = getattr(masters, kind)
        if m is not None and m.shape != light.data.shape:
            setattr(masters, kind, None)
            info.pop(kind, None)
            warnings.append(f"master {kind} is {m.shape[1]}×{m.shape[0]}: not used")
    if dframe is not None:
        masters.dark_exposure = dframe.exposure or None
    if flat is not None and flat.shape == light.data.shape:
        masters.flat = cal.normalise_flat(flat, light.bayer)
    else:
        info.pop("flat", None)
    if cosmetic:
        masters.bad_pixels = cal.find_bad_pixels(masters)
    return masters, info, warnings


def _write_master(path: Path, data: np.ndarray, kind: str, f: Frame, *, night: str, filter: str,  # noqa: A002
                  focus: int | None, source: str) -> Path:
    """A master as a 32-bit float FITS with what the library indexes it by."""
    from astropy.io import fits

    from ..atomic import write_with
    from ..imaging.io import fits_header
    h = fits_header(Frame(data=data, exposure=f.exposure or 0.0, kind=kind, bayer=f.bayer, iso=f.iso,
                          gain=f.gain, temperature=f.temperature if kind in ("dark", "darkflat") else None))
    h["IMAGETYP"] = ("Master " + {"darkflat": "DarkFlat"}.get(kind, kind.title()), "Master calibration frame")
    h["NCOMBINE"] = (int(f.meta.get("ncombine", 0)), "Frames combined")
    h["SRCHASH"] = (source, "Digest of the combined frames' paths")
    if night:
        h["NIGHT"] = (night, "Night of the frames")
    if filter:
        h["FILTER"] = filter
    if focus is not None:
        h["FOCUSPOS"] = (int(focus), "Focuser position")
    if kind == "flat":
        h["CALSTAT"] = ("B", "bias removed, normalised to 1 per CFA colour")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_with(path, fits.PrimaryHDU(data=np.asarray(data, np.float32), header=h).writeto)


def _register(ref_xy: np.ndarray, xy: np.ndarray, model: str, tol: float, max_shift: float,
              fine: tuple | None = None):
    """(registration, method) or (None, reason): star triangles; where they are unsure (under
    15 stars or over 1 px rms) or fail, a pure shift by pair voting when it fits as well or
    better (short frames of one night on a tracking mount: a few faint, scattered stars).
    ``fine``: the reference's and the frame's :class:`~.quality.FrameQuality`, whose windowed
    centroids and SNRs refit a triangle match (:func:`.register.refine`)."""
    tri = shift = None
    reason = ""
    try:
        tri = match_stars(ref_xy, xy, model=model, tolerance=tol)
    except RegistrationError as exc:
        reason = str(exc)
    if tri is not None and tri.matched >= 15 and tri.rms <= 1.0:
        return _refine(tri, fine, model, tol), "triangles"
    try:
        shift = match_translation(ref_xy, xy, tolerance=tol, max_shift=max_shift)
    except RegistrationError as exc:
        reason = reason or str(exc)
    if shift is not None and (tri is None or not (shift.rms > tri.rms)):
        return shift, "shift"
    if tri is not None:
        return tri, "triangles"
    return None, reason


def _refine(reg, fine: tuple | None, model: str, tol: float):
    """``reg`` refitted on the windowed centroids, SNR-weighted, when both frames have them."""
    if fine is None:
        return reg
    a, b = fine
    if a.xy_fine is None or b.xy_fine is None:
        return reg
    try:
        return refine(reg, a.xy_fine, b.xy_fine, model=model, tolerance=tol, ref_snr=a.snr, snr=b.snr)
    except RegistrationError:
        return reg


def _load_master(path: str, kind: str) -> tuple[np.ndarray, Frame]:
    """A master made before: float32 ``(H, W)``. Raises StackError when it cannot be read."""
    try:
        f = read_frame(path)
    except FrameReadError as exc:
        raise StackError(f"master {kind}: {exc}") from None
    if f.data.ndim != 2:
        raise StackError(f"master {kind} {path}: not a raw-layout (H×W) image")
    return np.asarray(f.data, np.float32), f


def _save_masters(folder: Path, masters: cal.Masters, light: Frame, dframe: Frame | None) -> None:
    """Write the masters as 32-bit float FITS in ``folder`` (the flat normalised, bias removed)."""
    from astropy.io import fits

    from ..atomic import write_with
    from ..imaging.io import fits_header

    for name, data, exposure in (("bias", masters.bias, 0.0), ("dark", masters.dark, masters.dark_exposure),
                                 ("flat", masters.flat, 0.0)):
        if data is None:
            continue
        h = fits_header(Frame(data=data, exposure=exposure or 0.0, kind=name, bayer=light.bayer,
                              iso=light.iso, gain=light.gain,
                              temperature=dframe.temperature if (name == "dark" and dframe) else None))
        h["IMAGETYP"] = (f"Master {name.title()}", "Master calibration frame")
        if name == "flat":
            h["CALSTAT"] = ("B", "bias removed, normalised to 1 per CFA colour")
        write_with(folder / f"master_{name}.fits",
                   fits.PrimaryHDU(data=np.asarray(data, np.float32), header=h).writeto)


def _channel_stats(data: np.ndarray, bayer: str | None) -> np.ndarray:
    """Location (median) and scale (MAD) per output channel ``(C, 2)``, from the
    calibrated mosaic's sites of each colour (the same as the debayered planes')."""
    if not bayer:
        s = data[::3, ::3].ravel()
        groups = [s]
    else:
        groups = []
        for colour in "RGB":
            parts = [data[r::2, c::2][::3, ::3].ravel() for r in (0, 1) for c in (0, 1) if bayer[2 * r + c] == colour]
            groups.append(np.concatenate(parts))
    out = []
    for g in groups:
        g = g[np.isfinite(g)]
        m = float(np.median(g))
        out.append((m, float(1.4826 * np.median(np.abs(g - m)))))
    return np.array(out)


def _header(frame: Frame, used: list[str], items: dict, opts: StackOptions, box, calstat: str,
            bayer: str | None) -> dict:
    from ..imaging.io import fits_header
    h = fits_header(frame)
    for k in ("BAYERPAT", "XBAYROFF", "YBAYROFF", "BLKLEVEL"):
        h.remove(k, ignore_missing=True)
    h["IMAGETYP"] = ("Light Frame", "Stacked light")
    exps = [items[k]["frame"].exposure for k in used]
    h["STACKCNT"] = (len(used), "Number of frames stacked")
    h["NCOMBINE"] = (len(used), "Number of frames stacked")
    h["LIVETIME"] = (float(sum(exps)), "[s] Total exposure of the stacked frames")
    ts = [items[k]["frame"].timestamp for k in used if items[k]["frame"].timestamp]
    if ts:
        import datetime as dt
        h["DATE-OBS"] = (dt.datetime.fromtimestamp(min(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                         "UTC start of the first frame")
        h["DATE-END"] = (dt.datetime.fromtimestamp(max(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                         "UTC start of the last frame")
    h["CALSTAT"] = (calstat, "Calibration applied: Bias, Dark, Flat")
    if bayer:
        h["CFA-PAT"] = (bayer, "Bayer pattern of the raw frames")
        h["DEBAYER"] = (opts.debayer, "Debayer method")
    h["STACKMTH"] = (opts.method, "Combination")
    h["REJECT"] = (opts.rejection.kind, "Pixel rejection")
    h["REJLOW"] = (opts.rejection.low, "Rejection threshold below (sigma)")
    h["REJHIGH"] = (opts.rejection.high, "Rejection threshold above (sigma)")
    h["NORMALIZ"] = ("additive+scale" if opts.normalise else "none", "Normalisation")
    h["WEIGHTS"] = (opts.weighting, "Frame weighting")
    h["REGMODEL"] = (opts.model, "Registration transform")
    h["INTERP"] = (opts.kernel, "Resampling kernel")
    h["CROPX0"] = (int(box[0]), "[px] crop left edge in the reference")
    h["CROPY0"] = (int(box[1]), "[px] crop top edge in the reference")
    h["PROGRAM"] = ("fieldtui", "Software that stacked")
    return h


def write_stack(result: StackResult, path: str | os.PathLike) -> Path:
    """Write the stack as a 32-bit float FITS (colour as a 3×H×W cube) atomically."""
    from astropy.io import fits

    from ..atomic import write_with

    data = result.image
    if data.ndim == 3:
        data = np.moveaxis(data, 2, 0)
    hdu = fits.PrimaryHDU(data=np.ascontiguousarray(data, dtype=np.float32), header=result.header)
    if data.ndim == 3:
        hdu.header["CTYPE3"] = ("RGB", "Colour planes: red, green, blue")
    return write_with(path, hdu.writeto)


def write_preview(result: StackResult, path: str | os.PathLike) -> Path:
    """Write the stretched, balanced preview as PNG atomically."""
    from ..atomic import write_bytes
    from .preview import png_bytes, preview
    return write_bytes(path, png_bytes(preview(result.image)))
