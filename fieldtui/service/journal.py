"""The capture journal: an append-only JSON-lines file, fsynced after every record.

Each record is one line ``{"ev": ..., "t": ...}``; the sequencer writes
``plan`` (once), ``planned`` (a sequence and its count), ``started`` (a frame
and the path it will take, before the exposure), ``finished`` (after the
file is on disk under its final name), ``set`` (a sequence complete), and
``flat_exposure``/``stopped``. A kill at any moment leaves at worst a last
line cut short, which :meth:`Journal.read` ignores (and the next append
starts on a fresh line), so every ``finished`` record read back names a
file that is complete on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


class Journal:
    """Records of one plan's run, at ``path`` (made with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = None

    def read(self) -> list[dict[str, Any]]:
        """Every complete record, in order ([] for a new journal)."""
        return list(self._iter())

    def _iter(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(rec, dict) and "ev" in rec:
                yield rec

    def append(self, ev: str, **fields: Any) -> dict[str, Any]:
        """Write one record and fsync it before returning (raises OSError on a full disk)."""
        if self._fh is None:
            self._fh = open(self.path, "ab")
            if self._fh.tell() > 0:
                with open(self.path, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        self._fh.write(b"\n")  # a line cut short by a kill: start afresh
        rec = {"ev": ev, **fields}
        self._fh.write((json.dumps(rec, separators=(",", ":"), default=str) + "\n").encode())
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return rec

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
