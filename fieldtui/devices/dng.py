"""Write a Bayer mosaic as a DNG, the raw format LibRaw (rawpy) reads like any camera's."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import tifffile

from ..atomic import write_bytes

_CFA_CODES = {"R": 0, "G": 1, "B": 2}
# tifffile will not write an ExifIFD pointer itself: a private tag that sorts in
# the same place stands in for it and is renamed once the EXIF directory exists.
_EXIF_PLACEHOLDER = 34664
EXIF_IFD = 34665


def _add_exif(tiff: bytes, exposure: tuple[int, int], iso: int) -> bytes:
    """Append an EXIF directory (ExposureTime, ISOSpeedRatings), where cameras keep
    them and LibRaw looks for them, and point IFD0's ExifIFD tag at it."""
    with tifffile.TiffFile(io.BytesIO(tiff)) as tf:
        tag = tf.pages[0].tags[_EXIF_PLACEHOLDER]
        bo, entry, value = tf.byteorder, tag.offset, tag.valueoffset
    out = bytearray(tiff)
    if len(out) % 2:
        out.append(0)
    exif = len(out)
    rational = exif + 2 + 2 * 12 + 4
    out += struct.pack(bo + "H", 2)
    out += struct.pack(bo + "HHII", 33434, 5, 1, rational)         # ExposureTime, RATIONAL
    out += struct.pack(bo + "HHIHH", 34855, 3, 1, min(iso, 65535), 0)  # ISOSpeedRatings, SHORT
    out += struct.pack(bo + "I", 0)
    out += struct.pack(bo + "II", *exposure)
    struct.pack_into(bo + "H", out, entry, EXIF_IFD)
    struct.pack_into(bo + "I", out, value, exif)
    return bytes(out)


def write_dng(path: Path, data: np.ndarray, *, bayer: str, black_level: int, white_level: int,
              model: str, exposure_s: float, iso: int, when: str = "") -> Path:
    """Atomically write ``data`` (uint16 mosaic) as an uncompressed CFA DNG."""
    if data.dtype != np.uint16 or data.ndim != 2:
        raise ValueError("a DNG mosaic must be a 2-D uint16 array")
    pattern = tuple(_CFA_CODES[c] for c in bayer)
    num, den = (int(round(exposure_s * 1000)), 1000) if exposure_s < 1000 else (int(exposure_s), 1)
    tags = [
        (33421, "H", 2, (2, 2), True),                       # CFARepeatPatternDim
        (33422, "B", 4, pattern, True),                      # CFAPattern
        (_EXIF_PLACEHOLDER, "I", 1, 0, True),                # becomes ExifIFD (34665), below
        (50706, "B", 4, (1, 4, 0, 0), True),                 # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),                 # DNGBackwardVersion
        (50708, "s", 0, model, True),                        # UniqueCameraModel
        (50710, "B", 3, (0, 1, 2), True),                    # CFAPlaneColor
        (50711, "H", 1, 1, True),                            # CFALayout: rectangular
        (50713, "H", 2, (1, 1), True),                       # BlackLevelRepeatDim
        (50714, "H", 1, int(black_level), True),             # BlackLevel
        (50717, "H", 1, int(white_level), True),             # WhiteLevel
        # ColorMatrix1 (XYZ -> camera), a generic daylight matrix; D65 illuminant.
        (50721, "2i", 9, (6461, 10000, -1488, 10000, -648, 10000, -4599, 10000, 12110, 10000,
                          2738, 10000, -1282, 10000, 1561, 10000, 5765, 10000), True),
        (50778, "H", 1, 21, True),                           # CalibrationIlluminant1
    ]
    if when:
        tags.append((306, "s", 0, when, True))               # DateTime "YYYY:MM:DD HH:MM:SS"
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, photometric=32803, subfiletype=0, extratags=tags, software="fieldtui",
                     metadata=None)
    return write_bytes(path, _add_exif(buf.getvalue(), (num, den), int(iso)))
