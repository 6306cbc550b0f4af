"""Guiding: (the guide engine's screen)."""

from __future__ import annotations

from .base import ComingScreen


class GuidingScreen(ComingScreen):
    TITLE_TEXT = "GUIDING"
    COMING = "Autoguiding (calibration, guiding, dithering, deviation plots) is still to come."
