"""How far a calibration or a settle after a dither has got, and about how long is left.

Pure bookkeeping on the engine's events (no clock of its own: times are the
events' ``t``), so the service can tell a client "about 1:10 left" and the
numbers can be checked by hand.

Calibration (:class:`CalibrationProgress`): the calibrator moves the star
West until it is ``target_px`` away, East back the same number of steps,
North through the Dec backlash until it moves ``backlash_px``, North until
``target_px`` again, and South back the same number of steps (PHD2's
sequence). A leg still measuring is expected to end after
``target / (distance / step)`` steps (the distance grows linearly with the
steps); a leg not begun yet is expected to take as many steps as its
mirror (East = West, South = North) or, before that is known, ``steps``
(what the step length is sized for). Backlash is counted as ``backlash_steps``
until it is over. The time left is the steps left times the mean time a step
took so far.

Settling (:class:`SettleProgress`): settled once the star stays within
``settle_px`` of the lock position for ``settle_time_s``; given up at
``settle_timeout_s`` after the dither. While within, what is left is the rest
of ``settle_time_s``; while outside and the distance shrinks, the time until
it reaches ``settle_px`` on the exponential trend of the last frames
(guiding corrections remove a share of the error each frame), plus
``settle_time_s``; never beyond the timeout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def _steps_to_reach(step: int, dist: float, target: float, fallback: int) -> int:
    """Steps a leg needs to move ``target`` px when ``step`` steps moved it ``dist`` px."""
    if step < 1 or dist <= 0.0:
        return max(fallback, step)
    return max(step, math.ceil(target / (dist / step)))


@dataclass
class CalibrationProgress:
    """Steps done and expected of a calibration, from its CalibrationStep events.

    ``target_px``, ``steps``: the calibration settings (``calibration_px``,
    ``calibration_steps``); ``backlash_steps``: steps counted for clearing
    the Dec backlash before it is over."""

    target_px: float = 25.0
    steps: int = 12
    backlash_steps: int = 2
    started: float | None = None
    leg: str = ""
    step: int = 0
    dist: float = 0.0
    done: int = 0             # steps taken (every leg)
    last_t: float | None = None
    _legs: dict[str, int] = field(default_factory=dict)  # steps each finished leg took

    def start(self, t: float) -> None:
        self.started, self.last_t = t, t
        self.leg, self.step, self.dist, self.done = "West", 0, 0.0, 0
        self._legs = {}

    def on_step(self, t: float, leg: str, step: int, dist: float) -> None:
        """A CalibrationStep event: the star ``dist`` px from where ``leg`` began after ``step`` steps."""
        if self.started is None:
            self.start(t)
        if leg != self.leg:
            self._legs[self.leg] = self.step
            self.leg = leg
        self.step, self.dist, self.last_t = step, dist, t
        if step > 0:
            self.done += 1

    def expected(self) -> dict[str, int]:
        """Steps expected for each leg (West, East, Backlash, North, South)."""
        legs = dict(self._legs)
        cur = self.leg or "West"
        if cur in ("West", "North"):
            legs[cur] = _steps_to_reach(self.step, self.dist, self.target_px, self.steps)
        elif cur == "Backlash":
            legs[cur] = max(self.step, self.backlash_steps)
        else:
            legs[cur] = max(self.step, legs.get("West" if cur == "East" else "North", self.steps))
        west = legs.setdefault("West", self.steps)
        legs.setdefault("East", west)
        legs.setdefault("Backlash", self.backlash_steps)
        north = legs.setdefault("North", self.steps)
        legs.setdefault("South", north)
        return legs

    def steps_left(self) -> int:
        legs = self.expected()
        return max(0, sum(legs.values()) - self.done)

    def left_s(self) -> float | None:
        """Seconds left at the last step's time: steps left × mean seconds per step so far
        (None before the first step)."""
        if self.started is None or self.last_t is None or self.done < 1:
            return None
        per_step = (self.last_t - self.started) / self.done
        return self.steps_left() * per_step

    def fraction(self) -> float:
        total = sum(self.expected().values())
        return min(1.0, self.done / total) if total else 0.0


@dataclass
class SettleProgress:
    """A settle after a dither, from the distances of its guide frames to the lock position."""

    settle_px: float = 1.5
    settle_time_s: float = 10.0
    timeout_s: float = 40.0
    dithered: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (t, distance px)
    within_since: float | None = None

    def start(self, t: float) -> None:
        self.dithered, self.samples, self.within_since = t, [], None

    def on_frame(self, t: float, dist: float) -> None:
        if self.dithered is None:
            self.start(t)
        self.samples = (self.samples + [(t, dist)])[-8:]
        if dist <= self.settle_px:
            if self.within_since is None:
                self.within_since = t
        else:
            self.within_since = None

    @property
    def last_t(self) -> float | None:
        return self.samples[-1][0] if self.samples else self.dithered

    def left_s(self) -> float | None:
        """Seconds left at the last frame's time (None before the dither)."""
        if self.dithered is None:
            return None
        t = self.last_t or self.dithered
        cap = max(0.0, self.dithered + self.timeout_s - t)
        if self.within_since is not None:
            return min(cap, max(0.0, self.settle_time_s - (t - self.within_since)))
        pts = [(ti, math.log(d)) for ti, d in self.samples[-5:] if d > 0]
        if len(pts) >= 2:
            n = len(pts)
            tm = sum(p[0] for p in pts) / n
            ym = sum(p[1] for p in pts) / n
            stt = sum((p[0] - tm) ** 2 for p in pts)
            slope = sum((p[0] - tm) * (p[1] - ym) for p in pts) / stt if stt > 0 else 0.0
            if slope < 0:  # shrinking: when does the trend reach settle_px?
                reach = (math.log(self.settle_px) - pts[-1][1]) / slope
                return min(cap, max(0.0, reach) + self.settle_time_s)
        return cap
