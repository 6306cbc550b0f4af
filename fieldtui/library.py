"""The frame library: an index of every frame and master on disk, in SQLite (WAL mode).

The files are the truth; the index can always be rebuilt from them
(:meth:`Library.scan`, ``fieldtui library scan DIR``). FITS frames are read
from their headers (IMAGETYP, EXPTIME, ISOSPEED or GAIN, CCD-TEMP, DATE-OBS,
OBJECT, FILTER, and the app's NIGHT, FOCUSPOS, FLATMEAN, FLATCLIP); camera
raw files from their EXIF through rawpy (ISO, exposure, camera, time), the
type from the folder the capture pattern put them in (``.../dark/...``).
A master is a frame whose type starts with ``master`` (IMAGETYP
``Master Dark``…) and is indexed with the set it stands for, and with
``source`` (header ``SRCHASH``: a digest of the frames it was combined
from, :func:`source_hash`). :meth:`Library.find_master` applies the field
guide's reuse rules to masters: a bias per ISO/gain and a dark (or dark
flat) per ISO/gain, exposure and temperature (within a tolerance) from any
night; a flat only from the lights' own night (and filter, and focus
position when both are known).

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
           "night", "date_obs", "focus", "mean_frac", "clipped_frac", "camera", "size", "mtime", "source")
#: sensor temperature tolerance for reusing a dark (°C; the calibration rules' default)
DARK_TEMP_TOL_C = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    path TEXT PRIMARY KEY, type TEXT, master INTEGER, exposure REAL, iso INTEGER, gain INTEGER,
    temperature REAL, filter TEXT, object TEXT, night TEXT, date_obs TEXT, focus INTEGER,
    mean_frac REAL, clipped_frac REAL, camera TEXT, size INTEGER, mtime REAL, source TEXT);
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
        rec["source"] = h.get("SRCHASH")
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
        have = {row[1] for row in self.con.execute("PRAGMA table_info(frames)")}
        if "source" not in have:  # an index made before masters were indexed with their source
            with self.con:
                self.con.execute("ALTER TABLE frames ADD COLUMN source TEXT")

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

    def add_file(self, path: str | os.PathLike) -> dict[str, Any] | None:
        """Index one file (a master just written, a frame just saved); returns its record,
        or None when it is no frame."""
        rec = read_record(Path(path).resolve())
        if rec is not None:
            self.add([rec])
        return rec

    def find_master(self, kind: str, *, iso: int | None = None, gain: int | None = None,
                    exposure: float | None = None, temperature: float | None = None,
                    night: str | None = None, filter: str = "", focus: int | None = None,  # noqa: A002
                    source: str | None = None, temp_tol_c: float = DARK_TEMP_TOL_C) -> dict[str, Any] | None:
        """The newest master of ``kind`` (``bias``, ``dark``, ``darkflat``, ``flat``) the
        field guide's rules let a set of lights use, or None.

        - bias: same ISO/gain, any night;
        - dark, darkflat: same ISO/gain and exposure (``exposure`` s, within 0.1 %), sensor
          temperature within ``temp_tol_c`` °C when both are known, any night;
        - flat: the same ``night`` only (never another night's: dust and the camera's
          rotation move), same ``filter``, and the same focus position when both are known.

        ``source`` (a :func:`source_hash`): only a master combined from exactly those frames.
        A master whose file is gone is not returned."""
        if kind not in TYPES or kind == "light":
            raise ValueError(f"no master of type {kind!r}")
        where = ["master = 1", "type = ?", "iso IS ?", "gain IS ?"]
        args: list[Any] = [kind, iso, gain]
        if source is not None:
            where.append("source = ?")
            args.append(source)
        if kind in ("dark", "darkflat"):
            if exposure is None:
                return None
            where.append("ABS(exposure - ?) <= 1e-3 * MAX(ABS(?), 1e-6)")
            args += [exposure, exposure]
            if temperature is not None:
                where.append("(temperature IS NULL OR ABS(temperature - ?) <= ?)")
                args += [temperature, temp_tol_c]
        if kind == "flat":
            if not night:
                return None
            where += ["night = ?", "COALESCE(filter, '') = ?"]
            args += [night, filter or ""]
            if focus is not None:
                where.append("(focus IS NULL OR focus = ?)")
                args.append(focus)
        for rec in sorted(self.frames(" AND ".join(where), tuple(args)), key=lambda r: r["mtime"] or 0,
                          reverse=True):
            if Path(rec["path"]).is_file():
                return rec
        return None

    def calibration_for(self, light: dict[str, Any], temp_tol_c: float = DARK_TEMP_TOL_C) -> dict[str, list[str]]:
        """The calibration frames (not masters) the rules give a light (its record, e.g. from
        :func:`read_record`): ``{"darks", "flats", "biases", "dark_flats": [paths]}``.

        Biases at its ISO/gain and darks at its ISO/gain, exposure and temperature (±
        ``temp_tol_c``) from any night; flats of its own night, filter (and focus position
        when both are known); dark flats at the flats' ISO/gain and exposure. Of frames from
        several nights, those of one night are taken: the light's own, else the latest
        before it (else the earliest after it)."""
        night = light.get("night") or ""

        def one_night(recs: list[dict[str, Any]]) -> list[str]:
            nights = sorted({r.get("night") or "" for r in recs})
            if not nights:
                return []
            before = [n for n in nights if n <= night]
            pick = before[-1] if before else nights[0]
            return [r["path"] for r in recs if (r.get("night") or "") == pick]

        def same_setting(r: dict[str, Any], ref: dict[str, Any]) -> bool:
            return r.get("iso") == ref.get("iso") and r.get("gain") == ref.get("gain")

        def same_exp(a: float | None, b: float | None) -> bool:
            return a is not None and b is not None and abs(a - b) <= 1e-3 * max(abs(a), abs(b), 1e-6)

        recs = self.frames("master = 0 AND type != 'light'")
        biases = [r for r in recs if r["type"] == "bias" and same_setting(r, light)]
        t = light.get("temperature")
        darks = [r for r in recs if r["type"] == "dark" and same_setting(r, light)
                 and same_exp(r.get("exposure"), light.get("exposure"))
                 and (t is None or r.get("temperature") is None or abs(r["temperature"] - t) <= temp_tol_c)]
        flats = [r for r in recs if r["type"] == "flat" and night and r.get("night") == night
                 and (r.get("filter") or "") == (light.get("filter") or "")
                 and (light.get("focus") is None or r.get("focus") is None or r["focus"] == light["focus"])]
        dflats = [r for r in recs if r["type"] == "darkflat" and flats and same_setting(r, flats[0])
                  and same_exp(r.get("exposure"), flats[0].get("exposure"))]
        return {"darks": one_night(darks), "flats": [r["path"] for r in flats], "biases": one_night(biases),
                "dark_flats": one_night(dflats)}


def source_hash(paths: Iterable[str | os.PathLike]) -> str:
    """A digest of a set of frame files (resolved paths, order-free), which names the
    frames a master was combined from (header ``SRCHASH``)."""
    import hashlib
    h = hashlib.sha1()
    for p in sorted(str(Path(x).resolve()) for x in paths):
        h.update(p.encode() + b"\0")
    return h.hexdigest()[:16]


def default_db(data_root: Path) -> Path:
    """Where the index of a data root lives: DATA/.library.sqlite."""
    return Path(data_root) / ".library.sqlite"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
