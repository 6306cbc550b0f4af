"""Typed async interfaces every device implementation provides.

Vendors stay behind these: the Session, the engines and the UI only ever see
``GuideCamera``, ``MainCamera``, ``Mount``, ``GuidePort`` and ``Focuser``.
Blocking vendor calls run off the event loop with a timeout on every call
(:func:`fieldtui.devices.base.blocking`).
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

from ..frame import Frame

T = TypeVar("T")

Direction = Literal["N", "S", "E", "W"]
DIRECTIONS: tuple[Direction, ...] = ("N", "S", "E", "W")
SIDEREAL_ARCSEC_PER_S = 15.041
TRACKING_RATES = ("sidereal", "lunar", "solar")


class DeviceError(Exception):
    """A device failed in a way the user can act on; the message says how."""


class DeviceDisconnected(DeviceError):
    """The device went away (unplugged, powered off, USB reset)."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class DeviceGarbage(DeviceError):
    """The device answered something that makes no sense."""


class DeviceUnsupported(DeviceError):
    """The device, or its driver, cannot do what was asked (a mount without park, say)."""


class VendorLibraryMissing(DeviceError):
    """A vendor SDK or Python binding is not installed on this machine."""


@dataclass
class DeviceInfo:
    kind: str
    driver: str
    model: str
    details: dict[str, Any] = field(default_factory=dict)


class Device(abc.ABC):
    kind: str = "device"
    driver: str = ""

    @abc.abstractmethod
    async def connect(self) -> DeviceInfo: ...

    async def disconnect(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return getattr(self, "_connected", False)


class GuideCamera(Device):
    kind = "guide_camera"
    width: int
    height: int
    pixel_um: float
    bit_depth: int

    @abc.abstractmethod
    async def expose(self, seconds: float, gain: int | None = None,
                     roi: tuple[int, int, int, int] | None = None) -> Frame:
        """Take one exposure; ``roi`` is (x, y, width, height)."""


class MainCamera(Device):
    kind = "main_camera"
    width: int
    height: int
    pixel_um: float
    bit_depth: int
    bayer: str | None

    @abc.abstractmethod
    async def expose(self, seconds: float, iso: int | None = None,
                     path: Path | None = None, kind: str = "light") -> Frame:
        """Take one exposure. With ``path`` the camera's own raw file is
        saved there (atomically) and read back; ``Frame.path`` names it."""

    async def live_view(self, seconds: float = 1.0, iso: int | None = None) -> Frame:
        """A quick frame for focusing and framing (no file kept)."""
        return await self.expose(seconds, iso)


PierSide = Literal["east", "west", "unknown"]


@dataclass
class MountState:
    """Where the mount points, as it reports it.

    ``pier_side`` follows ASCOM's and INDI's convention (the side of the pier the
    telescope is on): ``"west"`` = on the west side, pointing east (the usual side for
    a target east of the meridian, hour angle < 0); ``"east"`` = on the east side,
    pointing west (after a meridian flip, hour angle > 0); ``"unknown"`` when the mount
    or its protocol does not say (never guessed from the hour angle: a mount tracking
    past the meridian without flipping is still on its first side).
    """

    ra_deg: float
    dec_deg: float
    tracking: bool
    pier_side: PierSide = "unknown"
    slewing: bool = False


class Mount(Device):
    kind = "mount"

    @abc.abstractmethod
    async def state(self) -> MountState: ...

    @abc.abstractmethod
    async def slew_to(self, ra_deg: float, dec_deg: float) -> None: ...

    async def sync(self, ra_deg: float, dec_deg: float) -> None:
        raise DeviceError(f"{self.driver} mount cannot sync")

    async def set_tracking(self, on: bool) -> None:
        raise DeviceError(f"{self.driver} mount cannot switch tracking")

    async def pulse(self, direction: Direction, ms: int) -> None:
        raise DeviceError(f"{self.driver} mount takes no guide pulses")

    async def abort(self) -> None:
        return None

    can_flip: bool = False
    """Whether :meth:`flip` can take the telescope to the other side of the pier."""

    async def flip(self) -> None:
        """Meridian flip: slew to the coordinates the mount points at now, on the other side of
        the pier (the target must be past the meridian); returns when the slew has ended.
        Raises DeviceUnsupported when the mount or its driver cannot (see :attr:`can_flip`),
        DeviceError when the target is not past the meridian."""
        raise DeviceUnsupported(f"{self.driver} mount cannot do a meridian flip")

    async def park(self) -> None:
        """Slew to the park position and stop tracking; returns when parked.
        Raises DeviceUnsupported when the mount or its driver cannot park."""
        raise DeviceUnsupported(f"{self.driver} mount cannot park")

    async def set_tracking_rate(self, rate: str) -> None:
        """Track at ``rate``, one of :data:`TRACKING_RATES`. Raises DeviceUnsupported when the
        mount or its driver cannot change the rate (or not to this one), DeviceError for an
        unknown rate."""
        raise DeviceUnsupported(f"{self.driver} mount cannot change its tracking rate")

    async def set_guide_rate(self, fraction: float) -> None:
        """Guide speed as a fraction of sidereal (0.05–1). Raises DeviceUnsupported when the
        mount or its driver cannot set it, DeviceError when ``fraction`` is out of range."""
        raise DeviceUnsupported(f"{self.driver} mount cannot change its guide rate")

    async def altaz(self) -> tuple[float, float]:
        """(altitude, azimuth) in degrees, azimuth from north through east, as the mount reports
        them. Raises DeviceUnsupported when the mount or its protocol has no Alt/Az."""
        raise DeviceUnsupported(f"{self.driver} mount does not report altitude and azimuth")


class GuidePort(Device):
    """Where guide pulses go: the guide camera's ST4 port or the mount."""

    kind = "guide_port"
    guide_rate: float = 0.5  # fraction of sidereal
    pier_aware: bool = False
    """True when N/S pulses always move the telescope north/south on the sky whatever the pier
    side (a mount's own pulse-guide command, which knows its side); False for an ST4 port,
    whose Dec motor runs the same way on both sides, so after a meridian flip a North pulse
    moves the telescope south. The guider flips its calibration accordingly."""

    @abc.abstractmethod
    async def pulse(self, direction: Direction, ms: int) -> None:
        """Move at the guide rate toward ``direction`` for ``ms`` milliseconds.
        Returns when the pulse has finished."""


class Focuser(Device):
    kind = "focuser"
    max_position: int

    @abc.abstractmethod
    async def position(self) -> int: ...

    @abc.abstractmethod
    async def move_to(self, position: int) -> int: ...

    async def move_by(self, steps: int) -> int:
        return await self.move_to(await self.position() + steps)


async def blocking(fn: Callable[..., T], *args: Any, timeout: float, what: str) -> T:
    """Run a blocking vendor call in a thread with a timeout."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
    except asyncio.TimeoutError as exc:
        raise DeviceTimeout(f"{what}: no answer within {timeout:g} s") from exc
