"""Focus aid and exposure assistant: the service side.

A worker loops a camera (the guide camera, or the DSLR's live view),
measures the stars of every frame off the event loop, follows one star
(auto: the brightest unsaturated one; the user may pick another) and
publishes one small :class:`FocusFrame` per frame: the star's position,
HFR, FWHM, peak, a 15×15 cut-out and its radial profile, the focuser
position, the new trend point, the best so far and a V-curve fit. The
frame itself goes out as the usual :class:`~fieldtui.events.FramePreview`
(≤ 160×120). Frames are at least :data:`MIN_CYCLE_S` apart, so a client
over SSH gets at most 2 updates a second.

The V curve: a star's FWHM against focuser position ``p`` is a hyperbola
``FWHM(p) = sqrt(a² + (b (p − c))²)`` (``a`` the in-focus size, ``b`` the
blur per step far from focus, ``c`` the best position). It is fitted to
the median FWHM at each focuser position once five positions are known.

``focus.test_exposure`` runs one main-camera light through the exposure
assistant (:func:`~fieldtui.imaging.frame_metrics` and
:func:`~fieldtui.imaging.advise`) and publishes a :class:`FocusTest`:
64-bin histograms per Bayer channel and the advice lines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from ..devices.base import DeviceDisconnected, DeviceError
from ..devices.proxy import DeviceBusy
from ..events import FocusFrame, FocusSettings, FocusTest
from ..frame import Frame
from .activity import Activity

if TYPE_CHECKING:
    from ..imaging.advice import RigLimits
    from .session import Session

MIN_CYCLE_S = 0.5          # at most 2 frames (and events) a second
TREND_MAX = 400            # points kept in the trend
CUT = 15                   # cut-out side, in cut-out pixels
PROFILE_BINS = 10
MIN_POSITIONS = 5          # distinct focuser positions before a V-curve fit
EXPOSURES = [0.05, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0]
GAINS = [0, 25, 50, 75, 100, 150, 200, 250, 300, 400]
ISOS = [100, 200, 400, 800, 1600, 3200, 6400, 12800]
LIVE_VIEW_EXPOSURE = 2.0   # DSLR live view: a bright preview to focus on
LIVE_VIEW_ISO = 3200
HIST_BINS = 64
NO_FOCUSER = ("no focuser is configured (focuser.driver = \"none\" in the config): "
              "turn the focus knob by hand and watch HFR/FWHM on the trend")


# --------------------------------------------------------------------------
# pure computation (runs in a thread)

def _ladder_step(ladder: list, value: float, step: int) -> float:
    i = int(np.argmin([abs(math.log(max(v, 1e-6) / max(value, 1e-6))) for v in ladder]))
    return ladder[int(np.clip(i + step, 0, len(ladder) - 1))]


def _luminance(frame: Frame) -> tuple[np.ndarray, float]:
    """The array stars are measured on and its pixel size in sensor pixels."""
    from ..imaging.stars import bin_bayer
    data = np.asarray(frame.data)
    if frame.bayer:
        return bin_bayer(data), 2.0
    return data.astype(np.float32), 1.0


def _cutout(lum: np.ndarray, x: float, y: float, fwhm: float) -> dict[str, Any]:
    """A CUT×CUT 8-bit image around (x, y) (luminance pixels), binned so the star fits, and its profile."""
    k = max(1, int(math.ceil(3.0 * fwhm / CUT)))
    side = CUT * k
    h, w = lum.shape
    x0 = int(round(x)) - side // 2
    y0 = int(round(y)) - side // 2
    pad = np.full((side, side), np.nan, np.float32)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        pad[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = lum[sy0:sy1, sx0:sx1]
    border = np.concatenate([pad[0], pad[-1], pad[1:-1, 0], pad[1:-1, -1]])
    sky = float(np.nanmedian(border)) if np.isfinite(border).any() else 0.0
    sub = np.nan_to_num(pad - sky, nan=0.0)
    peak = float(sub.max()) or 1.0
    binned = sub.reshape(CUT, k, CUT, k).mean(axis=(1, 3))
    img = np.clip(binned / max(float(binned.max()), 1e-6), 0, 1)
    img8 = (np.sqrt(img) * 255).astype(np.uint8)
    # radial profile around the star's centre, normalised to its peak
    yy, xx = np.mgrid[0:side, 0:side]
    r = np.hypot(xx - (x - x0), yy - (y - y0))
    rmax = side / 2.0
    edges = np.linspace(0, rmax, PROFILE_BINS + 1)
    idx = np.digitize(r.ravel(), edges) - 1
    vals = sub.ravel()
    prof = []
    for i in range(PROFILE_BINS):
        sel = idx == i
        prof.append(round(float(vals[sel].mean()) / peak, 3) if sel.any() else 0.0)
    return {"cutout": base64.b64encode(img8.tobytes()).decode(), "cut": CUT, "cut_scale": k,
            "profile": prof, "profile_step": float(edges[1])}


def measure_focus_frame(frame: Frame, select: dict[str, Any]) -> dict[str, Any]:
    """Stars of a frame and the followed star's measurement.

    ``select``: ``{"mode": "auto"|"manual", "x": …, "y": …, "step": 0}``
    (sensor pixels; ``step`` ±1 moves to the next fainter/brighter star).
    Returns ``{"stars", "median_fwhm", "star", "select"}``.
    """
    from ..imaging.metrics import measure_frame_stars
    from ..imaging.stars import measure_star

    stars = measure_frame_stars(frame)
    good = [s for s in stars if not s.saturated and s.snr >= 5.0]
    fitted = [s.fwhm for s in good if s.fitted]
    out: dict[str, Any] = {"stars": len(stars),
                           "median_fwhm": float(np.median(fitted)) if fitted else None,
                           "star": None, "select": dict(select)}
    if not good:
        return out
    chosen = None
    sx, sy = select.get("x"), select.get("y")
    if sx is not None and sy is not None:
        d = [math.hypot(s.x - sx, s.y - sy) for s in good]
        i = int(np.argmin(d))
        # follow the star when it is still there (within ~2 FWHM or 20 px)
        if d[i] <= max(20.0, 2.0 * good[i].fwhm):
            chosen = i
    if chosen is None:
        chosen = 0  # the brightest unsaturated star
    step = int(select.get("step", 0))
    if step:
        chosen = (chosen + step) % len(good)
    s = good[chosen]
    lum, f = _luminance(frame)
    lx, ly = (s.x - 0.5) / f if f > 1 else s.x, (s.y - 0.5) / f if f > 1 else s.y
    box = int(min(101, max(31, 4.0 * s.fwhm / f)))
    precise = measure_star(lum, lx, ly, box=box)
    # the fit must be of the same star: near it and of about its size (not a hot pixel beside it)
    if (precise is not None and math.hypot(precise.x - lx, precise.y - ly) < max(3.0, s.fwhm / f)
            and 0.6 < precise.fwhm * f / max(s.fwhm, 1e-6) < 1.6):
        m = precise.scaled(f, 0.5) if f > 1 else precise
        saturated = s.saturated
    else:
        m, saturated = s, s.saturated
    lx, ly = (m.x - 0.5) / f if f > 1 else m.x, (m.y - 0.5) / f if f > 1 else m.y
    peak_raw = float(np.asarray(frame.data)[int(np.clip(round(m.y), 0, frame.height - 1)),
                                            int(np.clip(round(m.x), 0, frame.width - 1))])
    star = {"x": round(m.x, 2), "y": round(m.y, 2), "hfr": round(m.hfr, 3), "fwhm": round(m.fwhm, 3),
            "peak": round(m.peak, 1), "peak_raw": peak_raw, "snr": round(m.snr, 1), "saturated": bool(saturated),
            "rank": chosen + 1, "of": len(good), "elongation": round(m.elongation, 3),
            "frame_w": frame.width, "frame_h": frame.height}
    star.update(_cutout(lum, lx, ly, m.fwhm / f))
    out["star"] = star
    out["select"] = {"mode": select.get("mode", "auto"), "x": m.x, "y": m.y, "step": 0}
    return out


def fit_v_curve(positions: np.ndarray, values: np.ndarray) -> dict[str, Any] | None:
    """Fit ``v(p) = sqrt(a² + (b (p − c))²)`` to the median ``v`` at each distinct position.

    Returns ``{"a", "b", "c", "best", "rms", "positions", "extrapolated"}`` or
    ``None`` with fewer than :data:`MIN_POSITIONS` positions or no minimum.
    """
    from scipy.optimize import least_squares

    p = np.asarray(positions, float)
    v = np.asarray(values, float)
    ok = np.isfinite(p) & np.isfinite(v) & (v > 0)
    p, v = p[ok], v[ok]
    ups = np.unique(p)
    if len(ups) < MIN_POSITIONS:
        return None
    med = np.array([np.median(v[p == u]) for u in ups])
    cnt = np.array([np.count_nonzero(p == u) for u in ups], float)
    # v² is a parabola in p: a linear least-squares start
    p0 = float(ups.mean())
    ps = (ups - p0)
    A = np.column_stack([ps ** 2, ps, np.ones_like(ps)])
    coef, *_ = np.linalg.lstsq(A * np.sqrt(cnt)[:, None], med ** 2 * np.sqrt(cnt), rcond=None)
    qa, qb, qc = coef
    if qa > 0:
        c0 = -qb / (2 * qa)
        a0 = math.sqrt(max(qc - qb * qb / (4 * qa), (0.5 * med.min()) ** 2))
        b0 = math.sqrt(qa)
    else:
        c0 = float(ps[np.argmin(med)])
        a0 = float(med.min())
        b0 = float((med.max() - med.min()) / max(np.ptp(ps), 1.0))
    span = max(float(np.ptp(ps)), 1.0)

    def resid(x: np.ndarray) -> np.ndarray:
        a, b, c = x
        return (np.sqrt(a * a + (b * (ps - c)) ** 2) - med) * np.sqrt(cnt)

    try:
        res = least_squares(resid, [a0, max(b0, 1e-6), float(np.clip(c0, -2 * span, 2 * span))],
                            bounds=([1e-3, 1e-9, -3 * span], [np.inf, np.inf, 3 * span]))
    except (ValueError, np.linalg.LinAlgError):
        return None
    a, b, c = (float(x) for x in res.x)
    model = np.sqrt(a * a + (b * (ps - c)) ** 2)
    rms = float(np.sqrt(np.mean((model - med) ** 2)))
    best = c + p0
    # the curve must rise on both sides of the best position to mean anything
    left, right = ups.min(), ups.max()
    return {"a": round(abs(a), 4), "b": b, "c": best, "best": int(round(best)), "rms": round(rms, 4),
            "positions": int(len(ups)), "extrapolated": bool(best < left or best > right),
            "lo": float(left), "hi": float(right)}


def _hist_block(frame: Frame, m: dict) -> dict[str, Any]:
    """Small per-channel histograms over the range that matters for a light: black to the sky's top."""
    from ..imaging.histogram import bayer_channels
    data = np.asarray(frame.data)
    black, white = float(frame.black_level), float(frame.white_level)
    med = float(m.get("median", black))
    width = float(m.get("left_width") or 1.0)
    lo = max(float(data.min()), black - max(4 * width, 0.5 * (med - black)))
    hi = max(med + 8 * width, med + 0.5 * (med - black), lo + HIST_BINS)
    hi = min(hi, white + 1)
    planes = bayer_channels(data, frame.bayer) if frame.bayer else {"L": data}
    step = max(1, int(math.sqrt(data.size / 2_000_000)))  # a subsample is plenty for a 64-bin picture
    hist = {}
    for name, ch in planes.items():
        h, _ = np.histogram(ch[::step, ::step], bins=HIST_BINS, range=(lo, hi))
        hist[name] = [int(x) for x in h]
    return {"lo": lo, "hi": hi, "hist": hist}


def assess_test_frame(frame: Frame, limits: "RigLimits | None" = None) -> dict[str, Any]:
    """Metrics, advice (within ``limits``, what the rig can do) and small histograms of a test frame."""
    from ..imaging.advice import advise
    from ..imaging.metrics import frame_metrics
    m = frame_metrics(frame)
    advice = advise(m, kind="light", limits=limits)
    keep = ("median", "mode", "clipped_black_pct", "saturated_pct", "left_edge_visible", "left_edge_margin",
            "stars", "saturated_stars", "hfr", "fwhm", "fwhm_arcsec", "elongation", "noise", "background")
    out = {"metrics": {k: m.get(k) for k in keep}, "advice": advice}
    out.update(_hist_block(frame, m))
    return out


# --------------------------------------------------------------------------
# the worker

class FocusAid(Activity):
    """The focus aid as an activity: it leases the camera it loops on (and the
    main camera for a test exposure); its own two uses of the main camera take
    turns on its own lock."""

    name = "focus"
    attribute = "focus"

    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        cfg = session.cfg
        self.camera = "main_camera"
        self.settings: dict[str, dict[str, Any]] = {
            "main_camera": {"exposure": LIVE_VIEW_EXPOSURE, "gain": LIVE_VIEW_ISO},
            "guide_camera": {"exposure": cfg.guide_camera.exposure_s, "gain": cfg.guide_camera.gain},
        }
        self.select: dict[str, Any] = {"mode": "auto", "x": None, "y": None, "step": 0}
        self.trend: deque[list[Any]] = deque(maxlen=TREND_MAX)
        self.n = 0
        self.best: dict[str, Any] | None = None
        self.fit: dict[str, Any] | None = None
        self.fit_hfr: dict[str, Any] | None = None
        self.curves: dict[str, tuple[Any, ...]] = {}  # the other camera's (trend, best, fit, fit_hfr)
        self.last: FocusFrame | None = None
        self.last_test: FocusTest | None = None
        self.task: asyncio.Task[Any] | None = None
        self.moves = 0  # focuser moves so far: a frame exposed across one is not a trend point
        self.focuser_pos: int | None = None
        self._turns: dict[str, asyncio.Lock] = {}  # the loop and a test exposure on one camera
        self._testing = False

    def commands(self) -> dict[str, Any]:
        return {
            "focus.start": self.cmd_start,
            "focus.stop": self.cmd_stop,
            "focus.select": self.cmd_select,
            "focus.exposure": self.cmd_exposure,
            "focus.gain": self.cmd_gain,
            "focus.clear": self.cmd_clear,
            "focus.state": self.cmd_state,
            "focus.test_exposure": self.cmd_test_exposure,
            "focuser.move": self.cmd_focuser_move,
        }

    def _turn(self, camera: str) -> asyncio.Lock:
        return self._turns.setdefault(camera, asyncio.Lock())

    # ----- state ----------------------------------------------------------
    @property
    def has_focuser(self) -> bool:
        return "focuser" in self.s.slots

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def _settings_event(self) -> FocusSettings:
        st = self.settings[self.camera]
        return FocusSettings(camera=self.camera, exposure=st["exposure"], gain=st["gain"],
                             running=self.running, focuser=self.focuser_pos,
                             has_focuser=self.has_focuser, selection=self.select["mode"])

    def publish_settings(self) -> None:
        self.s.publish(self._settings_event())

    def snapshot(self) -> dict[str, Any]:
        """The focus loop's settings (the trend comes with ``focus.state``)."""
        ev = self._settings_event().to_dict()
        ev.pop("t", None)
        return ev

    def record(self) -> dict[str, Any] | None:
        if not self.running:
            return None
        st = self.settings[self.camera]
        return {"state": self.state, "since": self.since, "camera": self.camera,
                "exposure": st["exposure"], "gain": st["gain"], "focuser": self.focuser_pos}

    def state_dict(self) -> dict[str, Any]:
        st = self.settings[self.camera]
        return {"camera": self.camera, "exposure": st["exposure"], "gain": st["gain"], "running": self.running,
                "focuser": self.focuser_pos, "has_focuser": self.has_focuser, "selection": self.select["mode"],
                "trend": list(self.trend), "best": self.best, "fit": self.fit, "fit_hfr": self.fit_hfr,
                "last": self.last.to_dict() if self.last else None,
                "test": self.last_test.to_dict() if self.last_test else None}

    def _swap_curves(self, camera: str) -> None:
        """Each camera keeps its own trend, best and V-curve (stars of one never mix with the other's)."""
        self.curves[self.camera] = (self.trend, self.best, self.fit, self.fit_hfr)
        self.trend, self.best, self.fit, self.fit_hfr = self.curves.pop(
            camera, (deque(maxlen=TREND_MAX), None, None, None))

    def curves_of(self, camera: str) -> dict[str, Any]:
        """The trend, best and fits of ``camera`` (the one in use, or the other one's kept curves)."""
        if camera == self.camera:
            trend, best, fit, fit_hfr = self.trend, self.best, self.fit, self.fit_hfr
        else:
            trend, best, fit, fit_hfr = self.curves.get(camera, ([], None, None, None))
        return {"trend": list(trend), "best": best, "fit": fit, "fit_hfr": fit_hfr}

    def _refit(self) -> None:
        pts = [p for p in self.trend if p[2] is not None]
        if not pts:
            self.fit = self.fit_hfr = None
            return
        arr = np.array([[p[2], p[3], p[4]] for p in pts], float)
        self.fit = fit_v_curve(arr[:, 0], arr[:, 2])
        self.fit_hfr = fit_v_curve(arr[:, 0], arr[:, 1])

    # ----- commands -------------------------------------------------------
    async def cmd_start(self, camera: str | None = None, exposure: float | None = None,
                        gain: int | None = None, iso: int | None = None) -> dict[str, Any]:
        camera = camera or self.camera
        if camera not in self.settings:
            raise ValueError(f"focus needs a camera: guide_camera or main_camera, not {camera!r}")
        if camera not in self.s.slots:
            raise ValueError(f"no {camera.replace('_', ' ')} is configured")
        if camera != self.camera and self.running:
            await self.cmd_stop()
        if not self.running:
            try:
                self.lease(camera)
            except DeviceBusy as exc:
                raise ValueError(f"{exc}: stop it first, or focus on the other camera") from None
        if camera != self.camera:
            self._swap_curves(camera)
            self.camera = camera
            self.select = {"mode": "auto", "x": None, "y": None, "step": 0}
        st = self.settings[camera]
        if exposure is not None:
            st["exposure"] = float(exposure)
        if gain is not None or iso is not None:
            st["gain"] = int(gain if gain is not None else iso)  # type: ignore[arg-type]
        if not self.running:
            self.set_status("running", detail=f"{camera.replace('_', ' ')}")
            self.task = self.spawn(self._loop(), name="focus")
        await self._read_focuser()
        self.publish_settings()
        return self.state_dict() | {"trend": None}

    async def _stop_loop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.task = None
        if not (self.camera == "main_camera" and self._testing):  # a test exposure keeps it
            self.release(self.camera)

    async def cmd_stop(self) -> str:
        await self._stop_loop()
        self.set_status("stopped", progress=float(self.n))
        self.publish_settings()
        return "stopped"

    async def shutdown(self) -> None:
        await self._stop_loop()
        if self.state not in ("idle", "stopped", "failed"):
            self.set_status("stopped", progress=float(self.n))

    async def cmd_select(self, star: str = "auto") -> str:
        if star == "auto":
            self.select = {"mode": "auto", "x": None, "y": None, "step": 0}
        elif star in ("next", "prev"):
            self.select = dict(self.select, mode="manual", step=1 if star == "next" else -1)
        else:
            raise ValueError(f"star must be auto, next or prev, not {star!r}")
        self.publish_settings()
        return self.select["mode"]

    def _settings_of(self, camera: str | None) -> tuple[str, dict[str, Any]]:
        camera = camera or self.camera
        if camera not in self.settings:
            raise ValueError(f"focus needs a camera: guide_camera or main_camera, not {camera!r}")
        return camera, self.settings[camera]

    async def cmd_exposure(self, value: float | None = None, step: int = 0, camera: str | None = None) -> float:
        camera, st = self._settings_of(camera)
        if value is not None:
            if not 0 < float(value) <= 600:
                raise ValueError(f"exposure must be between 0 and 600 s, not {value}")
            st["exposure"] = float(value)
        elif step:
            st["exposure"] = float(_ladder_step(EXPOSURES, st["exposure"], int(step)))
        self.publish_settings()
        return st["exposure"]

    async def cmd_gain(self, value: int | None = None, step: int = 0, camera: str | None = None) -> int:
        camera, st = self._settings_of(camera)
        ladder = ISOS if camera == "main_camera" else GAINS
        if value is not None:
            st["gain"] = int(value)
        elif step:
            st["gain"] = int(_ladder_step(ladder, max(st["gain"], 1), int(step)))
        self.publish_settings()
        return st["gain"]

    async def _read_focuser(self) -> int | None:
        if not self.has_focuser:
            return None
        try:
            self.focuser_pos = int(await self.s.device("focuser").position())
        except DeviceError:
            self.focuser_pos = None
        return self.focuser_pos

    async def cmd_focuser_move(self, steps: int | None = None, to: int | None = None) -> int:
        if not self.has_focuser:
            raise ValueError(NO_FOCUSER)
        try:
            dev = self.s.device("focuser", owner=self.name)
        except DeviceDisconnected as exc:
            raise ValueError(f"focuser is not connected: {exc}") from None
        try:
            pos = int(await dev.position())
            target = int(to) if to is not None else pos + int(steps or 0)
            self.moves += 1
            new = int(await dev.move_to(target))
        except DeviceDisconnected as exc:
            raise ValueError(f"focuser lost: {exc}") from None
        except DeviceError as exc:
            raise ValueError(str(exc)) from None
        self.moves += 1
        self.focuser_pos = new
        self.publish_settings()
        return new

    async def cmd_clear(self) -> str:
        self.trend.clear()
        self.best = self.fit = self.fit_hfr = None
        self.publish_settings()
        return "cleared"

    async def cmd_state(self, camera: str | None = None) -> dict[str, Any]:
        """The focus state; with ``camera``, that camera's trend, best and fits."""
        st = self.state_dict()
        if camera is not None and camera != self.camera:
            self._settings_of(camera)
            st.update(self.curves_of(camera), trend_camera=camera)
        return st

    async def cmd_test_exposure(self, exposure: float | None = None, iso: int | None = None,
                                wait: bool = True) -> dict[str, Any]:
        """One light through the exposure assistant. ``wait=False`` answers at once;
        the result comes as a :class:`FocusTest` event (a light may take minutes).

        The exposure is timed out through the device proxy (its length plus a
        margin): a camera that hangs ends the test as ``failed``, never
        "running" for ever."""
        exposure = float(exposure if exposure is not None else self.s.cfg.plan.light_exposure_s)
        iso = int(iso if iso is not None else self.s.cfg.main_camera.iso)
        if not 0 < exposure <= 3600:
            raise ValueError(f"test exposure must be between 0 and 3600 s, not {exposure:g}")
        if self.s.activities.get("focus.test") and self.s.activities["focus.test"].state == "running":
            raise ValueError("a test exposure is already running")
        held = self.s.holder("main_camera")
        if held is not None and held.owner != self.name:
            raise ValueError(f"{self.s.busy_message(held)}: no test exposure now")
        self.set_status("running", name="focus.test", detail=f"test exposure {exposure:g} s ISO {iso}")
        if not wait:
            self.spawn(self._test(exposure, iso, background=True), name="focus.test")
            return {"started": True, "exposure": exposure, "iso": iso}
        return await self._test(exposure, iso)

    async def _test(self, exposure: float, iso: int, background: bool = False) -> dict[str, Any]:
        try:
            dev = self.lease("main_camera")
            self._testing = True
            try:
                async with self._turn("main_camera"):
                    self.s.device("main_camera")  # connected?
                    frame = await dev.expose(exposure, iso, kind="light")
            finally:
                self._testing = False
                if not (self.running and self.camera == "main_camera"):
                    self.release("main_camera")
            from ..imaging.advice import RigLimits
            res = await self.s.clock.run_blocking(assess_test_frame, frame, RigLimits.from_config(self.s.cfg))
        except (DeviceError, ValueError) as exc:
            self.set_status("failed", name="focus.test", detail=f"test exposure failed: {exc}", reason=str(exc))
            self.s.alert("error", "focus.test", f"Test exposure failed: {exc}")
            if background:
                return {"ok": False, "error": str(exc)}
            raise ValueError(f"test exposure failed: {exc}") from None
        except BaseException:
            self.set_status("stopped", name="focus.test", detail="test exposure stopped")
            raise
        ev = FocusTest(camera="main_camera", exposure=exposure, iso=iso, black=float(frame.black_level),
                       white=float(frame.white_level), lo=res["lo"], hi=res["hi"], hist=res["hist"],
                       advice=res["advice"], metrics=res["metrics"])
        self.last_test = ev
        self.s.publish(ev)
        self.set_status("done", name="focus.test", progress=1.0, detail="; ".join(res["advice"])[:120])
        return ev.to_dict()

    # ----- the loop -------------------------------------------------------
    async def _expose(self, camera: str, exposure: float, gain: int) -> Frame:
        self.s.device(camera)  # connected? (DeviceDisconnected when not)
        dev = self.lease(camera)
        async with self._turn(camera):
            if camera == "main_camera":
                return await dev.live_view(exposure, gain)
            return await dev.expose(exposure, gain)

    async def _loop(self) -> None:
        s = self.s
        last_preview = -math.inf
        try:
            while True:
                camera = self.camera
                st = self.settings[camera]
                exposure, gain = st["exposure"], st["gain"]
                t0 = s.clock.monotonic()
                moves0 = self.moves
                pos0 = await self._read_focuser()
                try:
                    frame = await self._expose(camera, exposure, gain)
                except DeviceDisconnected as exc:
                    s.device_lost(camera, exc)
                    self.set_status("waiting", detail=f"{camera.replace('_', ' ')} lost; waiting for it")
                    await s.clock.sleep(max(exposure, 1.0))
                    continue
                except DeviceError as exc:
                    s.alert("warning", camera, str(exc))
                    await s.clock.sleep(MIN_CYCLE_S)
                    continue
                pos1 = await self._read_focuser()
                moved = self.moves != moves0 or pos0 != pos1
                meas = await s.clock.run_blocking(measure_focus_frame, frame, self.select)
                if self.select.get("step"):
                    self.select["step"] = 0
                if meas["select"].get("x") is not None:
                    self.select.update(x=meas["select"]["x"], y=meas["select"]["y"])
                self.n += 1
                star = meas["star"]
                point = None
                note = ""
                if star is None:
                    note = "no star: raise the exposure or gain, or move the focuser toward focus"
                elif moved:
                    note = "focuser moved during the frame: not used"
                else:
                    point = [self.n, round(frame.timestamp, 3), pos1, star["hfr"], star["fwhm"]]
                    self.trend.append(point)
                    if self.best is None or star["fwhm"] < self.best["fwhm"]:
                        self.best = {"n": self.n, "t": point[1], "focuser": pos1, "hfr": star["hfr"],
                                     "fwhm": star["fwhm"]}
                    if pos1 is not None:
                        await s.clock.run_blocking(self._refit)
                now = s.clock.monotonic()
                if now - last_preview >= MIN_CYCLE_S:
                    prev = await s.clock.run_blocking(_preview, frame)
                    prev.camera = camera
                    s.last_preview[camera] = prev
                    s.publish(prev)
                    last_preview = now
                ev = FocusFrame(camera=camera, n=self.n, exposure=exposure, gain=gain, focuser=pos1,
                                stars=meas["stars"], median_fwhm=meas["median_fwhm"], star=star, point=point,
                                best=self.best, fit=self.fit, fit_hfr=self.fit_hfr, note=note)
                self.last = ev
                s.publish(ev)
                self.set_status("running", progress=float(self.n),
                                detail=f"{camera.replace('_', ' ')} {exposure:g} s, frame {self.n}")
                rest = MIN_CYCLE_S - (s.clock.monotonic() - t0)
                if rest > 0:
                    await s.clock.sleep(rest)
        finally:
            if self.state in ("running", "waiting"):
                self.set_status("stopped", progress=float(self.n))


def _preview(frame: Frame):  # noqa: ANN202 - FramePreview
    from .session import preview_of
    return preview_of(frame)
