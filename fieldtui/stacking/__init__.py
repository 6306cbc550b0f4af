"""Stacking engine: masters, calibration, debayering, registration, frame
selection, pixel rejection and stacking, and a preview of the result.

The math modules (:mod:`.combine`, :mod:`.calibrate`, :mod:`.debayer` and its :mod:`.rcd`,
:mod:`.register`, :mod:`.quality`, :mod:`.preview`) are pure: numpy arrays
and parameters in, arrays and results out. :mod:`.pipeline` runs them on
files with bounded memory (the ``fieldtui stack`` command and the stacking
worker call it).
"""

from .calibrate import Masters, normalise_flat
from .combine import Rejection, combine
from .pipeline import StackError, StackOptions, StackResult, stack, write_preview, write_stack
from .register import Registration, RegistrationError, match_stars, warp

__all__ = [
    "Masters", "Registration", "RegistrationError", "Rejection", "StackError", "StackOptions", "StackResult",
    "combine", "match_stars", "normalise_flat", "stack", "warp", "write_preview",
    "write_stack",
]
