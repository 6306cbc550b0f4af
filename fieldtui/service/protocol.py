"""The rig service's wire protocol: versioned JSON lines over a Unix socket.

Service → client::

    {"v": 1, "type": "hello", "pid": 123, "snapshot": {...}}      once, on connect
    {"v": 1, "type": "event", "kind": "DeviceStatus", "data": {...}}
    {"v": 1, "type": "reply", "id": 7, "ok": true, "result": ...}
    {"v": 1, "type": "reply", "id": 8, "ok": false, "error": "..."}

Client → service::

    {"v": 1, "type": "command", "id": 7, "name": "checklist.toggle", "args": {"item": "caps"}}

A peer speaking another major version is refused with a message saying so.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 1
MAX_LINE = 16 * 1024 * 1024


class ProtocolError(Exception):
    pass


def _default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot send {type(o).__name__}")


def encode(msg: dict[str, Any]) -> bytes:
    return (json.dumps({"v": VERSION, **msg}, default=_default, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a protocol message: {exc}") from None
    if not isinstance(msg, dict) or "type" not in msg:
        raise ProtocolError("not a protocol message: no type")
    if msg.get("v") != VERSION:
        raise ProtocolError(f"protocol version {msg.get('v')!r} spoken, this fieldtui speaks {VERSION}: "
                            "restart the service after upgrading (fieldtui service stop)")
    return msg


def runtime_dir() -> Path:
    """The user's own runtime folder for the socket and lock (mode 0700)."""
    env = os.environ.get("FIELDTUI_RUNTIME_DIR")
    if env:
        d = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        d = Path(os.environ["XDG_RUNTIME_DIR"]) / "fieldtui"
    else:
        d = Path(tempfile.gettempdir()) / f"fieldtui-{os.getuid()}"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{d} belongs to another user: refusing to put the rig's socket there")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)
    return d


def socket_path() -> Path:
    return runtime_dir() / "rig.sock"


def lock_path() -> Path:
    return runtime_dir() / "rig.lock"
