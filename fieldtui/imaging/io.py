"""Reading frames from FITS and camera raw files, and writing FITS atomically.

Every failure to read raises :class:`FrameReadError` with a one-line
message naming the file and the cause, and a ``reason`` code:
``not_found``, ``unsupported``, ``corrupt``, ``no_image``, ``empty``,
``unreadable``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_with
from ..frame import Frame
from . import levels

FITS_SUFFIXES = {".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"}
RAW_SUFFIXES = {
    ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".dng", ".rw2", ".arw", ".srf", ".sr2",
    ".orf", ".raf", ".pef", ".srw", ".3fr", ".erf", ".kdc", ".mef", ".mos", ".mrw",
    ".rwl", ".iiq", ".x3f",
}


MIN_RAW_BYTES_PER_PIXEL = 0.05


class FrameReadError(Exception):
    """A frame file that could not be turned into a :class:`Frame`."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path.name}: {detail}")


# --------------------------------------------------------------------------
# helpers


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    return path.suffix.lower()


_KINDS = {
    "light": "light",
    "object": "light",
    "science": "light",
    "dark": "dark",
    "flat": "flat",
    "bias": "bias",
    "offset": "bias",
    "zero": "bias",
}


def kind_from_imagetyp(value: str) -> str:
    """'Light Frame' → light, 'Dark Flat' → darkflat, 'Flat Field' → flat, …"""
    v = value.strip().lower()
    if "dark" in v and "flat" in v:
        return "darkflat"
    for word, kind in _KINDS.items():
        if word in v:
            return kind
    return v or "light"


IMAGETYP = {
    "light": "Light Frame",
    "dark": "Dark Frame",
    "flat": "Flat Field",
    "bias": "Bias Frame",
    "darkflat": "Dark Flat",
}


def _native(a: np.ndarray) -> np.ndarray:
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def _all_zero(a: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        return not finite.any() or not np.any(a[finite])
    return not np.any(a)


def _num(header, *keys):
    for k in keys:
        if k in header:
            try:
                v = float(header[k])
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                return v
    return None


# --------------------------------------------------------------------------
# FITS


def _fits_cut_short(path: Path | None, reading: tuple[Any, int] | None) -> str | None:
    """'truncated FITS file: …' when the file ends before the data its header announces
    (a copy or a write cut short), else None. ``reading``: that header and the byte
    offset where its data starts."""
    if path is None or reading is None:
        return None
    header, start = reading
    try:
        n = abs(int(header["BITPIX"])) // 8
        for k in range(1, int(header["NAXIS"]) + 1):
            n *= int(header[f"NAXIS{k}"])
        have = path.stat().st_size - start
    except (KeyError, TypeError, ValueError, OSError):
        return None
    if 0 <= have < n:
        return f"truncated FITS file: the data stops after {have} of its {n} bytes"
    return None


def _read_fits(path: Path, source=None) -> Frame:
    """``source``: a file object to read instead of ``path`` (``path`` then only names it)."""
    from astropy.io import fits

    reading: tuple[Any, int] | None = None  # the header whose data is being read, and where it starts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path if source is None else source, memmap=False) as hdul:
                hdu = header = None
                for i, h in enumerate(hdul):
                    # the header as written: reading the data drops BSCALE/BZERO and rewrites BITPIX
                    written = h.header.copy()
                    if written.get("NAXIS", 0) >= 2:
                        reading = (written, int(hdul.fileinfo(i)["datLoc"]))
                    if written.get("NAXIS", 0) >= 2 and h.data is not None and h.data.ndim >= 2:
                        hdu, header = h, written
                        break
                if hdu is None:
                    raise FrameReadError(path, "no_image", "FITS file has no image data")
                data = _native(np.asarray(hdu.data))
    except FrameReadError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in msg.lower() or "corrupt" in msg.lower() or "empty" in msg.lower():
            raise FrameReadError(path, "corrupt", f"truncated or corrupt FITS file ({msg})") from None
        cut = _fits_cut_short(path if source is None else None, reading)
        if cut:
            raise FrameReadError(path, "corrupt", cut) from None
        raise FrameReadError(path, "corrupt", f"cannot read FITS data ({msg})") from None

    colour = None
    if data.ndim == 3:
        # FITS stores a cube planes first (NAXIS3, NAXIS2, NAXIS1): a colour
        # frame becomes height × width × 3, the layout Frame.width/height read
        if data.shape[0] == 1:
            data = data[0]
        elif data.shape[0] == 3:
            data = np.ascontiguousarray(np.moveaxis(data, 0, -1))
            colour = "RGB"
        else:
            raise FrameReadError(
                path, "unsupported",
                f"unsupported image cube of {data.shape[0]} planes (only single frames and RGB cubes of 3 planes)")
    elif data.ndim > 3:
        raise FrameReadError(path, "unsupported", f"unsupported {data.ndim}-dimensional image")
    if _all_zero(data):
        raise FrameReadError(path, "empty", "empty image: every pixel is 0 (no image data)")
    overscan = None
    if data.ndim == 2:
        # an overscan region (BIASSEC) gives the black level; the image proper
        # (TRIMSEC, else DATASEC) is what gets measured
        sec = _section(str(header.get("BIASSEC", "")), data.shape)
        if sec is not None and data[sec].size:
            overscan = float(np.median(data[sec]))
        for key in ("TRIMSEC", "DATASEC"):
            sec = _section(str(header.get(key, "")), data.shape)
            if sec is not None:
                data = np.ascontiguousarray(data[sec])
                break

    frame = Frame(data=data, path=path)
    frame.exposure = _num(header, "EXPTIME", "EXPOSURE") or 0.0
    gain = _num(header, "GAIN", "EGAIN_SET")
    frame.gain = int(round(gain)) if gain is not None else None
    iso = _num(header, "ISOSPEED", "ISO")
    frame.iso = int(round(iso)) if iso is not None else None
    frame.temperature = _num(header, "CCD-TEMP", "CCD_TEMP", "SENSOR-T", "TEMPERAT")
    frame.pixel_um = _num(header, "XPIXSZ", "PIXSIZE1", "PIXSIZE")
    frame.focal_mm = _num(header, "FOCALLEN", "FOCAL")
    frame.camera = str(header.get("INSTRUME", "")).strip()
    if "IMAGETYP" in header:
        frame.kind = kind_from_imagetyp(str(header["IMAGETYP"]))
    bayer = str(header.get("BAYERPAT", header.get("COLORTYP", ""))).strip().upper()
    if len(bayer) == 4 and not set(bayer) - set("RGB"):
        xoff = int(_num(header, "XBAYROFF", "BAYOFFX") or 0) % 2
        yoff = int(_num(header, "YBAYROFF", "BAYOFFY") or 0) % 2
        grid = [[bayer[0], bayer[1]], [bayer[2], bayer[3]]]
        frame.bayer = "".join(grid[(r + yoff) % 2][(c + xoff) % 2] for r in (0, 1) for c in (0, 1))
    if colour:
        frame.meta["colour"] = colour
    bitpix = int(header.get("BITPIX", 16))
    frame.bit_depth = abs(bitpix)
    _fits_black(frame, header, data, overscan)
    frame.white_level = _fits_white(header, data)
    levels.settle_white(frame)
    date = header.get("DATE-OBS")
    if date:
        frame.timestamp = _parse_date(str(date)) or 0.0
        frame.meta["DATE-OBS"] = str(date)
    for key in ("OBJECT", "FILTER", "RA", "DEC", "OBJCTRA", "OBJCTDEC", "TELESCOP"):
        if key in header:
            frame.meta[key] = header[key]
    return frame


# keys whose value is a black level in ADU of the stored data
BLACK_KEYS = ("BLKLEVEL",)
# keys that look like a black level but are a driver setting in its own units
# (ZWO's offset, written as OFFSET by N.I.N.A., ASIAIR, INDI, Siril): kept for
# the advice, never used as ADU
SETTING_KEYS = ("OFFSET",)


def _section(text: str, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """An IRAF image section '[x1:x2,y1:y2]' (1-based, inclusive) as numpy slices."""
    t = text.strip().strip("[]").replace(" ", "")
    try:
        xs, ys = t.split(",")
        x1, x2 = (int(v) for v in xs.split(":"))
        y1, y2 = (int(v) for v in ys.split(":"))
    except ValueError:
        return None
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    if x1 < 1 or y1 < 1 or x2 > shape[1] or y2 > shape[0]:
        return None
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def _calibrated(header) -> bool:
    """Whether the header records a calibration (dark/bias subtraction) of the frame."""
    if "CALSTAT" in header:
        return True
    history = " ".join(str(v) for v in header.get("HISTORY", [])).lower()
    return "calibrat" in history or "dark subtract" in history or "bias subtract" in history


def _fits_black(frame: Frame, header, data: np.ndarray, overscan: float | None) -> None:
    """The black level from where a FITS file really records it, else estimated from the data.

    ``PEDESTAL``: MaxIm DL writes the correction to add for zero-based ADU
    (−100 when it added 100), PixInsight the amount added (+100): either way
    the data's zero sits at |PEDESTAL|. ``BLKLEVEL`` is ADU. ``overscan``:
    the median of the region ``BIASSEC`` names, if any. ``OFFSET``
    is a camera driver setting (not ADU) and is only kept in ``meta``.
    Sets ``frame.black_level`` and ``meta["black_level_source"]``.
    """
    for key in SETTING_KEYS:
        v = _num(header, key)
        if v is not None:
            frame.meta[key] = v
    if _calibrated(header):
        frame.meta["calibrated"] = True
    pedestal = _num(header, "PEDESTAL")
    if pedestal is not None:
        frame.meta["PEDESTAL"] = pedestal
        frame.black_level, frame.meta["black_level_source"] = abs(pedestal), "PEDESTAL"
        return
    for key in BLACK_KEYS:
        v = _num(header, key)
        if v is not None:
            frame.black_level, frame.meta["black_level_source"] = v, key
            return
    if overscan is not None:
        frame.black_level, frame.meta["black_level_source"] = overscan, "overscan"
        return
    frame.black_level = levels.estimate_black(data)
    frame.meta["black_level_source"] = levels.BLACK_ESTIMATED


def _fits_white(header, data: np.ndarray) -> float:
    """The white level a FITS file declares: ``SATURATE``, else the largest value
    its integer samples can hold (after BSCALE/BZERO), else 1.0 for floats in
    0..1, else unknown (inf). The clip actually in the data is found later
    (:func:`levels.settle_white`)."""
    saturate = _num(header, "SATURATE")
    if saturate is not None:
        return saturate
    bitpix = int(header.get("BITPIX", 16))
    if bitpix > 0:
        if data.dtype.kind in "ui":
            return float(np.iinfo(data.dtype).max)
        # scaled integers (BSCALE ≠ 1) arrive as floats: the largest stored value, scaled
        bscale = _num(header, "BSCALE") or 1.0
        bzero = _num(header, "BZERO") or 0.0
        top = 255 if bitpix == 8 else 2 ** (bitpix - 1) - 1
        return float(bzero + bscale * top) if bscale > 0 else math.inf
    return levels.declared_white(data)


def _parse_date(text: str) -> float | None:
    try:
        d = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


# --------------------------------------------------------------------------
# camera raw


def _read_raw(path: Path) -> Frame:
    import rawpy

    def fail(exc: Exception) -> FrameReadError:
        if isinstance(exc, rawpy.LibRawFileUnsupportedError):
            return FrameReadError(path, "unsupported", "unsupported format: not a raw file LibRaw can decode")
        if isinstance(exc, rawpy.LibRawIOError):
            return FrameReadError(path, "corrupt", "truncated raw file: image data ends early (I/O error)")
        if isinstance(exc, rawpy.LibRawDataError):
            return FrameReadError(path, "corrupt", "corrupt raw file: image data missing or damaged")
        text = str(exc).strip("b'\"")
        return FrameReadError(path, "corrupt", f"cannot decode raw file ({text})")

    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawError as exc:
        raise fail(exc) from None
    with raw:
        try:
            visible = np.array(raw.raw_image_visible, copy=True)
            raw_type = raw.raw_type
            colors = raw.raw_colors_visible[:2, :2].copy() if raw_type == rawpy.RawType.Flat else None
            desc = raw.color_desc.decode("ascii", "replace")
            pattern = raw.raw_pattern
            black = [float(b) for b in raw.black_level_per_channel]
            white = float(raw.white_level)
            other = raw.other
        except rawpy.LibRawError as exc:
            raise fail(exc) from None
    if visible.size == 0:
        raise FrameReadError(path, "no_image", "raw file has no image data")
    # A raw file whose pixel data were stripped still decodes (LibRaw then
    # hands back zeros, or stale memory from an earlier file). No lossless
    # raw compression gets below ~1 bit per pixel, so a file that small
    # cannot hold the image.
    n_pix = visible.shape[0] * visible.shape[1]
    size = path.stat().st_size
    if size < n_pix * MIN_RAW_BYTES_PER_PIXEL:
        raise FrameReadError(
            path,
            "empty",
            f"empty image: {size} bytes cannot hold a {visible.shape[1]}×{visible.shape[0]} sensor's pixels (no image data)",
        )
    if _all_zero(visible):
        raise FrameReadError(path, "empty", "empty image: every pixel is 0 (no image data)")

    frame = Frame(data=visible, path=path, camera="")
    frame.meta["black_level_per_channel"] = black
    if raw_type == rawpy.RawType.Flat:
        if pattern is not None and pattern.shape == (2, 2) and colors is not None:
            frame.bayer = "".join(desc[int(i)] for i in colors.ravel())
            frame.black_level = float(np.mean(black))
        else:
            frame.meta["cfa"] = "non-Bayer mosaic"  # X-Trans and friends: measured as mono
            frame.black_level = float(np.mean(black))
    else:
        # a stack of full colour planes (film scanners, linear DNG): use the
        # planes that carry data, averaged into one luminance plane
        planes = [visible[..., i] for i in range(visible.shape[-1]) if np.any(visible[..., i])]
        frame.data = np.mean(planes, axis=0).round().astype(visible.dtype) if planes else visible[..., 0]
        frame.meta["raw_type"] = "stack"
        frame.meta["planes"] = len(planes)
        frame.black_level = float(np.mean(black))
    frame.meta["black_level_source"] = "raw metadata"
    top = float(frame.data.max())
    if white < top:
        # some writers report a white level below the data (e.g. 255 for 16-bit scans)
        frame.meta["reported_white_level"] = white
        white = float(2 ** int(math.ceil(math.log2(top + 1))) - 1)
    frame.white_level = white
    frame.bit_depth = max(1, int(math.ceil(math.log2(white + 1))))
    levels.settle_white(frame)
    if other is not None:
        if other.iso_speed:
            frame.iso = int(round(other.iso_speed))
        if other.shutter_speed:
            frame.exposure = float(other.shutter_speed)
        ts = other.timestamp
        if ts is not None and ts.year > 1970:
            frame.timestamp = ts.replace(tzinfo=_dt.timezone.utc).timestamp() if ts.tzinfo is None else ts.timestamp()
        if other.focal_length:
            frame.meta["lens_focal_mm"] = float(other.focal_length)
    return frame


# --------------------------------------------------------------------------
# public


def read_frame(path: str | os.PathLike) -> Frame:
    """Read a FITS or camera raw file into a :class:`Frame` (Bayer data stays a mosaic).

    Raises :class:`FrameReadError` for a missing, unsupported, truncated,
    corrupt, image-less or all-zero file.
    """
    p = Path(path)
    if not p.exists():
        raise FrameReadError(p, "not_found", "file not found")
    if p.is_dir():
        raise FrameReadError(p, "unsupported", "is a directory, not a frame file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(80)
    except OSError as exc:
        raise FrameReadError(p, "unreadable", f"cannot open file ({exc.strerror or exc})") from None
    if not head:
        raise FrameReadError(p, "corrupt", "file is empty (0 bytes)")
    suffix = _suffix(p)
    if suffix in FITS_SUFFIXES or head.startswith(b"SIMPLE  ="):
        return _read_fits(p)
    if suffix in RAW_SUFFIXES:
        return _read_raw(p)
    # unknown extension: let LibRaw sniff it, but report it as unsupported if it can't
    try:
        return _read_raw(p)
    except FrameReadError as exc:
        if exc.reason in ("empty", "no_image"):
            raise
        raise FrameReadError(
            p, "unsupported", f"unsupported format '{suffix or p.name}': not FITS or a camera raw file"
        ) from None


def read_fits_bytes(blob: bytes, name: str = "(memory)") -> Frame:
    """A FITS file held in memory (an INDI BLOB) read like :func:`read_frame` reads a
    file; ``name`` stands for the path in messages and ``Frame.path`` stays None.

    Raises :class:`FrameReadError` as :func:`read_frame` does."""
    import io as _io
    if not blob:
        raise FrameReadError(name, "corrupt", "empty image (0 bytes)")
    frame = _read_fits(Path(name), _io.BytesIO(blob))
    frame.path = None
    return frame


def fits_header(frame: Frame):
    """The standard FITS keywords for a frame (an astropy Header)."""
    from astropy.io import fits

    h = fits.Header()
    h["IMAGETYP"] = (IMAGETYP.get(frame.kind, frame.kind.title()), "Type of image")
    h["EXPTIME"] = (float(frame.exposure), "[s] Exposure time")
    if frame.gain is not None:
        h["GAIN"] = (int(frame.gain), "Sensor gain")
    if frame.iso is not None:
        h["ISOSPEED"] = (int(frame.iso), "ISO speed")
    if frame.temperature is not None:
        h["CCD-TEMP"] = (float(frame.temperature), "[C] Sensor temperature")
    meta = {str(k).upper(): v for k, v in frame.meta.items()}
    if frame.timestamp:
        d = _dt.datetime.fromtimestamp(frame.timestamp, tz=_dt.timezone.utc)
        h["DATE-OBS"] = (d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start of exposure")
    elif "DATE-OBS" in meta:
        h["DATE-OBS"] = str(meta["DATE-OBS"])
    for key in ("OBJECT", "FILTER"):
        if meta.get(key) not in (None, ""):
            h[key] = str(meta[key])
    if frame.bayer:
        h["BAYERPAT"] = (frame.bayer, "Bayer pattern of the top-left 2x2")
        h["XBAYROFF"] = 0
        h["YBAYROFF"] = 0
    if frame.pixel_um:
        h["XPIXSZ"] = (float(frame.pixel_um), "[um] Pixel width")
        h["YPIXSZ"] = (float(frame.pixel_um), "[um] Pixel height")
    if frame.focal_mm:
        h["FOCALLEN"] = (float(frame.focal_mm), "[mm] Focal length")
    for key, comment in (("RA", "[deg] Right ascension"), ("DEC", "[deg] Declination")):
        if meta.get(key) is not None:
            try:
                h[key] = (float(meta[key]), comment)
            except (TypeError, ValueError):
                h[key] = str(meta[key])
    if frame.camera:
        h["INSTRUME"] = frame.camera
    if frame.black_level and frame.meta.get("black_level_source") != levels.BLACK_ESTIMATED:
        h["BLKLEVEL"] = (float(frame.black_level), "Black level (ADU)")
    return h


def write_fits(path: str | os.PathLike, frame: Frame) -> Path:
    """Write ``frame`` as FITS atomically: temp file in the same folder, fsync, rename.

    A colour frame (height × width × 3) becomes a cube of NAXIS3 = 3 planes."""
    from astropy.io import fits

    data = np.asarray(frame.data)
    if data.ndim == 3:  # a colour frame (height × width × planes) is stored planes first
        data = np.ascontiguousarray(np.moveaxis(data, -1, 0))
    hdu = fits.PrimaryHDU(data=data, header=fits_header(frame))
    return write_with(path, hdu.writeto)
