"""Per-axis guide algorithms: how far to move, given how far the star is off.

Inputs and outputs are in pixels along one mount axis: the input is the
star's displacement from the lock position, the output the correction to
apply (same sign: the engine turns it into a pulse that moves the star back).
The algorithms keep a little history, so one instance serves one axis.
"""

from __future__ import annotations

from collections import deque


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


class GuideAlgorithm:
    name = "None"
    min_move: float = 0.0
    uses_time = False  # True: result() wants the frame time (t=...)
    # Seconds from this frame's middle to the next one's, when the engine knows
    # it differs from the cycles seen so far (exposures that change); else None.
    next_cycle_s: float | None = None

    def result(self, distance: float) -> float:
        return distance

    def reset(self) -> None:
        return None

    def applied(self, requested: float, actual: float) -> None:
        """The engine sent ``actual`` px instead of the ``requested`` output."""
        return None

    def lock_moved(self, delta: float) -> None:
        """The lock position moved by ``delta`` px along this axis (a dither)."""
        return None

    def hold_comparison(self, on: bool) -> None:
        """While on (settling after a dither, recovering from a lost star), an
        algorithm that proves itself against a replayed classic guider scores
        neither of them."""
        return None

    def feed_forward(self) -> float:
        """Of the last :meth:`result`, the part (px) predicted from the mount's own
        error rather than from the displacement (a tolerance must not hold it back)."""
        return 0.0

    def summary(self) -> str:
        return f"Minimum move = {self.min_move:.3f}"


class Hysteresis(GuideAlgorithm):
    """Blend of this error and the last correction, scaled by aggressiveness.

    ``hysteresis`` (0…1) is how much of the previous correction carries
    over: it smooths seeing; ``aggression`` (0…1+) the fraction of the error
    corrected at once; errors under ``min_move`` are left alone (seeing).
    """

    name = "Hysteresis"

    def __init__(self, hysteresis: float = 0.1, aggression: float = 0.7, min_move: float = 0.2) -> None:
        self.hysteresis = hysteresis
        self.aggression = aggression
        self.min_move = min_move
        self._last = 0.0

    def result(self, distance: float) -> float:
        out = ((1.0 - self.hysteresis) * distance + self.hysteresis * self._last) * self.aggression
        if abs(distance) < self.min_move:
            out = 0.0
        self._last = out
        return out

    def reset(self) -> None:
        self._last = 0.0

    def summary(self) -> str:
        return (f"Hysteresis = {self.hysteresis:.3f}, Aggression = {self.aggression:.3f}, "
                f"Minimum move = {self.min_move:.3f}")


class ResistSwitch(GuideAlgorithm):
    """Dec: push in one direction only and resist switching it.

    Dec errors are mostly a steady drift plus seeing; reversing the Dec
    motor costs backlash.  The axis corrects only toward ``side``; it
    switches when most of the recent history points the other way and the
    error is growing, or at once on a large, confirmed deflection (a dither
    or a bump), ``fast_switch``.
    """

    name = "Resist Switch"

    def __init__(self, min_move: float = 0.2, aggression: float = 1.0, fast_switch: bool = True,
                 history: int = 10) -> None:
        self.min_move = min_move
        self.aggression = aggression
        self.fast_switch = fast_switch
        self._hist: deque[float] = deque([0.0] * history, maxlen=history)
        self.side = 0

    def reset(self) -> None:
        n = self._hist.maxlen or 10
        self._hist = deque([0.0] * n, maxlen=n)
        self.side = 0

    def result(self, distance: float) -> float:
        prev = self._hist[-1]
        self._hist.append(distance)
        if abs(distance) < self.min_move:
            return 0.0
        big = 3.0 * self.min_move
        switched = False
        if (self.fast_switch and _sign(distance) != self.side and abs(distance) > big
                and abs(prev) > big and _sign(prev) == _sign(distance)):
            self.side = _sign(distance)
            switched = True
        votes = sum(_sign(h) for h in self._hist if abs(h) > self.min_move)
        if not switched and (self.side == 0 or _sign(votes) == -self.side):
            if abs(votes) < 3:
                return 0.0
            hist = list(self._hist)
            oldest = sum(hist[:3])
            newest = sum(hist[-3:])
            if abs(newest) <= abs(oldest):
                return 0.0
            self.side = _sign(votes)
        if self.side != _sign(distance):
            return 0.0  # overshot: let it come back on its own
        return distance * self.aggression

    def summary(self) -> str:
        return (f"Minimum move = {self.min_move:.3f} Aggression = {self.aggression * 100:.0f}% "
                f"FastSwitch = {'enabled' if self.fast_switch else 'disabled'}")


def make_algorithm(name: str, axis: str = "ra", **kw: float) -> GuideAlgorithm:
    key = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    if key == "predictive" and axis == "dec":
        from .predictive import PredictiveDec
        return PredictiveDec(**{k: kw[k] for k in ("min_move", "aggression", "drift_s", "drift_gain",
                                                    "classic_min_move", "classic_aggression")
                                if k in kw})
    if key == "hysteresis":
        return Hysteresis(**{k: kw[k] for k in ("hysteresis", "aggression", "min_move") if k in kw})
    if key == "predictive":
        from .predictive import Predictive
        # No minimum move: the small feedback gain averages seeing instead.
        return Predictive(**{k: kw[k] for k in ("aggression", "prediction_gain", "trend_s",
                                                 "harmonics", "period_s", "classic_hysteresis",
                                                 "classic_aggression", "classic_min_move") if k in kw})
    if key == "resistswitch":
        return ResistSwitch(**{k: kw[k] for k in ("min_move", "aggression") if k in kw})
    if key in ("none", "off"):
        return GuideAlgorithm()
    raise ValueError(f"unknown guide algorithm {name!r} (hysteresis, predictive, resist_switch, none)")
