"""Write a Bayer mosaic as a DNG, the raw format LibRaw (rawpy) reads like any camera's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ..atomic import write_with

_CFA_CODES = {"R": 0, "G": 1, "B": 2}


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
        (33434, "2I", 1, (num, den), True),                  # ExposureTime
        (34855, "H", 1, int(iso), True),                     # ISOSpeedRatings
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
    return write_with(path, lambda fh: tifffile.imwrite(fh, data, photometric=32803, subfiletype=0,
                                                        extratags=tags, software="fieldtui", metadata=None))
