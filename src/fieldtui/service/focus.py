"""Focus worker hook (see install)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session


def install(session: "Session") -> None:
    """Register the focus commands on a Session."""
    return None
