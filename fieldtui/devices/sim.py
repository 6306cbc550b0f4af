"""The simulated rig: every device on one :class:`~fieldtui.devices.sky.Sky`.

Faults are switched on through :class:`SimFaults` (``rig.faults``): dropped
frames, lost star (clouds), disconnects, hangs, slow and garbage answers.

The sky's physics runs on the clock's monotonic time (a wall-clock step does
not move the mount), frames carry the wall time they started at, and every
render and file write runs off the event loop through
:meth:`~fieldtui.clock.Clock.run_blocking` (on the virtual clock, time holds
until it is done).  Each camera draws its noise from its own random stream,
so frames rendered at the same time in two threads stay reproducible.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..clock import Clock
from ..config import Config
from ..frame import Frame
from .base import (TRACKING_RATES, DeviceDisconnected, DeviceError, DeviceGarbage, DeviceInfo,
                   DeviceUnsupported, Direction, Focuser, GuideCamera, GuidePort, MainCamera, Mount,
                   MountState)
from .dng import write_dng
from .sky import Sky

DEVICE_NAMES = ("guide_camera", "main_camera", "mount", "guide_port", "focuser")


@dataclass
class SimFaults:
    """Faults on demand. Device names are those of :data:`DEVICE_NAMES`."""

    drop_frames: dict[str, int] = field(default_factory=dict)   # next n exposures fail
    disconnected: set[str] = field(default_factory=set)          # calls raise DeviceDisconnected
    hang: set[str] = field(default_factory=set)                  # calls never return
    slow_s: dict[str, float] = field(default_factory=dict)       # extra delay on every call
    garbage: set[str] = field(default_factory=set)               # answers make no sense

    # Convenience spellings used by tests and the fault command.
    @property
    def disconnect_guide(self) -> bool:
        return "guide_camera" in self.disconnected

    @disconnect_guide.setter
    def disconnect_guide(self, on: bool) -> None:
        (self.disconnected.add if on else self.disconnected.discard)("guide_camera")

    def set(self, device: str, fault: str, value: float | bool = True) -> None:
        if fault == "clear":
            self.clear()
            return
        if device not in DEVICE_NAMES:
            raise ValueError(f"unknown device {device!r}; one of {', '.join(DEVICE_NAMES)}")
        if fault == "drop":
            self.drop_frames[device] = int(value)
        elif fault in ("disconnect", "hang", "garbage"):
            target = {"disconnect": self.disconnected, "hang": self.hang, "garbage": self.garbage}[fault]
            (target.add if value else target.discard)(device)
        elif fault == "slow":
            self.slow_s[device] = float(value)
        else:
            raise ValueError(f"unknown fault {fault!r}; one of drop, disconnect, hang, slow, garbage")

    def clear(self) -> None:
        self.drop_frames.clear()
        self.disconnected.clear()
        self.hang.clear()
        self.slow_s.clear()
        self.garbage.clear()


class _SimDevice:
    name = ""

    def __init__(self, rig: "SimRig") -> None:
        self.rig = rig
        self._connected = False

    @property
    def clock(self) -> Clock:
        return self.rig.clock

    async def _gate(self, *, connecting: bool = False) -> None:
        f = self.rig.faults
        if self.name in f.hang:
            await asyncio.Event().wait()
        if self.name in f.slow_s:
            await self.clock.sleep(f.slow_s[self.name])
        if self.name in f.disconnected:
            self._connected = False
            raise DeviceDisconnected(f"simulated {self.name.replace('_', ' ')} is not connected "
                                     "(check its cable and power)")
        if not connecting and not self._connected:
            raise DeviceDisconnected(f"simulated {self.name.replace('_', ' ')} is not connected")

    async def disconnect(self) -> None:
        self._connected = False


class SimGuideCamera(_SimDevice, GuideCamera):
    name = "guide_camera"
    driver = "sim"

    def __init__(self, rig: "SimRig") -> None:
        super().__init__(rig)
        g = rig.cfg.guide_camera
        self.width, self.height, self.pixel_um, self.bit_depth = g.width, g.height, g.pixel_um, g.bit_depth
        self.gain = g.gain
        self.model = g.model or "Simulated guide camera"
        self.last_truth: dict = {}

    async def connect(self) -> DeviceInfo:
        await self._gate(connecting=True)
        self._connected = True
        return DeviceInfo(self.kind, self.driver, self.model,
                          {"width": self.width, "height": self.height, "pixel_um": self.pixel_um,
                           "bit_depth": self.bit_depth, "st4": True})

    @staticmethod
    def e_per_adu(gain: int) -> float:
        return 3.0 * 10 ** (-gain / 200.0)

    async def expose(self, seconds: float, gain: int | None = None,
                     roi: tuple[int, int, int, int] | None = None) -> Frame:
        await self._gate()
        gain = self.gain if gain is None else gain
        t0, m0 = self.clock.now(), self.clock.monotonic()
        await self.clock.sleep(seconds)
        await self._gate()
        if self.rig.faults.drop_frames.get(self.name, 0) > 0:
            self.rig.faults.drop_frames[self.name] -= 1
            raise DeviceError("guide camera dropped a frame (USB transfer failed)")
        if roi is not None:
            x, y, w, h = roi
            if not (0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= self.width and y + h <= self.height):
                raise DeviceError(f"region {roi} is outside the {self.width}x{self.height} sensor")
        sky = self.rig.sky
        data, truth = await self.clock.run_blocking(
            sky.render, sky.guide, m0, seconds, gain_e_adu=self.e_per_adu(gain), roi=roi,
            bit_depth=self.bit_depth, rng=sky.rng, light=not self.rig.guide_covered)
        if self.name in self.rig.faults.garbage:
            raise DeviceGarbage("guide camera sent a frame of the wrong size")
        self.last_truth = truth
        return Frame(data=data, exposure=seconds, timestamp=t0, gain=gain, bayer=None,
                     black_level=self.rig.sky.guide.bias_adu, white_level=float(2 ** self.bit_depth - 1),
                     bit_depth=self.bit_depth, pixel_um=self.pixel_um,
                     focal_mm=self.rig.cfg.guide_scope.focal_length_mm,
                     temperature=self.rig.cfg.sim.temperature_c, camera=self.model,
                     kind="dark" if self.rig.guide_covered else "light",
                     meta={"roi": roi, "truth": truth})


class SimMainCamera(_SimDevice, MainCamera):
    name = "main_camera"
    driver = "sim"
    LIVE_VIEW = (1024, 768)
    FLAT_PANEL_S = 1.0  # the simulated flat panel reaches ~45 % of full scale in 1 s

    def __init__(self, rig: "SimRig") -> None:
        super().__init__(rig)
        m = rig.cfg.main_camera
        self.width, self.height, self.pixel_um, self.bit_depth = m.width, m.height, m.pixel_um, m.bit_depth
        self.bayer = m.bayer or None
        self.iso = m.iso
        self.model = m.model or "Simulated DSLR"
        self.last_truth: dict = {}
        # Its own noise stream: a DSLR frame rendered in a thread while a guide
        # frame renders in another must not make either depend on the timing.
        self.rng = np.random.default_rng([int(rig.cfg.sim.seed), 1])

    async def connect(self) -> DeviceInfo:
        await self._gate(connecting=True)
        self._connected = True
        m = self.rig.cfg.main_camera
        return DeviceInfo(self.kind, self.driver, self.model,
                          {"width": self.width, "height": self.height, "pixel_um": self.pixel_um,
                           "bit_depth": self.bit_depth, "bayer": self.bayer,
                           "black_level": m.black_level, "white_level": m.white_level})

    @staticmethod
    def e_per_adu(iso: int) -> float:
        return 320.0 / max(iso, 50)

    async def _render(self, t0: float, seconds: float, iso: int, kind: str,
                      roi: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, dict]:
        """Render in a worker thread (about a second for a full DSLR frame).

        ``t0`` is the exposure start on the clock's monotonic time."""
        sky = self.rig.sky
        flat_e = None
        if kind == "flat":
            # A steady flat panel: about half of full scale in FLAT_PANEL_S at this ISO,
            # in proportion to the exposure (so a flat sequence has an exposure to find).
            flat_e = (0.45 * (sky.main.white_adu - sky.main.bias_adu) * self.e_per_adu(iso)
                      * seconds / self.FLAT_PANEL_S)
        light = kind in ("light", "flat")
        return await self.clock.run_blocking(
            sky.render, sky.main, t0, seconds, gain_e_adu=self.e_per_adu(iso), light=light,
            flat_level_e=flat_e, roi=roi, bit_depth=self.bit_depth, rng=self.rng)

    async def expose(self, seconds: float, iso: int | None = None, path: Path | None = None,
                     kind: str = "light") -> Frame:
        await self._gate()
        iso = self.iso if iso is None else iso
        t0, m0 = self.clock.now(), self.clock.monotonic()
        await self.clock.sleep(seconds if kind != "bias" else 1 / 4000)
        await self._gate()
        if self.rig.faults.drop_frames.get(self.name, 0) > 0:
            self.rig.faults.drop_frames[self.name] -= 1
            raise DeviceError("camera did not deliver the frame (USB transfer failed)")
        data, truth = await self._render(m0, seconds, iso, kind)
        self.last_truth = truth
        m = self.rig.cfg.main_camera
        frame = Frame(data=data, exposure=seconds, timestamp=t0, iso=iso, bayer=self.bayer,
                      black_level=float(m.black_level), white_level=float(m.white_level),
                      bit_depth=self.bit_depth, pixel_um=self.pixel_um,
                      focal_mm=self.rig.cfg.telescope.focal_length_mm,
                      temperature=self.rig.cfg.sim.temperature_c, camera=self.model, kind=kind,
                      meta={"truth": truth})
        if path is not None:
            when = datetime.fromtimestamp(t0, timezone.utc).strftime("%Y:%m:%d %H:%M:%S")
            await self.clock.run_blocking(write_dng, Path(path), data, bayer=self.bayer or "RGGB",
                                    black_level=m.black_level, white_level=m.white_level,
                                    model=self.model, exposure_s=seconds, iso=iso, when=when)
            from ..imaging.io import read_frame  # the same rawpy path a real camera's file takes
            frame = await self.clock.run_blocking(read_frame, Path(path))
            frame.timestamp, frame.kind, frame.meta["truth"] = t0, kind, truth
            frame.temperature = self.rig.cfg.sim.temperature_c
        return frame

    async def live_view(self, seconds: float = 1.0, iso: int | None = None) -> Frame:
        """A central crop at full resolution, like a DSLR's zoomed live view."""
        await self._gate()
        iso = self.iso if iso is None else iso
        t0, m0 = self.clock.now(), self.clock.monotonic()
        await self.clock.sleep(seconds)
        await self._gate()
        w, h = self.LIVE_VIEW
        roi = ((self.width - w) // 2 // 2 * 2, (self.height - h) // 2 // 2 * 2, w, h)
        data, truth = await self._render(m0, seconds, iso, "light", roi=roi)
        m = self.rig.cfg.main_camera
        return Frame(data=data, exposure=seconds, timestamp=t0, iso=iso, bayer=self.bayer,
                     black_level=float(m.black_level), white_level=float(m.white_level),
                     bit_depth=self.bit_depth, pixel_um=self.pixel_um,
                     focal_mm=self.rig.cfg.telescope.focal_length_mm, camera=self.model,
                     kind="live", meta={"roi": roi, "truth": truth})


class SimMount(_SimDevice, Mount):
    name = "mount"
    driver = "sim"

    def __init__(self, rig: "SimRig") -> None:
        super().__init__(rig)
        self.ra, self.dec = rig.cfg.plan.ra_deg, rig.cfg.plan.dec_deg
        self.tracking = True
        self.slewing = False
        # The side of the pier (ASCOM/INDI convention, see MountState): the natural one for the
        # configured target at the start; the sky's camera angles hold on this first side.
        self.home_side = self.pier_side = self.natural_side(self.ra)

    @property
    def can_flip(self) -> bool:  # type: ignore[override]
        return bool(self.rig.cfg.sim.mount_flips)

    def hour_angle(self, ra_deg: float) -> float:
        """Hour angle of ``ra_deg`` now, degrees in [-180, 180) (positive: west of the meridian)."""
        return (self.rig.lst_deg() - ra_deg + 540.0) % 360.0 - 180.0

    def natural_side(self, ra_deg: float) -> str:
        """The side a goto to ``ra_deg`` picks now: ``"west"`` (pointing east) for a target east
        of the meridian, ``"east"`` (pointing west) for one on or past it."""
        return "east" if self.hour_angle(ra_deg) >= 0 else "west"

    def _set_side(self, side: str) -> None:
        self.pier_side = side
        self.rig.sky.set_pier_flipped(side != self.home_side)

    async def connect(self) -> DeviceInfo:
        await self._gate(connecting=True)
        self._connected = True
        return DeviceInfo(self.kind, self.driver, "Simulated equatorial mount",
                          {"guide_rate": self.rig.cfg.mount.guide_rate})

    async def state(self) -> MountState:
        await self._gate()
        if self.name in self.rig.faults.garbage:
            raise DeviceGarbage("mount answered '#?#' to a position request")
        ex, ey = self.rig.sky.mount_error(self.clock.monotonic())
        cosd = max(math.cos(math.radians(self.dec)), 1e-6)
        ra = (self.ra + float(ex) / 3600.0 / cosd) % 360.0
        dec = self.dec + float(ey) / 3600.0
        return MountState(ra, dec, self.tracking, self.pier_side, self.slewing)  # type: ignore[arg-type]

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        await self._gate()
        if not -90 <= dec_deg <= 90:
            raise DeviceError(f"declination {dec_deg:.2f} is out of range")
        dist = math.degrees(math.acos(max(-1.0, min(1.0,
            math.sin(math.radians(self.dec)) * math.sin(math.radians(dec_deg))
            + math.cos(math.radians(self.dec)) * math.cos(math.radians(dec_deg))
            * math.cos(math.radians(ra_deg - self.ra))))))
        self.slewing = True
        try:
            await self.clock.sleep(dist / self.rig.cfg.mount.slew_rate_deg_s)
        finally:
            self.slewing = False
        self.ra, self.dec = ra_deg % 360.0, dec_deg
        if dist > 0.01:  # a re-centring move of a few arcseconds stays on the same field
            self.rig.sky.recentre(self.ra, self.dec)
        # A goto lands with a small pointing error that a sync removes.
        self.rig.sky.slew_offset = self.rig.sky.rng.normal(0, 60.0, 2) if dist > 0.01 else self.rig.sky.slew_offset
        # A goto takes the target's natural side of the pier (through a flip when needed).
        side = self.natural_side(self.ra)
        if side != self.pier_side:
            self._set_side(side)
            self.rig.sky.slew_offset = self.rig.sky.rng.normal(0, 60.0, 2)

    async def flip(self) -> None:
        """Meridian flip: the same coordinates on the other side of the pier. Both axes turn
        about half a revolution (180° at the slew rate); the goto lands with a new pointing
        error like any long slew; both cameras' images turn 180° on the sky and an ST4 Dec
        pulse now moves the other way on the sky (:class:`SimGuidePort`). Raises
        DeviceUnsupported with ``[sim] mount_flips = false``, DeviceError when the target is
        not past the meridian (the other side cannot reach it)."""
        await self._gate()
        if not self.can_flip:
            raise DeviceUnsupported("the simulated mount is set up not to flip ([sim] mount_flips = false)")
        side = self.natural_side(self.ra)
        if side == self.pier_side:
            ha_min = self.hour_angle(self.ra) * 4.0
            raise DeviceError(f"no flip: the mount is on the {side} side of the pier already and the "
                              f"target is {abs(ha_min):.0f} min {'past' if ha_min >= 0 else 'before'} the meridian")
        self.slewing = True
        try:
            await self.clock.sleep(180.0 / self.rig.cfg.mount.slew_rate_deg_s)
        finally:
            self.slewing = False
        self._set_side(side)
        self.rig.sky.slew_offset = self.rig.sky.rng.normal(0, 60.0, 2)

    async def sync(self, ra_deg: float, dec_deg: float) -> None:
        await self._gate()
        self.rig.sky.slew_offset = np.zeros(2)
        self.ra, self.dec = ra_deg % 360.0, dec_deg

    async def set_tracking(self, on: bool) -> None:
        await self._gate()
        self.tracking = on

    async def pulse(self, direction: Direction, ms: int) -> None:
        await self._gate()
        self.rig.sky.apply_pulse(direction, ms, self.clock.monotonic())
        await self.clock.sleep(ms / 1000.0)

    async def park(self) -> None:
        """Slew to the celestial pole at hour angle 0 (counterweight down), taking the time a
        slew takes, then stop tracking."""
        lat = self.rig.cfg.site.latitude
        await self.slew_to(self.rig.lst_deg(), 90.0 if lat >= 0 else -90.0)
        self.tracking = False

    async def set_tracking_rate(self, rate: str) -> None:
        """Sidereal only: the simulated sky has no Moon or Sun to follow, so the lunar and solar
        rates raise DeviceUnsupported; anything else raises DeviceError."""
        await self._gate()
        if rate not in TRACKING_RATES:
            raise DeviceError(f"tracking rate {rate!r}: one of {', '.join(TRACKING_RATES)}")
        if rate != "sidereal":
            raise DeviceUnsupported(f"the simulated mount tracks at the sidereal rate only, not {rate}")

    async def set_guide_rate(self, fraction: float) -> None:
        """Guide speed as a fraction of sidereal (0.05–1): every later pulse, through the mount
        or the ST4 port, moves the simulated pointing at this rate."""
        await self._gate()
        if not 0.05 <= fraction <= 1.0:
            raise DeviceError(f"guide rate {fraction:g} is outside 0.05–1 x sidereal")
        self.rig.sky.guide_rate = fraction

    async def altaz(self) -> tuple[float, float]:
        """(altitude, azimuth) in degrees of where the mount points now (azimuth from north
        through east), from :meth:`state` and the site."""
        from .mountproto import altaz_from_radec
        st = await self.state()
        return altaz_from_radec(st.ra_deg, st.dec_deg, self.rig.lst_deg(), self.rig.cfg.site.latitude)


class SimGuidePort(_SimDevice, GuidePort):
    """Guide pulses through the guide camera's ST4 port or the mount."""

    name = "guide_port"
    driver = "sim"

    def __init__(self, rig: "SimRig", via: str) -> None:
        super().__init__(rig)
        self.via = via
        self.guide_rate = rig.cfg.mount.guide_rate
        # The mount's own pulse-guide command knows its pier side; an ST4 cable does not.
        self.pier_aware = via == "mount"

    async def connect(self) -> DeviceInfo:
        await self._gate(connecting=True)
        self._connected = True
        return DeviceInfo(self.kind, self.driver, f"ST4 via {self.via}", {"guide_rate": self.guide_rate})

    async def pulse(self, direction: Direction, ms: int) -> None:
        await self._gate()
        backing = "guide_camera" if self.via == "camera" else "mount"
        if backing in self.rig.faults.disconnected:
            raise DeviceDisconnected(f"guide pulses go through the {backing.replace('_', ' ')}, which is not connected")
        if ms < 0:
            raise ValueError("pulse duration must not be negative")
        if not self.pier_aware and self.rig.sky.pier_flipped and direction in ("N", "S"):
            # ST4: the Dec motor turns the same way, which on the other side of the pier
            # moves the telescope the other way in declination.
            direction = "S" if direction == "N" else "N"
        self.rig.sky.apply_pulse(direction, ms, self.clock.monotonic())
        await self.clock.sleep(ms / 1000.0)


class SimFocuser(_SimDevice, Focuser):
    name = "focuser"
    driver = "sim"
    STEPS_PER_S = 2000.0

    def __init__(self, rig: "SimRig") -> None:
        super().__init__(rig)
        self.max_position = rig.cfg.focuser.max_position

    async def connect(self) -> DeviceInfo:
        await self._gate(connecting=True)
        self._connected = True
        return DeviceInfo(self.kind, self.driver, "Simulated focuser", {"max_position": self.max_position})

    async def position(self) -> int:
        await self._gate()
        return int(self.rig.sky.focus_position)

    async def move_to(self, position: int) -> int:
        await self._gate()
        target = int(min(max(position, 0), self.max_position))
        await self.clock.sleep(abs(target - self.rig.sky.focus_position) / self.STEPS_PER_S)
        self.rig.sky.focus_position = target
        return target


class SimRig:
    """All simulated devices of one profile, sharing one sky and one clock."""

    def __init__(self, cfg: Config, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.faults = SimFaults()
        self.guide_covered = False  # the guide scope's cap is on: the guide camera takes darks
        self.sky = Sky(cfg, clock.monotonic())
        self.guide_camera = SimGuideCamera(self)
        self.main_camera = SimMainCamera(self)
        self.mount = SimMount(self)
        self.guide_port = SimGuidePort(self, cfg.guide_port.via)
        self.focuser = SimFocuser(self)

    def devices(self) -> dict[str, object]:
        return {n: getattr(self, n) for n in DEVICE_NAMES}

    async def connect_all(self) -> dict[str, DeviceInfo]:
        infos = await asyncio.gather(*(d.connect() for d in self.devices().values()))
        return dict(zip(DEVICE_NAMES, infos))

    def lst_deg(self) -> float:
        from .. import astro
        return astro.local_sidereal_deg(self.clock.now(), self.cfg.site.longitude)

    def clouds(self, seconds: float) -> None:
        """Lose every star for ``seconds`` (a cloud passing)."""
        self.sky.clouds_until = self.clock.monotonic() + seconds
