"""The guide camera's dark library: build it, store it, find the right dark.

One file per exposure and gain, ``guide_dark_<ms>ms_g<gain>.npz`` in the
state folder's ``guide_darks/`` (:func:`default_folder`), each written
atomically (a crash mid-write leaves the old file).  The master dark and
its bad-pixel map come from :mod:`fieldtui.guiding.darks`; the guide worker
subtracts the dark whose exposure is closest for the gain in use and
replaces the mapped hot pixels, so they never become guide stars.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np

from ..atomic import write_with
from ..guiding.darks import GuideDark, make_guide_dark, nearest

DEFAULT_EXPOSURES = (0.5, 1.0, 2.0, 4.0)


def default_folder() -> Path:
    from .recorder import state_dir
    return state_dir() / "guide_darks"


class DarkLibrary:
    """Guide darks in ``folder`` (made when the first one is saved)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self._cache: list[GuideDark] | None = None

    @staticmethod
    def file_name(exposure_s: float, gain: int) -> str:
        return f"guide_dark_{int(round(exposure_s * 1000))}ms_g{int(gain)}.npz"

    def save(self, gd: GuideDark) -> Path:
        buf = io.BytesIO()
        np.savez_compressed(buf, dark=gd.dark.astype(np.float32), bad=gd.bad,
                            meta=np.array([gd.exposure_s, gd.gain, gd.frames,
                                           np.nan if gd.temperature_c is None else gd.temperature_c]))
        path = write_with(self.folder / self.file_name(gd.exposure_s, gd.gain),
                          lambda fh: fh.write(buf.getvalue()))
        self._cache = None
        return path

    def load_all(self) -> list[GuideDark]:
        """Every readable dark in the folder (an unreadable file is skipped)."""
        if self._cache is not None:
            return self._cache
        out: list[GuideDark] = []
        if self.folder.is_dir():
            for p in sorted(self.folder.glob("guide_dark_*ms_g*.npz")):
                try:
                    with np.load(p) as z:
                        e, g, n, temp = (float(v) for v in z["meta"])
                        out.append(GuideDark(e, int(g), z["dark"].astype(np.float32),
                                             z["bad"].astype(bool), int(n),
                                             None if np.isnan(temp) else temp))
                except (OSError, ValueError, KeyError):
                    continue
        self._cache = out
        return out

    def find(self, exposure_s: float, gain: int, shape: tuple[int, int] | None = None) -> GuideDark | None:
        """The dark for ``gain`` with the closest exposure (and the frame's
        ``shape`` (h, w) when given), or None."""
        darks = [d for d in self.load_all() if shape is None or d.dark.shape == tuple(shape)]
        return nearest(darks, exposure_s, gain)


async def build_dark_library(camera: Any, clock: Any, library: DarkLibrary, *, gain: int,
                             exposures: tuple[float, ...] = DEFAULT_EXPOSURES, frames: int = 10,
                             cover: Callable[[bool], Awaitable[None] | None] | None = None,
                             on_progress: Callable[[str], None] | None = None) -> list[GuideDark]:
    """Take ``frames`` darks at each exposure with the guide scope covered,
    store each master dark and bad-pixel map in ``library``, return them.

    ``cover(True)`` / ``cover(False)`` covers and uncovers the scope (the
    simulated rig's cap; with a real rig the user caps it before and this is
    None).  Raises ValueError for no exposures or fewer than 3 frames."""
    if not exposures:
        raise ValueError("no exposures to take darks for")
    if frames < 3:
        raise ValueError(f"{frames} dark frames are too few for a median; take at least 3")
    out: list[GuideDark] = []

    async def _cover(on: bool) -> None:
        if cover is not None:
            r = cover(on)
            if r is not None:
                await r

    await _cover(True)
    try:
        for e in exposures:
            shots = []
            for i in range(frames):
                if on_progress:
                    on_progress(f"dark {i + 1}/{frames} at {e:g} s, gain {gain}")
                f = await camera.expose(e, gain)
                shots.append(np.asarray(f.data))
            gd = await clock.run_blocking(make_guide_dark, shots, e, gain,
                                          getattr(f, "temperature", None))
            library.save(gd)
            out.append(gd)
    finally:
        await _cover(False)
    return out
