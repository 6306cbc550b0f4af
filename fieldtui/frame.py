"""The one in-memory frame type every layer passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Frame:
    """A single exposure as it came off a sensor.

    ``data`` is the raw sensor array (uint16 for cameras, float for stacked
    results), not debayered: for a colour sensor ``bayer`` names the 2×2
    pattern of the top-left corner ("RGGB", "BGGR", "GRBG", "GBRG").
    ``black_level`` and ``white_level`` are in the same units as ``data``.
    ``white_level`` is the saturation level: frames read from files (and
    any frame after :func:`fieldtui.imaging.metrics.frame_metrics`) carry
    the clip found in the data when it is below the declared level, with
    ``meta["white_level_source"]`` "data" and ``meta["white_level_declared"]``.
    ``meta["black_level_source"]`` says where a file's black level came from
    ("raw metadata", "PEDESTAL", "BLKLEVEL", "overscan" or "estimated from
    the data"); absent, the camera that made the frame set it. A colour
    frame's ``data`` is height × width × 3 (``meta["colour"]`` "RGB").
    """

    data: np.ndarray
    exposure: float = 0.0
    timestamp: float = 0.0
    gain: int | None = None
    iso: int | None = None
    bayer: str | None = None
    black_level: float = 0.0
    white_level: float = 65535.0
    bit_depth: int = 16
    pixel_um: float | None = None
    focal_mm: float | None = None
    temperature: float | None = None
    camera: str = ""
    kind: str = "light"
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def arcsec_per_px(self) -> float | None:
        if self.pixel_um and self.focal_mm:
            return 206.265 * self.pixel_um / self.focal_mm
        return None
