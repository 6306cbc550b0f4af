"""Small FITS frames with the headers the frame library reads, for checklist tests."""

from pathlib import Path

import numpy as np
from astropy.io import fits

IMAGETYP = {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Field", "bias": "Bias Frame"}


def write_frames(root: Path, night: str, obj: str, typ: str, n: int, *, exposure: float, iso: int,
                 temp: float = 13.0, filt: str = "", focus: int | None = 5000,
                 mean_frac: float | None = None) -> list[Path]:
    """``n`` 8×8 frames under ROOT/NIGHT/OBJ/TYPE/ with IMAGETYP, EXPTIME, ISOSPEED, CCD-TEMP,
    OBJECT, FILTER, NIGHT, FOCUSPOS (and FLATMEAN/FLATCLIP for flats)."""
    folder = Path(root) / night / obj / typ
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(1, n + 1):
        h = fits.Header()
        h["IMAGETYP"] = IMAGETYP[typ]
        h["EXPTIME"] = exposure
        h["ISOSPEED"] = iso
        h["CCD-TEMP"] = temp
        h["OBJECT"] = obj
        h["FILTER"] = filt
        h["NIGHT"] = night
        if focus is not None:
            h["FOCUSPOS"] = focus
        if typ == "flat":
            h["FLATMEAN"] = 0.5 if mean_frac is None else mean_frac
            h["FLATCLIP"] = 0.0
        p = folder / f"{obj}_{typ}_{exposure:g}s_ISO{iso}_{i:04d}.fits"
        fits.PrimaryHDU(np.zeros((8, 8), np.uint16), header=h).writeto(p)
        out.append(p)
    return out
