"""What is attached: serial ports and what answers on them, gphoto2 cameras, ZWO cameras.

Blocking (serial probes, USB enumeration): call it in a thread. A port the
rig already uses is never probed (its driver owns the line); every other
serial port gets two short questions at 9600 baud, LX200's ACK and the
NexStar/SynScan echo, so a hand controller says which protocol it speaks.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

PROBE_TIMEOUT_S = 0.3


@dataclass
class Found:
    kind: str          # "serial", "gphoto2", "zwo"
    where: str         # port path or USB address
    what: str          # description
    answers: str = ""  # the protocol a serial device answered ("lx200", "nexstar", "synscan"), or ""

    def line(self) -> str:
        tail = f": {self.answers} mount" if self.answers else ""
        return f"{self.kind:<8} {self.where} {self.what}{tail}"


def probe_port(port: str, baud: int = 9600, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[str, str]:
    """(protocol, model) of a mount hand controller on ``port``, or ("", reason)."""
    import serial
    try:
        ser = serial.serial_for_url(port, baudrate=baud, timeout=timeout_s, write_timeout=timeout_s,
                                    exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        return "", f"cannot be opened ({exc})"
    try:
        ser.reset_input_buffer()
        ser.write(b"\x06")
        c = ser.read(1)
        if c and c in b"APGLD":
            ser.write(b":GVP#")
            name = ser.read_until(b"#", 40).decode("latin-1").rstrip("#")
            return "lx200", name or "LX200-compatible"
        ser.reset_input_buffer()
        ser.write(b"Kq")
        if ser.read(2) == b"q#":
            ser.write(b"V")
            v = ser.read_until(b"#", 12)
            if len(v) == 7 and all(chr(b) in "0123456789ABCDEFabcdef" for b in v[:6]):
                return "synscan", f"SynScan {int(v[0:2], 16)}.{int(v[2:4], 16):02d}"
            if len(v) == 3:
                return "nexstar", f"NexStar {v[0]}.{v[1]}"
            return "nexstar", "NexStar-compatible"
        return "", "no mount answered"
    except (serial.SerialException, OSError) as exc:
        return "", f"error while asking ({exc})"
    finally:
        ser.close()


def serial_ports(skip: set[str] = frozenset(), extra: list[str] | None = None) -> list[Found]:
    """Every serial port pyserial lists (plus ``extra``), each probed unless in ``skip``."""
    try:
        from serial.tools import list_ports
        ports = [(p.device, p.description or "") for p in list_ports.comports()]
    except Exception:  # noqa: BLE001 - listing ports must never break a check
        ports = []
    ports += [(p, "") for p in (extra or [])]
    found = []
    for dev, desc in ports:
        if dev in skip or os.path.realpath(dev) in {os.path.realpath(s) for s in skip}:
            found.append(Found("serial", dev, "in use by the configured mount"))
            continue
        proto, model = probe_port(dev)
        what = f"{model}" if proto else f"{desc + ', ' if desc and desc != 'n/a' else ''}{model}"
        found.append(Found("serial", dev, what, proto))
    return found


def gphoto2_cameras() -> list[Found]:
    """Cameras libgphoto2 detects (nothing when the binding is not installed)."""
    try:
        import gphoto2 as gp
    except ImportError:
        return []
    try:
        cl = gp.Camera.autodetect()
        return [Found("gphoto2", cl.get_value(i), cl.get_name(i)) for i in range(cl.count())]
    except Exception as exc:  # noqa: BLE001
        return [Found("gphoto2", "-", f"detection failed ({exc})")]


def zwo_cameras(sdk_library: str = "") -> list[Found]:
    """ZWO cameras the SDK lists (nothing when the binding or the SDK is missing)."""
    from .base import DeviceError
    from .zwo import load_binding
    try:
        asi = load_binding(sdk_library)
        return [Found("zwo", f"index {i}", name) for i, name in enumerate(asi.list_cameras())]
    except DeviceError:
        return []
    except Exception as exc:  # noqa: BLE001
        return [Found("zwo", "-", f"listing failed ({exc})")]


def discover(cfg: Any, *, skip_ports: set[str] = frozenset(), extra_ports: list[str] | None = None,
             zwo_library: str | None = None) -> list[dict[str, str]]:
    """Everything attached, as dicts (``kind``, ``where``, ``what``, ``answers``)."""
    items = [*zwo_cameras(cfg.guide_camera.sdk_library if zwo_library is None else zwo_library),
             *serial_ports(skip_ports, extra_ports), *gphoto2_cameras()]
    return [asdict(f) for f in items]
