"""Imaging engine: star metrics, histogram statistics, exposure advice and frame files.

Pure computation on numpy arrays; no hardware, no clock, no UI.
"""

from .advice import advise
from .align import match_offset
from .io import FrameReadError, read_frame, write_fits
from .metrics import frame_metrics, measure_frame_stars
from .stars import Star, background, background_map, bin_bayer, centroid, detect_stars, measure_star

__all__ = [
    "FrameReadError",
    "Star",
    "advise",
    "background",
    "background_map",
    "bin_bayer",
    "centroid",
    "detect_stars",
    "frame_metrics",
    "match_offset",
    "measure_frame_stars",
    "measure_star",
    "read_frame",
    "write_fits",
]
