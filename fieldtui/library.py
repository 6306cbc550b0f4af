"""The frame library: an index of every frame and master on disk, in SQLite (WAL mode).

The files are the truth; the index can always be rebuilt from them
(:meth:`Library.scan`, ``fieldtui library scan DIR``). FITS frames are read
from their headers (IMAGETYP, EXPTIME, ISOSPEED or GAIN, CCD-TEMP, DATE-OBS,
OBJECT, FILTER, and the app's NIGHT, FOCUSPOS, FLATMEAN, FLATCLIP); camera
raw files from their EXIF through rawpy (ISO, exposure, camera, time), the
type from the folder the capture pattern put them in (``.../dark/...``).
A master is a frame whose type starts with ``master`` (IMAGETYP
``Master Dark``…) and is indexed with the set it stands for.

:meth:`Library.frames` gives records in the form the calibration rules take
(:mod:`fieldtui.capture.calibration`).
"""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

FITS_EXT = {".fits", ".fit", ".fts"}
RAW_EXT = {".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".raf", ".rw2", ".pef"}
TYPES = ("light", "dark", "flat", "bias", "darkflat")
COLUMNS = ("path", "type", "master", "exposure", "iso", "gain", "temperature", "filter", "object",
           "night", "date_obs", "focus", "mean_frac", "clipped_frac", "camera", "size", "mtime")

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    path TEXT PRIMARY KEY, type TEXT, master INTEGER, exposure REAL, iso INTEGER, gain INTEGER,
    temperature REAL, filter TEXT, object TEXT, night TEXT, date_obs TEXT, focus INTEGER,
    mean_frac REAL, clipped_frac REAL, camera TEXT, size INTEGER, mtime REAL);
CREATE INDEX IF NOT EXISTS frames_set ON frames (type, iso, gain, exposure);
"""


def _type_of(imagetyp: str, path: Path) -> tuple[str | None, bool]:
    t = (imagetyp or "").lower().replace(" frame", "").replace("-", "").replace("_", "").strip()
    master = t.startswith("master")
    t = t.replace("master", "").strip()
    t = {"flatdark": "darkflat", "darkflat": "darkflat", "offset": "bias", "zero": "bias",
         "object": "light"}.get(t, t)
    if t in TYPES:
        return t, master
    for part in reversed(path.parts[:-1]):
        if part.lower() in TYPES:
            return part.lower(), False
    return None, master


def _night_of(path: Path) -> str | None:
    for part in path.parts:
        if len(part) == 10 and part[4] == "-" and part[7] == "-" and part.replace("-", "").isdigit():
            return part
    return None


def read_record(path: Path) -> dict[str, Any] | None:
    """The library record of one file, or None when it is no frame (unreadable, unknown type)."""
    ext = path.suffix.lower()
    st = path.stat()
    rec: dict[str, Any] = {k: None for k in COLUMNS}
    rec.update(path=str(path), size=st.st_size, mtime=st.st_mtime, night=_night_of(path))
    if ext in FITS_EXT:
        from astropy.io import fits
        try:
            h = fits.getheader(path)
        except (OSError, ValueError):
            return None
        rec["type"], rec["master"] = _type_of(str(h.get("IMAGETYP", "")), path)
        for col, key in (("exposure", "EXPTIME"), ("temperature", "CCD-TEMP"), ("mean_frac", "FLATMEAN"),
                         ("clipped_frac", "FLATCLIP")):
            v = h.get(key)
            rec[col] = float(v) if isinstance(v, (int, float)) else None
        for col, key in (("iso", "ISOSPEED"), ("gain", "GAIN"), ("focus", "FOCUSPOS")):
            v = h.get(key)
            rec[col] = int(v) if isinstance(v, (int, float)) else None
        rec["filter"] = str(h.get("FILTER", "") or "")
        rec["object"] = h.get("OBJECT")
        rec["date_obs"] = h.get("DATE-OBS")
        rec["camera"] = h.get("INSTRUME")
        rec["night"] = h.get("NIGHT") or rec["night"]
    elif ext in RAW_EXT:
        import rawpy
        try:
            with rawpy.imread(str(path)) as raw:
                other = raw.other
                rec["iso"] = int(round(other.iso_speed)) if other.iso_speed else None
                rec["exposure"] = float(other.shutter_speed) if other.shutter_speed else None
                ts = other.timestamp
                if ts is not None and ts.year > 1970:
                    rec["date_obs"] = ts.strftime("%Y-%m-%dT%H:%M:%S")
        except (rawpy.LibRawError, OSError, AttributeError, ValueError):
            return None
        rec["type"], rec["master"] = _type_of("", path)
        rec["filter"] = ""
    else:
        return None
    if rec["type"] is None:
        return None
    rec["master"] = bool(rec["master"])
    return rec


class Library:
    """The index at ``db`` (SQLite, WAL journal; made if missing)."""

    def __init__(self, db: str | os.PathLike) -> None:
        self.path = Path(db)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(SCHEMA)

    def close(self) -> None:
        self.con.close()

    def add(self, records: Iterable[dict[str, Any]]) -> int:
        rows = [tuple(r[c] for c in COLUMNS) for r in records]
        with self.con:
            self.con.executemany(f"INSERT OR REPLACE INTO frames ({', '.join(COLUMNS)}) VALUES "
                                 f"({', '.join('?' * len(COLUMNS))})", rows)
        return len(rows)

    def scan(self, root: str | os.PathLike, *, rebuild: bool = False) -> dict[str, Any]:
        """Index every frame under ``root`` (hidden folders and ``.part`` files skipped);
        files gone since the last scan leave the index. ``rebuild``: start from empty.
        Returns counts: ``indexed``, ``skipped`` (not frames), ``removed``, ``unchanged``."""
        root = Path(root).resolve()
        if rebuild:
            with self.con:
                self.con.execute("DELETE FROM frames WHERE path LIKE ?", (f"{root}/%",))
        known = dict(self.con.execute("SELECT path, mtime FROM frames WHERE path LIKE ?", (f"{root}/%",)))
        seen, batch, skipped, unchanged = set(), [], 0, 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in FITS_EXT | RAW_EXT:
                    continue
                p = Path(dirpath) / name
                seen.add(str(p))
                if known.get(str(p)) == p.stat().st_mtime:
                    unchanged += 1
                    continue
                rec = read_record(p)
                if rec is None:
                    skipped += 1
                else:
                    batch.append(rec)
        gone = [p for p in known if p not in seen]
        with self.con:
            self.con.executemany("DELETE FROM frames WHERE path = ?", [(p,) for p in gone])
        n = self.add(batch)
        return {"indexed": n, "skipped": skipped, "removed": len(gone), "unchanged": unchanged}

    def frames(self, where: str = "", args: tuple = ()) -> list[dict[str, Any]]:
        """Every record (sorted by path) as a dict of :data:`COLUMNS`; ``where``: an SQL filter."""
        cur = self.con.execute(f"SELECT {', '.join(COLUMNS)} FROM frames "
                               f"{'WHERE ' + where if where else ''} ORDER BY path", args)
        return [dict(zip(COLUMNS, row)) for row in cur]


def default_db(data_root: Path) -> Path:
    """Where the index of a data root lives: DATA/.library.sqlite."""
    return Path(data_root) / ".library.sqlite"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
