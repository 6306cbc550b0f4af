"""Stages of the night whose tools come in later releases."""

from __future__ import annotations

from .base import ComingScreen


class CaptureScreen(ComingScreen):
    TITLE_TEXT = "CAPTURE"
    COMING = ("The capture schedule (lights per filter, then darks, flats, biases and dark flats, "
              "with dithering between frames) is still to come.\n"
              "The rig service already writes every frame atomically; see `fieldtui check` for disk space.")


class CalibrationScreen(ComingScreen):
    TITLE_TEXT = "CALIBRATION"
    COMING = ("The calibration checklist and frame counts (darks matching the lights' ISO, exposure "
              "and temperature; flats; biases; dark flats) are still to come.")

