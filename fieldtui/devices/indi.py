"""INDI backend: cameras, mounts, focusers and guide ports behind an ``indiserver``.

Every device of a role with ``driver = "indi"`` is the INDI device named by the
role's ``indi_device`` on the server of ``[indi] host``/``port``. The protocol
(XML over TCP, reconnection every 5 s after the server goes away) is the pure
Python, asyncio ``indipyclient`` package; this module maps the standard INDI
properties onto fieldtui's device interfaces:

============  ==========================================================
camera        ``CCD_INFO``, ``CCD_FRAME``, ``CCD_GAIN``, ``CCD_EXPOSURE``, ``CCD1`` (FITS BLOB)
mount         ``EQUATORIAL_EOD_COORD`` (RA in hours), ``ON_COORD_SET``, ``TELESCOPE_TRACK_STATE``,
              ``TELESCOPE_PIER_SIDE``, ``TELESCOPE_ABORT_MOTION``, ``TELESCOPE_PARK``
guide port    ``TELESCOPE_TIMED_GUIDE_NS`` / ``_WE`` of the camera (ST4) or the mount
focuser       ``ABS_FOCUS_POSITION``, ``FOCUS_MAX``
============  ==========================================================

Numbers arrive as strings and are parsed with checks (a non-number or a
non-finite value raises :class:`DeviceGarbage`). Frames arrive as FITS BLOBs and
are read by :func:`fieldtui.imaging.io.read_fits_bytes`, the frame path of every
FITS file, off the event loop.

fieldtui connects only to the configured host; the INDI protocol has no
authentication, so keep ``indiserver`` reachable from loopback only (README, INDI).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from ..clock import Clock
from ..frame import Frame
from .base import (DIRECTIONS, DeviceDisconnected, DeviceError, DeviceGarbage, DeviceInfo, DeviceTimeout,
                   DeviceUnsupported, Direction, Focuser, GuideCamera, GuidePort, MainCamera, Mount,
                   MountState, VendorLibraryMissing)

CALL_TIMEOUT_S = 10.0      # a property change must be answered within this
BLOB_MARGIN_S = 60.0       # download time allowed on top of the exposure
SETTLED_WAIT_S = 5.0       # a call waits this long for a restarted server's devices to be set up again
REPOINT_TOLERANCE_DEG = 5 / 3600   # a restarted mount this close to where it was is not slewed
REPOINT_SLEWS = 3          # slews to get there again (each one corrects the last one's landing error)
GUIDE_VECTORS = {"N": ("TELESCOPE_TIMED_GUIDE_NS", "TIMED_GUIDE_N"),
                 "S": ("TELESCOPE_TIMED_GUIDE_NS", "TIMED_GUIDE_S"),
                 "E": ("TELESCOPE_TIMED_GUIDE_WE", "TIMED_GUIDE_E"),
                 "W": ("TELESCOPE_TIMED_GUIDE_WE", "TIMED_GUIDE_W")}


def parse_number(text: Any, what: str) -> float:
    """An INDI number (decimal or sexagesimal "d:m:s" text) as a finite float.

    Raises :class:`DeviceGarbage` naming ``what`` for anything else."""
    from indipyclient.propertymembers import getfloat
    try:
        value = getfloat(text)
    except TypeError:
        raise DeviceGarbage(f"{what}: the INDI server sent {text!r}, not a number") from None
    if not math.isfinite(value):
        raise DeviceGarbage(f"{what}: the INDI server sent {text!r}, not a finite number")
    return value


class IndiServer:
    """One connection to an ``indiserver``, shared by every INDI device of the rig.

    ``host``/``port``: where the server listens (``[indi]``). All waits have
    timeouts; a server that goes away fails pending calls with
    :class:`DeviceDisconnected` and is reconnected in the background (indipyclient
    retries every 5 s); devices reconnect on their next call."""

    def __init__(self, host: str = "127.0.0.1", port: int = 7624, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._client: Any = None
        self._task: asyncio.Task | None = None
        self._changed: asyncio.Condition | None = None
        self._blob_waiters: dict[tuple[str, str], asyncio.Future] = {}
        self._updates: dict[tuple[str, str], int] = {}
        self._exposing: dict[str, asyncio.Lock] = {}
        self.messages: list[str] = []
        self.stats = {"connections": 0, "losses": 0, "recoveries": 0}
        #: the roles on this server, set up again (in this order) after the server comes back
        self.roles: list[_IndiDevice] = []
        self._lost = False                       # lost since the last (re)connection was set up
        self._recovery: asyncio.Task | None = None
        #: (level, text) of what happened to the server: went away, back, what was set up again.
        #: ``on_notice(level, text)`` is told too (the Session turns them into alerts).
        self.notices: list[tuple[str, str]] = []
        self.on_notice: Any = None

    # ---------------------------------------------------------------- server
    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return bool(self._client is not None and self._client.connected)

    async def start(self) -> None:
        """Start the client (once) and wait for the server. Raises DeviceDisconnected
        with what to do when nothing answers at host:port."""
        if self._task is None or self._task.done():
            try:
                from indipyclient import IPyClient
            except ImportError:
                raise VendorLibraryMissing("the INDI client library is missing: pip install indipyclient "
                                           "(or pip install -e '.[indi]')") from None
            server = self

            class _Client(IPyClient):
                async def rxevent(self, event: Any) -> None:
                    await server._on_event(event)

            self._changed = asyncio.Condition()
            self._client = _Client(indihost=self.host, indiport=self.port)
            self._client.enableBLOBdefault = "Also"
            self._client.set_vector_timeouts(timeout_enable=False)
            self._client.enable_reports = False
            self._task = asyncio.create_task(self._client.asyncrun(), name=f"indi {self.where}")
            self._watchdog = asyncio.create_task(self._watch_eof(), name=f"indi eof {self.where}")
        try:
            await self._wait(lambda: self.connected, min(self.timeout_s, 6.0))
        except DeviceTimeout:
            raise DeviceDisconnected(
                f"no INDI server answers at {self.where}: start indiserver with the drivers "
                f"(e.g. `indiserver indi_simulator_ccd`) or fix [indi] host/port") from None

    async def _watch_eof(self) -> None:
        """Drop the connection as soon as the server closes it. indipyclient 0.9.4 reads on
        after end-of-file and would only notice a dead server by its 20-40 s idle timers;
        a closed socket is seen here within 0.2 s and reported (ConnectionLost), and the
        client's own loop reconnects every 5 s."""
        client = self._client
        while not client.stop:
            await asyncio.sleep(0.2)
            reader = client._reader
            if reader is not None and reader.at_eof() and client.connected:
                await client._clear_connection()

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        if getattr(self, "_watchdog", None) is not None:
            self._watchdog.cancel()
        if self._client is not None:
            self._client.shutdown()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 3.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                self._task.cancel()
        self._task = None

    async def _on_event(self, event: Any) -> None:
        kind = getattr(event, "eventtype", "")
        key = (getattr(event, "devicename", None), getattr(event, "vectorname", None))
        self._updates[key] = self._updates.get(key, 0) + 1  # type: ignore[index]
        if kind == "ConnectionMade":
            self.stats["connections"] += 1
            if self._lost:
                self._recovery = asyncio.create_task(self._recover(), name=f"indi recovery {self.where}")
        elif kind == "ConnectionLost":
            self.stats["losses"] += 1
            if not self._lost:
                self._lost = True
                self._notice("error", f"the INDI server at {self.where} went away: guiding and capture wait "
                                      "for it (reconnecting every 5 s)")
            if self._recovery is not None and not self._recovery.done():
                self._recovery.cancel()
            for fut in self._blob_waiters.values():
                if not fut.done():
                    fut.set_exception(DeviceDisconnected(f"the INDI server at {self.where} went away"))
        elif kind in ("Set", "Define") and not self.recovering:
            for role in self.roles:
                if role.name == key[0]:
                    role._observe()
        elif kind == "Message" and getattr(event, "message", None):
            self.messages = (self.messages + [f"{getattr(event, 'devicename', None) or ''}: {event.message}"])[-20:]
        elif kind == "SetBLOB":
            fut = self._blob_waiters.get((event.devicename, event.vectorname))
            if fut is not None and not fut.done():
                for name, value in event.items():
                    if value:
                        fmt = event.sizeformat.get(name, (0, ""))[1]
                        fut.set_result((bytes(value), fmt))
                        break
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _notice(self, level: str, text: str) -> None:
        self.notices = (self.notices + [(level, text)])[-50:]
        if self.on_notice is not None:
            self.on_notice(level, text)

    @property
    def recovering(self) -> bool:
        """The server went away and its devices are not set up again yet."""
        return self._lost

    async def _recover(self) -> None:
        """The server is back after going away (a restart loses every driver's state): connect
        each role's device again, re-read its properties, put the focuser and the mount back
        where they were (the mount slewed back, tracking as before). Calls of the roles wait
        for this (:meth:`settled`)."""
        t0 = time.monotonic()
        failed = []
        done: list[str] = []
        for role in sorted(self.roles, key=lambda r: r.RESTORE_ORDER):
            try:
                note = await role._restore()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every role gets its turn, failures are reported
                failed.append(f"{role.kind.replace('_', ' ')} {role.name!r}: {exc}")
                continue
            if note:
                done.append(note)
        self._lost = False
        self.stats["recoveries"] += 1
        text = (f"the INDI server at {self.where} is back: devices connected again and their properties "
                f"re-read in {time.monotonic() - t0:.0f} s" + ("; " + "; ".join(done) if done else ""))
        if failed:
            self._notice("error", text + "; NOT set up again: " + "; ".join(failed))
        else:
            self._notice("info", text)

    async def settled(self, timeout: float = SETTLED_WAIT_S) -> None:
        """Wait (up to ``timeout``) while a restarted server's devices are set up again.
        Raises DeviceDisconnected when they are not ready by then (the caller retries as for
        a lost device)."""
        task = self._recovery
        if task is None or task.done() or asyncio.current_task() is task:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise DeviceDisconnected(f"the INDI server at {self.where} is back; its devices are still being "
                                     "set up again (the mount re-pointed)") from None
        except asyncio.CancelledError:
            if task.cancelled() and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise DeviceDisconnected(f"the INDI server at {self.where} went away again") from None
            raise

    async def _wait(self, cond, timeout: float, what: str = "INDI") -> None:
        assert self._changed is not None
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while not cond():
                        await self._changed.wait()
        except TimeoutError:
            raise DeviceTimeout(f"{what}: no answer from {self.where} within {timeout:g} s") from None

    # ---------------------------------------------------------------- devices
    def devices(self) -> dict[str, bool]:
        """Device name → connected (its CONNECTION switch), as the server announced them."""
        out = {}
        for name, dev in (self._client or {}).items():
            if not dev.enable:
                continue
            out[name] = self.switch(name, "CONNECTION", "CONNECT") if "CONNECTION" in dev else True
        return out

    def vector(self, device: str, vector: str) -> Any | None:
        dev = (self._client or {}).get(device) if self._client is not None else None
        if dev is None or not dev.enable:
            return None
        vec = dev.get(vector)
        return vec if vec is not None and vec.enable else None

    def has(self, device: str, vector: str) -> bool:
        return self.vector(device, vector) is not None

    def _need(self, device: str, vector: str) -> Any:
        vec = self.vector(device, vector)
        if vec is None:
            if not self.connected:
                raise DeviceDisconnected(f"the INDI server at {self.where} is not connected")
            raise DeviceError(f"INDI device {device!r} has no {vector} property")
        return vec

    def number(self, device: str, vector: str, member: str) -> float:
        vec = self._need(device, vector)
        if member not in vec:
            raise DeviceGarbage(f"{device}.{vector} has no member {member}")
        return parse_number(vec[member], f"{device}.{vector}.{member}")

    def switch(self, device: str, vector: str, member: str) -> bool:
        vec = self._need(device, vector)
        return vec.get(member) == "On"

    def state(self, device: str, vector: str) -> str:
        return str(self._need(device, vector).state)

    async def set(self, device: str, vector: str, members: dict[str, Any], *,
                  wait: bool = True, timeout: float | None = None) -> None:
        """Send new values; with ``wait``, return once the driver reports the vector
        Ok/Idle again. Raises DeviceError when the driver answers Alert."""
        vec = self._need(device, vector)
        if not self.connected:
            raise DeviceDisconnected(f"the INDI server at {self.where} is not connected")
        key = (device, vector)
        before = self._updates.get(key, 0)
        await self._client.send_newVector(device, vector, members={k: str(v) if not isinstance(v, str) else v
                                                                    for k, v in members.items()})
        if not wait:
            return
        t = timeout or self.timeout_s
        await self._wait(lambda: not self.connected or (self._updates.get(key, 0) != before and vec.state != "Busy"),
                         t, f"{device}.{vector}")
        if not self.connected:
            raise DeviceDisconnected(f"the INDI server at {self.where} went away")
        if vec.state == "Alert":
            raise DeviceError(f"{device} refused {vector}: {vec.message or 'the driver reported Alert'}")

    async def ready(self, device: str, timeout: float | None = None) -> None:
        """Wait for ``device`` to be announced and switch it on (CONNECTION.CONNECT).
        Raises DeviceError naming the fix when it is unknown or refuses to connect."""
        t = timeout or self.timeout_s
        await self.start()
        try:
            await self._wait(lambda: self.has(device, "CONNECTION"), min(t, 5.0), device)
        except DeviceTimeout:
            known = ", ".join(sorted(self.devices())) or "none"
            raise DeviceError(f"the INDI server at {self.where} has no device {device!r} (it has: {known}); "
                              "start its driver with indiserver or fix indi_device") from None
        if self.switch(device, "CONNECTION", "CONNECT"):
            return
        await self.set(device, "CONNECTION", {"CONNECT": "On", "DISCONNECT": "Off"}, wait=False)
        try:
            await self._wait(lambda: not self.has(device, "CONNECTION")
                             or (self.switch(device, "CONNECTION", "CONNECT")
                                 and self.state(device, "CONNECTION") != "Busy")
                             or self.state(device, "CONNECTION") == "Alert", t, device)
        except DeviceTimeout:
            raise DeviceError(f"INDI device {device!r} did not connect within {t:g} s: check its cable, "
                              "power and port settings in the driver") from None
        if not self.has(device, "CONNECTION") or not self.switch(device, "CONNECTION", "CONNECT"):
            last = next((m for m in reversed(self.messages) if m.startswith(device)), "")
            raise DeviceError(f"INDI device {device!r} refuses to connect{': ' + last if last else ''}; "
                              "check its cable, power and port settings in the driver")
        # a connected driver defines its properties next
        await asyncio.sleep(0.3)

    def exposure_lock(self, device: str) -> asyncio.Lock:
        """The lock every role exposing through INDI device ``device`` holds for one exposure.

        Two roles may name the same INDI camera (``[guide_camera]`` and ``[main_camera]`` both
        "CCD Simulator", as `fieldtui check` tests both at once): a second ``CCD_EXPOSURE``
        sent while the first runs restarts the driver's exposure, and only one BLOB comes
        back, so one of the two would wait for its image until it timed out."""
        lock = self._exposing.get(device)
        if lock is None:
            lock = self._exposing[device] = asyncio.Lock()
        return lock

    async def blob(self, device: str, vector: str, trigger, timeout: float) -> tuple[bytes, str]:
        """Arm a wait for the next BLOB of ``device.vector``, run ``trigger()`` and
        return (bytes, format such as ".fits"). One wait per BLOB at a time (hold
        :meth:`exposure_lock`); a second one raises DeviceError."""
        key = (device, vector)
        if key in self._blob_waiters:
            raise DeviceError(f"{device}: an exposure is already waiting for {vector}")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._blob_waiters[key] = fut
        try:
            await trigger()
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise DeviceTimeout(f"{device}: no image within {timeout:g} s") from None
        finally:
            if self._blob_waiters.get(key) is fut:
                del self._blob_waiters[key]


class _IndiDevice:
    """What every INDI role shares: the server, the device name, connection."""

    driver = "indi"
    server: IndiServer
    name: str
    RESTORE_ORDER = 5

    def _register(self) -> None:
        self.server.roles.append(self)

    def _observe(self) -> None:
        """A property of this device changed while the server is up and set up (the mount notes
        where it points)."""

    async def _restore(self) -> str:
        """Set the device up again on a restarted server; returns what was done, for the notice."""
        await self.server.ready(self.name)
        return ""

    @property
    def connected(self) -> bool:
        return self.server.connected and self.server.has(self.name, "CONNECTION") and \
            self.server.switch(self.name, "CONNECTION", "CONNECT")

    async def _ready(self) -> None:
        await self.server.settled()
        if not self.connected:
            await self.server.ready(self.name)

    async def disconnect(self) -> None:
        return None   # the driver stays connected for other clients (Ekos, PHD2) on the same server


class _IndiCamera(_IndiDevice):
    cfg: Any
    clock: Clock

    def _init(self, server: IndiServer, cfg: Any, clock: Clock) -> None:
        self.server, self.cfg, self.clock, self.name = server, cfg, clock, cfg.indi_device
        self.width, self.height, self.pixel_um, self.bit_depth = cfg.width, cfg.height, cfg.pixel_um, cfg.bit_depth
        self.model = cfg.indi_device
        self._register()

    RESTORE_ORDER = 3

    async def _restore(self) -> str:
        await self._setup_camera()
        return ""

    async def _connect_camera(self) -> DeviceInfo:
        await self._ready()
        await self._setup_camera()
        s, n = self.server, self.name
        return DeviceInfo(self.kind, self.driver, n,  # type: ignore[attr-defined]
                          {"server": s.where, "width": self.width, "height": self.height,
                           "pixel_um": self.pixel_um, "bit_depth": self.bit_depth})

    async def _setup_camera(self) -> None:
        """Connect, read the sensor (CCD_INFO), ask for uncompressed FITS and for the BLOBs."""
        s, n = self.server, self.name
        await s.ready(n)
        if s.has(n, "CCD_INFO"):
            self.width = int(s.number(n, "CCD_INFO", "CCD_MAX_X"))
            self.height = int(s.number(n, "CCD_INFO", "CCD_MAX_Y"))
            self.pixel_um = s.number(n, "CCD_INFO", "CCD_PIXEL_SIZE")
            self.bit_depth = int(s.number(n, "CCD_INFO", "CCD_BITSPERPIXEL"))
            if not (self.width > 0 and self.height > 0 and self.pixel_um > 0 and 8 <= self.bit_depth <= 32):
                raise DeviceGarbage(f"{n}: CCD_INFO makes no sense ({self.width}x{self.height}, "
                                    f"{self.pixel_um} µm, {self.bit_depth} bits)")
        if s.has(n, "CCD_TRANSFER_FORMAT") and "FORMAT_FITS" in s.vector(n, "CCD_TRANSFER_FORMAT"):
            await s.set(n, "CCD_TRANSFER_FORMAT", {"FORMAT_FITS": "On"}, wait=False)
        if s.has(n, "CCD_COMPRESSION") and "INDI_DISABLED" in s.vector(n, "CCD_COMPRESSION"):
            await s.set(n, "CCD_COMPRESSION", {"INDI_DISABLED": "On", "INDI_ENABLED": "Off"}, wait=False)
        await s._client.send_enableBLOB("Also", n)

    async def _take(self, seconds: float, gain: int | None, roi: tuple[int, int, int, int] | None,
                    kind: str = "light") -> Frame:
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError("exposure must be a finite number of seconds, 0 or more")
        await self._ready()
        s, n = self.server, self.name
        x, y, w, h = roi if roi is not None else (0, 0, self.width, self.height)
        if not (0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= self.width and y + h <= self.height):
            raise DeviceError(f"region {roi} is outside the {self.width}x{self.height} sensor")
        async with s.exposure_lock(n):
            if s.has(n, "CCD_FRAME"):
                await s.set(n, "CCD_FRAME", {"X": x, "Y": y, "WIDTH": w, "HEIGHT": h})
            if gain is not None and s.has(n, "CCD_GAIN"):
                await s.set(n, "CCD_GAIN", {"GAIN": gain})
            if s.has(n, "CCD_FRAME_TYPE"):
                member = {"dark": "FRAME_DARK", "bias": "FRAME_BIAS", "flat": "FRAME_FLAT"}.get(kind, "FRAME_LIGHT")
                await s.set(n, "CCD_FRAME_TYPE", {member: "On"}, wait=False)
            t0 = self.clock.now()
            wall0 = time.monotonic()
            blob, fmt = await s.blob(n, "CCD1", lambda: s.set(n, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": seconds},
                                                               wait=False),
                                     timeout=seconds + BLOB_MARGIN_S)
        if fmt not in (".fits", ".fit", ".fts"):
            raise DeviceGarbage(f"{n} sent a {fmt or 'nameless'} image; fieldtui reads FITS "
                                "(set the driver's transfer format to FITS, no compression)")
        from ..imaging.io import FrameReadError, read_fits_bytes
        try:
            frame = await asyncio.to_thread(read_fits_bytes, blob, f"{n} exposure")
        except FrameReadError as exc:
            raise DeviceGarbage(f"{n}: {exc}") from None
        frame.exposure, frame.timestamp, frame.camera = seconds, t0, n
        frame.gain = gain if gain is not None else frame.gain
        frame.pixel_um = frame.pixel_um or self.pixel_um
        frame.kind = kind
        frame.meta.update({"roi": roi, "indi_latency_s": time.monotonic() - wall0 - seconds})
        return frame


class IndiGuideCamera(_IndiCamera, GuideCamera):
    """An INDI camera as the guide camera. ``cfg``: :class:`GuideCameraCfg` (``indi_device``)."""

    def __init__(self, server: IndiServer, cfg: Any, clock: Clock) -> None:
        self._init(server, cfg, clock)

    async def connect(self) -> DeviceInfo:
        return await self._connect_camera()

    async def expose(self, seconds: float, gain: int | None = None,
                     roi: tuple[int, int, int, int] | None = None) -> Frame:
        """One exposure of ``seconds``; ``roi`` (x, y, w, h) in sensor pixels. Raises
        DeviceTimeout, DeviceDisconnected (server gone), DeviceGarbage (not a FITS image)."""
        return await self._take(seconds, self.cfg.gain if gain is None else gain, roi)


class IndiMainCamera(_IndiCamera, MainCamera):
    """An INDI camera as the main camera. ``cfg``: :class:`MainCameraCfg` (``indi_device``)."""

    def __init__(self, server: IndiServer, cfg: Any, clock: Clock) -> None:
        self._init(server, cfg, clock)
        self.bayer = cfg.bayer or None

    async def connect(self) -> DeviceInfo:
        return await self._connect_camera()

    async def expose(self, seconds: float, iso: int | None = None, path=None, kind: str = "light") -> Frame:
        """One exposure; with ``path`` the frame is also saved there as FITS (atomically; the
        suffix becomes .fits)."""
        frame = await self._take(seconds, iso, None, kind)
        frame.iso = iso
        if frame.bayer is None:
            frame.bayer = self.bayer
        if path is not None:
            from ..imaging.io import write_fits
            from pathlib import Path
            frame.path = await asyncio.to_thread(write_fits, Path(path).with_suffix(".fits"), frame)
        return frame


class IndiMount(_IndiDevice, Mount):
    """An INDI telescope mount. RA/Dec are those of ``EQUATORIAL_EOD_COORD`` (the
    epoch of date, as INDI mounts work), in degrees."""

    RESTORE_ORDER = 2

    def __init__(self, server: IndiServer, cfg: Any, clock: Clock) -> None:
        self.server, self.cfg, self.clock, self.name = server, cfg, clock, cfg.indi_device
        self.guide_rate = cfg.guide_rate
        #: where the mount last pointed at rest, as the server said: (RA h, Dec °, tracking, parked)
        self.last_pointing: tuple[float, float, bool, bool] | None = None
        self._register()

    def _observe(self) -> None:
        s, n = self.server, self.name
        try:
            vec = s.vector(n, "EQUATORIAL_EOD_COORD")
            if vec is None or vec.state in ("Busy", "Alert"):
                return
            ra_h, dec = s.number(n, "EQUATORIAL_EOD_COORD", "RA"), s.number(n, "EQUATORIAL_EOD_COORD", "DEC")
            tracking = s.switch(n, "TELESCOPE_TRACK_STATE", "TRACK_ON") if s.has(n, "TELESCOPE_TRACK_STATE") else True
            parked = s.has(n, "TELESCOPE_PARK") and s.switch(n, "TELESCOPE_PARK", "PARK")
        except DeviceError:
            return
        if 0 <= ra_h <= 24 and -90 <= dec <= 90:
            self.last_pointing = (ra_h, dec, tracking, parked)

    async def _restore(self) -> str:
        """Connect again and point where the mount pointed before the server went away: unpark,
        slew back (a restarted driver starts at its park position), tracking as before."""
        s, n = self.server, self.name
        await s.ready(n)
        was = self.last_pointing
        if was is None:
            return ""
        ra_h, dec, tracking, parked = was
        await s._wait(lambda: s.has(n, "EQUATORIAL_EOD_COORD"), 5.0, n)
        if parked:
            return ""
        if s.has(n, "TELESCOPE_PARK") and s.switch(n, "TELESCOPE_PARK", "PARK"):
            await s.set(n, "TELESCOPE_PARK", {"UNPARK": "On"}, timeout=120.0)
        note = ""
        aim_ra, aim_dec = ra_h, dec
        for attempt in range(REPOINT_SLEWS + 1):
            now_ra, now_dec = s.number(n, "EQUATORIAL_EOD_COORD", "RA"), s.number(n, "EQUATORIAL_EOD_COORD", "DEC")
            off = _separation_deg(now_ra * 15, now_dec, ra_h * 15, dec)
            if off <= REPOINT_TOLERANCE_DEG or attempt == REPOINT_SLEWS:
                break
            if attempt:   # the goto landed off by its own pointing error: aim that much the other way
                aim_ra = (aim_ra + ((ra_h - now_ra + 12) % 24 - 12)) % 24
                aim_dec = max(-90.0, min(90.0, aim_dec + dec - now_dec))
            await s.set(n, "ON_COORD_SET", {"TRACK": "On"})
            await s.set(n, "EQUATORIAL_EOD_COORD", {"RA": aim_ra, "DEC": aim_dec}, timeout=300.0)
        if attempt:
            from ..astro import format_hms
            note = (f"mount slewed back to RA {format_hms(ra_h * 15)} Dec {dec:+.4f}° where it pointed "
                    f"({off * 3600:.0f}″ off after {attempt} slew{'s' if attempt > 1 else ''})")
        if s.has(n, "TELESCOPE_TRACK_STATE") and s.switch(n, "TELESCOPE_TRACK_STATE", "TRACK_ON") != tracking:
            await s.set(n, "TELESCOPE_TRACK_STATE", {"TRACK_ON" if tracking else "TRACK_OFF": "On"})
        return note

    async def connect(self) -> DeviceInfo:
        await self._ready()
        s, n = self.server, self.name
        if s.has(n, "GUIDE_RATE"):
            rate = s.number(n, "GUIDE_RATE", "GUIDE_RATE_WE")
            if 0 < rate <= 1:
                self.guide_rate = rate
        st = await self.state()
        return DeviceInfo(self.kind, self.driver, n, {"server": s.where, "ra_deg": st.ra_deg,
                                                      "dec_deg": st.dec_deg, "guide_rate": self.guide_rate})

    async def state(self) -> MountState:
        await self._ready()
        s, n = self.server, self.name
        ra_h = s.number(n, "EQUATORIAL_EOD_COORD", "RA")
        dec = s.number(n, "EQUATORIAL_EOD_COORD", "DEC")
        if not (0 <= ra_h <= 24 and -90 <= dec <= 90):
            raise DeviceGarbage(f"{n} reports RA {ra_h} h, Dec {dec}°: out of range")
        tracking = s.switch(n, "TELESCOPE_TRACK_STATE", "TRACK_ON") if s.has(n, "TELESCOPE_TRACK_STATE") else True
        pier = "unknown"
        if s.has(n, "TELESCOPE_PIER_SIDE"):
            pier = "west" if s.switch(n, "TELESCOPE_PIER_SIDE", "PIER_WEST") else \
                "east" if s.switch(n, "TELESCOPE_PIER_SIDE", "PIER_EAST") else "unknown"
        return MountState(ra_h * 15.0 % 360.0, dec, tracking, pier,  # type: ignore[arg-type]
                          slewing=s.state(n, "EQUATORIAL_EOD_COORD") == "Busy")

    async def _goto(self, how: str, ra_deg: float, dec_deg: float, timeout: float) -> None:
        if not -90 <= dec_deg <= 90:
            raise ValueError(f"declination {dec_deg}° is outside -90..90")
        await self._ready()
        s, n = self.server, self.name
        await s.set(n, "ON_COORD_SET", {how: "On"})
        await s.set(n, "EQUATORIAL_EOD_COORD", {"RA": (ra_deg % 360.0) / 15.0, "DEC": dec_deg}, timeout=timeout)

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Go to (RA, Dec) in degrees and keep tracking; returns when the mount has arrived."""
        await self.unpark()
        await self._goto("TRACK", ra_deg, dec_deg, timeout=300.0)

    async def sync(self, ra_deg: float, dec_deg: float) -> None:
        await self._goto("SYNC", ra_deg, dec_deg, timeout=CALL_TIMEOUT_S)

    async def set_tracking(self, on: bool) -> None:
        await self._ready()
        await self.server.set(self.name, "TELESCOPE_TRACK_STATE", {"TRACK_ON" if on else "TRACK_OFF": "On"})

    async def unpark(self) -> None:
        """Unpark when the driver says the mount is parked (no-op otherwise)."""
        await self._ready()
        s, n = self.server, self.name
        if s.has(n, "TELESCOPE_PARK") and s.switch(n, "TELESCOPE_PARK", "PARK"):
            await s.set(n, "TELESCOPE_PARK", {"UNPARK": "On"}, timeout=120.0)

    async def park(self) -> None:
        """Slew to the driver's park position and stop (TELESCOPE_PARK); returns when parked.
        Raises DeviceUnsupported when the driver has no park."""
        await self._ready()
        s, n = self.server, self.name
        if not s.has(n, "TELESCOPE_PARK"):
            raise DeviceUnsupported(f"INDI mount {n!r} has no TELESCOPE_PARK")
        await s.set(n, "TELESCOPE_PARK", {"PARK": "On"}, timeout=300.0)

    async def pulse(self, direction: Direction, ms: int) -> None:
        await _timed_guide(self.server, self.name, direction, ms, self.clock)

    async def abort(self) -> None:
        if self.server.has(self.name, "TELESCOPE_ABORT_MOTION"):
            await self.server.set(self.name, "TELESCOPE_ABORT_MOTION", {"ABORT": "On"}, wait=False)


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two (RA, Dec) points, all in degrees (haversine)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


async def _timed_guide(server: IndiServer, device: str, direction: Direction, ms: int, clock: Clock) -> None:
    """A timed guide pulse (the driver times it) and the wait for its end."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown guide direction {direction!r}; one of N, S, E, W")
    if ms < 0:
        raise ValueError("pulse duration must not be negative")
    if ms == 0:
        return
    if not server.connected or not server.has(device, "CONNECTION") or \
            not server.switch(device, "CONNECTION", "CONNECT"):
        await server.ready(device)
    vector, member = GUIDE_VECTORS[direction]
    other = {"TIMED_GUIDE_N": "TIMED_GUIDE_S", "TIMED_GUIDE_S": "TIMED_GUIDE_N",
             "TIMED_GUIDE_E": "TIMED_GUIDE_W", "TIMED_GUIDE_W": "TIMED_GUIDE_E"}[member]
    await server.set(device, vector, {member: ms, other: 0}, timeout=ms / 1000.0 + CALL_TIMEOUT_S)


class IndiGuidePort(_IndiDevice, GuidePort):
    """Timed guide pulses through an INDI device: the guide camera's ST4 port
    (``[guide_port] via = "camera"``) or the mount (``via = "mount"``)."""

    def __init__(self, server: IndiServer, device: str, clock: Clock, guide_rate: float = 0.5,
                 mount: IndiMount | None = None) -> None:
        self.server, self.name, self.clock, self._rate, self.mount = server, device, clock, guide_rate, mount
        self._register()

    RESTORE_ORDER = 4

    @property
    def guide_rate(self) -> float:  # type: ignore[override]
        return self.mount.guide_rate if self.mount is not None else self._rate

    async def connect(self) -> DeviceInfo:
        await self._ready()
        if not self.server.has(self.name, "TELESCOPE_TIMED_GUIDE_NS"):
            raise DeviceError(f"INDI device {self.name!r} takes no timed guide pulses; "
                              "set [guide_port] via to the other device")
        return DeviceInfo(self.kind, self.driver, f"timed guiding through {self.name}",
                          {"server": self.server.where, "guide_rate": self.guide_rate})

    async def pulse(self, direction: Direction, ms: int) -> None:
        """Move toward ``direction`` for ``ms`` ms at the guide rate; returns when done."""
        await _timed_guide(self.server, self.name, direction, ms, self.clock)


class IndiFocuser(_IndiDevice, Focuser):
    """An INDI focuser with absolute positions (``ABS_FOCUS_POSITION``)."""

    def __init__(self, server: IndiServer, cfg: Any, clock: Clock) -> None:
        self.server, self.cfg, self.clock, self.name = server, cfg, clock, cfg.indi_device
        self.max_position = cfg.max_position
        self.last_position: int | None = None   # where it last stood, as the server said
        self._register()

    RESTORE_ORDER = 1

    def _observe(self) -> None:
        s, n = self.server, self.name
        try:
            vec = s.vector(n, "ABS_FOCUS_POSITION")
            if vec is not None and vec.state in ("Ok", "Idle"):
                self.last_position = int(round(s.number(n, "ABS_FOCUS_POSITION", "FOCUS_ABSOLUTE_POSITION")))
        except DeviceError:
            return

    async def _restore(self) -> str:
        """Connect again and move back to the position before the server went away (a restarted
        driver may start anywhere; focus matters)."""
        s, n = self.server, self.name
        await s.ready(n)
        was = self.last_position
        if was is None:
            return ""
        await s._wait(lambda: s.has(n, "ABS_FOCUS_POSITION"), 5.0, n)
        if int(round(s.number(n, "ABS_FOCUS_POSITION", "FOCUS_ABSOLUTE_POSITION"))) == was:
            return ""
        await s.set(n, "ABS_FOCUS_POSITION", {"FOCUS_ABSOLUTE_POSITION": was}, timeout=120.0)
        return f"focuser back at {was}"

    async def connect(self) -> DeviceInfo:
        await self._ready()
        s, n = self.server, self.name
        if not s.has(n, "ABS_FOCUS_POSITION"):
            raise DeviceError(f"INDI device {n!r} has no absolute position (ABS_FOCUS_POSITION)")
        if s.has(n, "FOCUS_MAX"):
            self.max_position = int(s.number(n, "FOCUS_MAX", "FOCUS_MAX_VALUE"))
        return DeviceInfo(self.kind, self.driver, n, {"server": s.where, "max_position": self.max_position,
                                                      "position": await self.position()})

    async def position(self) -> int:
        await self._ready()
        return int(round(self.server.number(self.name, "ABS_FOCUS_POSITION", "FOCUS_ABSOLUTE_POSITION")))

    async def move_to(self, position: int) -> int:
        """Move to ``position`` steps (0..max_position); returns where it stopped."""
        if not 0 <= position <= self.max_position:
            raise ValueError(f"focuser position {position} is outside 0..{self.max_position}")
        await self._ready()
        await self.server.set(self.name, "ABS_FOCUS_POSITION", {"FOCUS_ABSOLUTE_POSITION": int(position)},
                              timeout=120.0)
        return await self.position()
