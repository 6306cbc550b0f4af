"""The guiding assistant on a running guide worker: a few minutes unguided, then Dec backlash.

:func:`run_assistant` calibrates (when needed), watches the star with the
corrections held back for ``minutes``, then measures the Dec backlash with
north and south pulses of its own (clear the play northward, a north leg,
a south leg; the backlash is the south pulse time that moved nothing) and
hands it all to :func:`fieldtui.guiding.assistant.analyze_unguided`.  The
findings go into the guide log as ``INFO:`` lines and come back as
:class:`~fieldtui.guiding.assistant.AssistantFindings`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..guiding.assistant import AssistantFindings, analyze_unguided, axes_from_periodic_error
from ..guiding.events import Alert, GuideState, GuideStep
from ..guiding.stats import GuideStats

try:  # the calibration's backlash measurement (fieldtui.guiding.backlash)
    from ..guiding.backlash import measure_backlash
except ImportError:  # pragma: no cover - before that module is merged
    measure_backlash = None  # type: ignore[assignment]

BACKLASH_STEPS = 8       # pulses on each of the north and south legs
BACKLASH_STEP_PX = 2.5   # star motion per pulse at the calibrated Dec rate
CLEAR_PX = 3.0           # north motion that proves the play is taken up
CLEAR_MAX_STEPS = 30


class AssistantError(Exception):
    """The assistant could not run; the message says why."""


@dataclass
class AssistantProgress:
    """Where a running assistant is, for the state clients show.  Times are on the
    clock run_assistant got (s).  ``phase``: "calibrating" (when it must first),
    "watching" (the star unguided from ``watch_from`` for ``minutes``), "backlash" (the
    Dec pulses, ``pulses`` of about ``pulses_total`` sent), "analysing", then "done".
    ``changed`` is called on every change of phase."""

    minutes: float = 10.0
    exposure_s: float = 1.0
    phase: str = "starting"
    started: float | None = None
    watch_from: float | None = None
    pulses: int = 0
    pulses_total: int = 2 * BACKLASH_STEPS + 2
    changed: Callable[[], Any] | None = None

    def set_phase(self, phase: str, t: float | None = None) -> None:
        self.phase = phase
        if phase == "watching":
            self.watch_from = t
        if self.changed is not None:
            self.changed()

    def pulse_s(self) -> float:
        """About how long one backlash pulse takes (s): the pulse, then two frames."""
        return 2.0 * self.exposure_s + 1.0

    def left_s(self, now: float) -> float | None:
        """About how many seconds are left (None before the watch began: calibration's
        own progress says it)."""
        backlash = max(self.pulses_total - self.pulses, 0) * self.pulse_s()
        if self.phase == "watching" and self.watch_from is not None:
            return max(self.watch_from + self.minutes * 60.0 - now, 0.0) + backlash
        if self.phase == "backlash":
            return backlash
        return 0.0 if self.phase in ("analysing", "done") else None

    def fraction(self, now: float) -> float | None:
        """Share done of the watch and the backlash pulses together (0 to 1)."""
        left = self.left_s(now)
        if left is None:
            return None
        total = self.minutes * 60.0 + self.pulses_total * self.pulse_s()
        return min(max(1.0 - left / total, 0.0), 1.0) if total > 0 else 1.0


async def run_assistant(worker: Any, clock: Any, *, minutes: float, pixel_scale: float,
                        dec_deg: float | None, backlash: bool = True,
                        progress: AssistantProgress | None = None) -> AssistantFindings:
    """Run the guiding assistant on ``worker`` (a GuideWorker, not yet started).
    ``progress`` (optional) follows its phases.  The unguided frames are not guiding: the
    engine's guiding statistics are put aside meanwhile and given back after, so the
    unguided RMS never shows as (or mixes into) guiding RMS; the guide log's section
    for them says "guiding disabled".

    Raises AssistantError when calibration or the star fails."""
    if progress is None:
        progress = AssistantProgress()
    progress.minutes, progress.exposure_s = minutes, worker.settings.exposure_s
    progress.started = clock.now()
    steps: list[GuideStep] = []
    alerts: list[Alert] = []
    frame_evt = asyncio.Event()

    def collect(ev: Any) -> None:
        if isinstance(ev, GuideStep):
            steps.append(ev)
            frame_evt.set()
        elif isinstance(ev, Alert):
            alerts.append(ev)

    worker.subscribe(collect)
    engine = worker.engine
    old_drift, old_corr, old_stats = engine.settings.drift_time_s, worker.corrections, engine.stats
    worker.corrections = False
    engine.settings.drift_time_s = math.inf  # the star wanders on purpose
    engine.stats = GuideStats(pixel_scale=old_stats.pixel_scale, window_s=old_stats.window_s)
    try:
        return await _run(worker, clock, steps, alerts, frame_evt, minutes, pixel_scale, dec_deg,
                          backlash, progress)
    finally:
        engine.settings.drift_time_s = old_drift
        worker.corrections = old_corr
        engine.stats = old_stats
        progress.set_phase("done")
        if collect in worker._callbacks:
            worker._callbacks.remove(collect)


async def _run(worker: Any, clock: Any, steps: list[GuideStep], alerts: list[Alert],
               frame_evt: asyncio.Event, minutes: float, pixel_scale: float, dec_deg: float | None,
               backlash: bool, progress: AssistantProgress) -> AssistantFindings:
    if worker.engine.calibration is None:
        progress.set_phase("calibrating")
        await worker.calibrate(then_guide=True)
    else:
        await worker.start_guiding()
    deadline = clock.now() + 1800.0
    while worker.state != GuideState.GUIDING and clock.now() < deadline:
        if worker.engine.state == GuideState.LOOPING and worker.engine._pending is None:
            break
        await clock.sleep(1.0)
    if worker.state != GuideState.GUIDING:
        await worker.stop()
        why = next((a.message for a in reversed(alerts) if a.level == "critical"), "guiding did not start")
        raise AssistantError(f"the guiding assistant could not start: {why}")
    if worker.log is not None:
        worker.log.info(f"Guiding assistant started: {minutes:g} min unguided, then Dec backlash")
    steps.clear()
    progress.set_phase("watching", clock.now())
    await clock.sleep(minutes * 60.0)
    unguided = list(steps)
    t = np.array([s.t for s in unguided])
    ra = np.array([s.ra_px for s in unguided])
    dec = np.array([s.dec_px for s in unguided])
    cam = np.array([[s.dx, s.dy] for s in unguided]).reshape(-1, 2)
    cal = worker.engine.calibration
    axes = ((cal.ra_vx, cal.ra_vy), (cal.dec_vx, cal.dec_vy)) if cal is not None else None
    # The RA axis from the periodic error itself (None without a clear one): the backlash
    # legs run while the worm keeps moving the star along it.
    own = axes_from_periodic_error(t - t[0], cam, axes) if axes is not None and len(t) else None
    bl = None
    if backlash and measure_backlash is not None and cal is not None:
        e_dec = own[1] if own is not None else np.array([cal.dec_vx, cal.dec_vy]) / (cal.dec_rate or 1.0)
        progress.set_phase("backlash")
        bl = await _measure_backlash(worker, clock, steps, frame_evt, pixel_scale,
                                     ra_axis=own[0] if own is not None else None,
                                     drift=_dec_drift(t, cam, e_dec), progress=progress)
    progress.set_phase("analysing")
    try:
        findings = analyze_unguided(t, ra, dec, pixel_scale=pixel_scale, dec_deg=dec_deg,
                                    exposure_s=worker.settings.exposure_s, backlash=bl,
                                    camera_px=cam, axes=axes)
    except ValueError as exc:
        await worker.stop()
        raise AssistantError(f"the guiding assistant: {exc}") from None
    if backlash and measure_backlash is None:
        findings.advice.append("Dec backlash was not measured (this build has no backlash tool)")
    if worker.log is not None:
        for line in findings.lines():
            worker.log.info(line)
    await worker.stop()
    return findings


def _dec_drift(t: np.ndarray, cam: np.ndarray, e_dec: np.ndarray) -> tuple[float, float, float] | None:
    """The star's unguided drift along the Dec axis ``e_dec`` (a unit vector on the
    camera) as (vx, vy) px/s and its standard error (px/s): a robust line through the
    unguided frames' positions along it (times ``t`` s, positions ``cam`` (n, 2) px);
    None with too few frames."""
    from ..guiding.assistant import _robust_fit
    if len(t) < 10:
        return None
    tt = t - t.mean()
    y = cam @ e_dec
    coef, r, w = _robust_fit(np.column_stack([np.ones_like(tt), tt]), y)
    keep = w > 0
    sxx = float(tt[keep] @ tt[keep])
    if sxx <= 0:
        return None
    sigma = float(np.sqrt(r[keep] @ r[keep] / max(int(keep.sum()) - 2, 1)) / math.sqrt(sxx))
    return float(coef[1] * e_dec[0]), float(coef[1] * e_dec[1]), sigma


async def _next_position(steps: list[GuideStep], frame_evt: asyncio.Event, clock: Any,
                         frames: int = 2) -> tuple[float, float]:
    """The star after ``frames`` new frames (the first may have been exposed
    while the pulse ran)."""
    n = len(steps)
    while len(steps) < n + frames:
        frame_evt.clear()
        await clock.wait_for(frame_evt.wait(), 60.0)
    s = steps[-1]
    return s.x, s.y


async def _measure_backlash(worker: Any, clock: Any, steps: list[GuideStep], frame_evt: asyncio.Event,
                            pixel_scale: float, ra_axis: np.ndarray | None = None,
                            drift: tuple[float, float, float] | None = None,
                            progress: AssistantProgress | None = None) -> Any:
    """Dec backlash with a north and a south leg (PHD2's backlash tool), the play taken up
    northward first.  ``ra_axis``: the RA axis on the camera (a unit vector) when the
    periodic error showed it; the star's motion along it (the worm's, over the minutes
    the legs take: ±45″/240 s moved it tens of px) is taken out of the positions.
    ``drift``: the unguided Dec drift ((vx, vy) px/s, its standard error), fitted with
    the rate and the play over the legs' frame times (the polar drift read as 120-180 ms
    of backlash on a mount with none)."""
    cal = worker.engine.calibration
    rate = cal.dec_rate
    ms = int(min(max(1000.0 * BACKLASH_STEP_PX / rate, 50), 5000))
    u = np.array([cal.dec_vx, cal.dec_vy]) / rate  # star motion for a North pulse
    port = worker.port

    times: list[float] = []

    async def pulse(direction: str) -> tuple[float, float]:
        await clock.wait_for(port.pulse(direction, ms), ms / 1000.0 + 5.0)
        xy = await _next_position(steps, frame_evt, clock)
        times.append(steps[-1].t)
        if progress is not None:
            progress.pulses += 1
            progress.pulses_total = max(progress.pulses_total, progress.pulses)
        return xy

    start = np.array(await _next_position(steps, frame_evt, clock, 1))
    for _ in range(CLEAR_MAX_STEPS):  # take up the play northward
        p = np.array(await pulse("N"))
        if float((p - start) @ u) >= CLEAR_PX:
            break
    else:
        return None
    if progress is not None:
        progress.pulses_total = progress.pulses + 2 * BACKLASH_STEPS
    north = [p]
    n_t = [times[-1]]
    for _ in range(BACKLASH_STEPS):
        north.append(np.array(await pulse("N")))
        n_t.append(times[-1])
    south = [north[-1]]
    s_t = [n_t[-1]]
    for _ in range(BACKLASH_STEPS):
        south.append(np.array(await pulse("S")))
        s_t.append(times[-1])
    n_xy, s_xy = np.array(north), np.array(south)
    if ra_axis is not None:
        e = np.asarray(ra_axis, dtype=float)
        n_xy = n_xy - np.outer(n_xy @ e, e)
        s_xy = s_xy - np.outer(s_xy @ e, e)
    if drift is None:
        return measure_backlash(n_xy, ms, s_xy, ms, pixel_scale=pixel_scale)
    return measure_backlash(n_xy, ms, s_xy, ms, pixel_scale=pixel_scale, north_t=np.array(n_t),
                            south_t=np.array(s_t), drift=drift)
