"""Imaging engine: star metrics, histogram statistics, exposure advice and frame files.

Pure computation on numpy arrays; no hardware, no clock, no UI.
"""

from .metrics import frame_metrics, measure_frame_stars
from .stars import Star, background, background_map, bin_bayer, centroid, detect_stars, measure_star

__all__ = [
    "Star",
    "background",
    "background_map",
    "bin_bayer",
    "centroid",
    "detect_stars",
    "frame_metrics",
    "measure_frame_stars",
    "measure_star",
]
