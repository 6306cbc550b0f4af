"""How far the framing moved between two lights of the same field (a meridian flip's goto).

The star lists of both frames (:func:`fieldtui.stacking.quality.measure`) are matched by
similar triangles (:func:`fieldtui.stacking.register.match_stars`, the method of astroalign
and Siril's global star alignment), which does not mind the 180° turn of a flip; the
earlier frame's centre carried into the later frame says where the old framing lies now.
Pure code: arrays in, figures out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FramingOffset:
    """Where the reference frame's centre lies in the new frame, relative to its centre.

    ``dx_px``, ``dy_px``: sensor pixels (x right, y down); ``rotation_deg``: the field's
    turn from the reference (about ±180 after a flip); ``matched``: star pairs used."""

    dx_px: float
    dy_px: float
    rotation_deg: float
    matched: int

    @property
    def offset_px(self) -> float:
        return math.hypot(self.dx_px, self.dy_px)


def framing_offset(ref: np.ndarray, ref_bayer: str | None, new: np.ndarray,
                   new_bayer: str | None) -> FramingOffset:
    """The framing offset between raw frames ``ref`` and ``new`` (both ``(H, W)``, the same
    sensor). Raises :class:`fieldtui.stacking.register.RegistrationError` when their stars do
    not match (clouds, trails, another field)."""
    from ..stacking.quality import measure
    from ..stacking.register import match_stars
    a = measure(np.asarray(ref), ref_bayer)
    b = measure(np.asarray(new), new_bayer)
    reg = match_stars(a.xy, b.xy, tolerance=3.0)
    h, w = np.asarray(new).shape[:2]
    c = np.array([[(w - 1) / 2.0, (h - 1) / 2.0]])
    px, py = reg.apply(c)[0]
    return FramingOffset(float(px - c[0, 0]), float(py - c[0, 1]), float(reg.rotation_deg), int(reg.matched))
