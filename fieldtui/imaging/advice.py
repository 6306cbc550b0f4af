"""Exposure assistant: plain advice, with numbers, from a test frame's metrics.

Input is the dict of :func:`fieldtui.imaging.metrics.frame_metrics`.
Rules:

- **Lights.** The sky's histogram must clear the black level without
  saturating: its faint (left) side recorded, nothing clipped, and the sky
  at least 6 "noise widths" (``left_width``, one sigma of the sky) above
  black. In electrons that is a sky of about 3 × the read noise, where
  read noise adds no more than ~15 % to the sky's own noise for a 2–3 e⁻
  sensor. (The older DSLR rule "peak at a quarter of the histogram",
  8 % of the range, asks ~40× the read noise squared at ISO 800 — an hour
  per sub at f/10 under a dark sky, and no less noise to show for it.)
  Signal above black grows in proportion to exposure time × ISO (or
  gain), so the factor is target / (median − black).
- **What the rig can do.** No exposure is advised beyond the longest sub
  it can take (:class:`RigLimits`, the config's ``[exposure]`` table,
  guided or not); the rest is asked of ISO/gain or binning, or stated as
  what the sky allows.
- **Black level.** Judged only against a black level the frame records
  (raw metadata, ``PEDESTAL``, ``BLKLEVEL``, overscan) or the camera set.
  When the black level was only estimated from the data the sky level is a
  lower bound and said so. Pixels piled at 0 with no black level recorded
  are a missing pedestal (or an offset too low), not under-exposure.
- **Flats.** Mean at 50 % of the range between black and white, nothing
  clipped at either end.
- **Darks, dark flats, biases.** Same ISO/gain (and, for darks, exposure
  and temperature within 2 °C) as the frames they calibrate; biases at
  the shortest exposure; no stars (a cap left off).
- **Trailing.** Stars elongated 1.3:1 or more: the angle, and which axis
  when the RA axis's angle on the sensor is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .levels import BLACK_ESTIMATED

ISO_STOPS = [100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 2000, 2500, 3200, 4000, 5000, 6400, 12800, 25600]
MAX_USEFUL_ISO = 6400

LIGHT_WIDTHS_TARGET = 6.0  # noise widths (left widths) of sky above black
LIGHT_MAX_CLIPPED_PCT = 0.5
LIGHT_MAX_LEVEL = 0.5  # sky above half the range: too bright
FLAT_TARGET = 0.5
FLAT_TOLERANCE = 0.1  # 40..60 % is fine
TRAIL_ELONGATION = 1.3
AXIS_TOLERANCE_DEG = 20.0
TEMP_TOLERANCE_C = 2.0
BIAS_MAX_EXPOSURE = 0.01


def nice_seconds(t: float) -> float:
    """Round an exposure time to what one would type: 0.013, 1.3, 15, 180, 300 s."""
    if t <= 0:
        return 0.0
    if t < 10:
        return float(f"{t:.2g}")
    if t < 60:
        return float(round(t / 5) * 5)
    if t < 600:
        return float(round(t / 10) * 10)
    return float(round(t / 30) * 30)


def _fmt_s(t: float) -> str:
    t = nice_seconds(t)
    return f"{t:g} s"


def nice_iso(iso: float) -> int:
    """The nearest standard ISO at or above ``iso``."""
    for stop in ISO_STOPS:
        if stop >= iso * 0.97:
            return stop
    return ISO_STOPS[-1]


@dataclass(frozen=True)
class RigLimits:
    """What the rig can do: the advice never asks for more.

    ``longest_sub_s``: the longest light sub with guiding (seconds);
    ``longest_unguided_s``: on tracking alone; ``guided``: whether the
    lights are guided. ``max_iso``: the highest ISO worth using.
    Built from the config's ``[exposure]`` table by :meth:`from_config`.
    """

    longest_sub_s: float = 600.0
    longest_unguided_s: float = 60.0
    guided: bool = True
    max_iso: int = MAX_USEFUL_ISO

    @property
    def longest(self) -> float:
        return self.longest_sub_s if self.guided else self.longest_unguided_s

    @classmethod
    def from_config(cls, cfg) -> "RigLimits":
        e = cfg.exposure
        return cls(longest_sub_s=e.longest_sub_s, longest_unguided_s=e.longest_unguided_s, guided=e.guided)


def _range(m: dict) -> float:
    white = m.get("white_level")
    black = m.get("black_level") or 0.0
    if white is None or not math.isfinite(white) or white <= black:
        return float("nan")
    return float(white - black)


def _raise_by(m: dict, factor: float, limits: RigLimits | None = None, at_least: bool = False) -> str:
    """'raise exposure to about 180 s or ISO to 1600' for a needed signal factor,
    within the rig's longest sub; what is left over goes to ISO/gain and binning."""
    lim = limits or RigLimits()
    exp = m.get("exposure") or 0.0
    iso = m.get("iso")
    about = "at least" if at_least else "about"
    longest = lim.longest
    how = "guided" if lim.guided else "unguided"
    if exp <= 0:
        return f"raise exposure {about} {factor:.1f}× (up to the longest sub, {longest:g} s {how})"
    need = exp * factor
    if need <= longest * 1.05:
        parts = [f"exposure to {about} {_fmt_s(need)}"]
        if iso:
            new_iso = nice_iso(iso * factor)
            if new_iso != iso and new_iso <= lim.max_iso:
                parts.append(f"ISO to {new_iso}")
        elif m.get("gain") is not None:
            parts.append("the gain")
        return "raise " + " or ".join(parts)
    # beyond the rig: the longest sub, and the rest from the other levers
    rest = need / longest
    if longest > exp * 1.05:
        sub = f"raise exposure to {_fmt_s(longest)}, the longest {how} sub"
    elif longest < exp * 0.95:
        sub = f"shorten subs to {_fmt_s(longest)}, the longest {how} sub"
    else:
        sub = f"keep {_fmt_s(exp)} subs, the longest {how}"
    if iso:
        new_iso = nice_iso(iso * rest)
        if new_iso <= lim.max_iso and new_iso != iso:
            return f"{sub}, and ISO to {new_iso}"
        if iso < lim.max_iso:
            sub += f", ISO {lim.max_iso}"
            rest *= iso / lim.max_iso
    elif m.get("gain") is not None:
        sub += ", raise the gain"
    if rest < 1.5:
        return sub
    return (f"{sub}; the sky would still be {rest:.1f}× short: bin 2×2, or take more subs "
            f"(a sky this dark at this focal ratio leaves each sub read-noise limited)")


def _lower_by(m: dict, factor: float) -> str:
    exp = m.get("exposure") or 0.0
    iso = m.get("iso")
    parts = []
    if exp > 0:
        parts.append(f"exposure to about {_fmt_s(exp * factor)}")
    if iso:
        lower = [s for s in ISO_STOPS if s <= iso * factor * 1.03]
        if lower and lower[-1] != iso:
            parts.append(f"ISO to {lower[-1]}")
    if not parts:
        return f"lower exposure to about {factor:.2f}×"
    return "lower " + " or ".join(parts)


def _offset_hint(m: dict) -> str:
    off = m.get("offset_setting")
    return f"raise the camera's offset (now {off:g})" if off is not None else "raise the camera's offset"


def light_advice(m: dict, limits: RigLimits | None = None) -> list[str]:
    """Exposure lines for a light (or test) frame; see the module's rules."""
    out: list[str] = []
    black = m.get("black_level") or 0.0
    rng = _range(m)
    median = m.get("median")
    if median is None:
        return out
    estimated = m.get("black_level_source") == BLACK_ESTIMATED
    clipped = m.get("clipped_black_pct") or 0.0
    zeros = m.get("zero_pct") or 0.0
    saturated = m.get("saturated_pct") or 0.0
    width = m.get("left_width") or 1.0
    target = LIGHT_WIDTHS_TARGET * width
    level = median - black
    sat = f", {saturated:.2f}% saturated" if saturated >= 0.01 else ""

    if zeros >= LIGHT_MAX_CLIPPED_PCT and (estimated or (black <= 0 and m.get("black_level_source") != "raw metadata")):
        # zeros where no black level is recorded: the zero was cut, not reached by a dim sky
        if m.get("calibrated"):
            cause = ("calibrated without a pedestal (or with a dark that does not match): "
                     "calibrate with an output pedestal or to 32-bit float")
        else:
            cause = (f"no pedestal or offset keeps the sky's faint side above 0: if calibrated, calibrate with "
                     f"an output pedestal or to 32-bit float; if straight from the camera, {_offset_hint(m)}")
        out.append(f"{zeros:.1f}% of pixels are 0, {cause}; a longer exposure would not bring them back")
        if saturated > 1.0:
            out.append(f"{saturated:.1f}% of pixels saturated: {_lower_by(m, 0.5)}")
        return out

    if estimated:
        # the black level is an upper bound from the darkest pixels: the sky level a lower bound
        note = f"black level not recorded (estimated from the data: at most {black:.0f})"
        if math.isfinite(rng) and level > LIGHT_MAX_LEVEL * rng:
            out.append(f"sky above {100 * level / rng:.0f}% of the range{sat}: {_lower_by(m, 0.25 * rng / level)}; {note}")
        elif saturated > 1.0:
            out.append(f"{saturated:.1f}% of pixels saturated: {_lower_by(m, 0.5)}; {note}")
        elif level >= target:
            out.append(f"exposure OK: sky at least {level:.0f} above black ({level / width:.0f} noise widths){sat}; {note}")
        else:
            out.append(f"{note}: the sky is at least {level:.0f} above it, the exposure cannot be judged — "
                       f"give a bias frame from this camera at the same gain and offset (analyze --bias FILE)")
        return out

    if level <= 0:
        # more than half at or below black: the mean of what is left is an upper bound
        level = max((m.get("mean") or black) - black, 0.0)
    under = clipped >= LIGHT_MAX_CLIPPED_PCT or not m.get("left_edge_visible", True) or level < target
    if under:
        if level <= 0:
            factor, at_least = 16.0, True
        else:
            factor, at_least = min(32.0, max(1.25, target / level)), target / level > 32
        why = (f"{clipped:.1f}% of pixels clipped at black" if clipped >= LIGHT_MAX_CLIPPED_PCT
               else f"sky {level:.0f} above black, {level / width:.1f} noise widths (aim for {LIGHT_WIDTHS_TARGET:g})")
        out.append(f"{why}: {_raise_by(m, factor, limits, at_least)}")
    elif math.isfinite(rng) and level > LIGHT_MAX_LEVEL * rng:
        factor = 0.25 * rng / level
        out.append(f"sky at {100 * level / rng:.0f}% of the range{sat}: {_lower_by(m, factor)} "
                   f"(a bright sky: moon or light pollution; a narrowband filter helps)")
    elif saturated > 1.0:
        out.append(f"{saturated:.1f}% of pixels saturated: {_lower_by(m, 0.5)}")
    else:
        frac = f", {100 * level / rng:.1f}% of the range" if math.isfinite(rng) else ""
        out.append(
            f"exposure OK: sky {level:.0f} above black ({level / width:.0f} noise widths){frac}, "
            f"{clipped:.1f}% clipped, {saturated:.2f}% saturated"
        )
    return out


def flat_advice(m: dict) -> list[str]:
    out: list[str] = []
    if m.get("black_level_source") == BLACK_ESTIMATED:
        # the darkest pixels of a flat are the flat itself, not black: measure from 0
        # (a camera's offset is a few per cent of the range at most)
        m = {**m, "black_level": 0.0}
    black = m.get("black_level") or 0.0
    rng = _range(m)
    mean = m.get("mean")
    if mean is None or not math.isfinite(rng):
        return out
    level = max(mean - black, 0.0)
    frac = level / rng
    clipped = m.get("clipped_black_pct") or 0.0
    saturated = m.get("saturated_pct") or 0.0
    if level <= 0:
        out.append(f"flat is black (mean at the black level): {_raise_by(m, 16.0, at_least=True)}")
        return out
    factor = FLAT_TARGET * rng / level
    if abs(frac - FLAT_TARGET) > FLAT_TOLERANCE or saturated > 0.01:
        verb = _raise_by(m, factor) if factor > 1 else _lower_by(m, factor)
        out.append(f"flat mean at {100 * frac:.0f}% of the range (aim for 50%): {verb}")
    else:
        out.append(f"flat OK: mean at {100 * frac:.0f}% of the range")
    if saturated > 0.01:
        out.append(f"{saturated:.2f}% of pixels saturated: a saturated flat cannot correct vignetting or dust")
    if clipped > 0.01:
        out.append(f"{clipped:.2f}% of pixels clipped at black: light is too uneven or too dim")
    chans = m.get("channels") or {}
    for name, c in chans.items():
        if math.isfinite(rng) and (c.get("mean", 0) - black) > 0.85 * rng:
            out.append(f"channel {name} at {100 * (c['mean'] - black) / rng:.0f}% of the range: close to saturating")
    return out


def _close(a, b, rel=0.01) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-9)


def calibration_advice(m: dict, kind: str, reference: dict | None) -> list[str]:
    out: list[str] = []
    ref = reference or {}
    exp = m.get("exposure")
    if kind == "bias":
        if exp and exp > BIAS_MAX_EXPOSURE:
            out.append(f"bias exposure {exp:g} s: use the camera's shortest exposure (1/4000 s or so)")
    elif ref.get("exposure") and exp is not None and not _close(exp, ref["exposure"]):
        what = "flats" if kind == "darkflat" else "lights"
        out.append(f"{kind} exposure {exp:g} s does not match the {what}' {ref['exposure']:g} s: use {ref['exposure']:g} s")
    if ref.get("iso") and m.get("iso") and m["iso"] != ref["iso"]:
        out.append(f"ISO {m['iso']} does not match the reference ISO {ref['iso']}: use ISO {ref['iso']}")
    if ref.get("gain") is not None and m.get("gain") is not None and m["gain"] != ref["gain"]:
        out.append(f"gain {m['gain']} does not match the reference gain {ref['gain']}: use gain {ref['gain']}")
    if kind in ("dark", "darkflat") and ref.get("temperature") is not None and m.get("temperature") is not None:
        dt = m["temperature"] - ref["temperature"]
        if abs(dt) > TEMP_TOLERANCE_C:
            ratio = 2 ** (abs(dt) / 6.0)
            out.append(
                f"sensor at {m['temperature']:.1f} °C, the reference at {ref['temperature']:.1f} °C: "
                f"dark current differs about {ratio:.1f}×; take darks within {TEMP_TOLERANCE_C:g} °C"
            )
    if (m.get("stars") or 0) >= 5:
        out.append(f"{m['stars']} stars in a {kind} frame: the cap is off or light leaks in (cover the viewfinder)")
    if not out:
        out.append(f"{kind} OK" + (": matches the reference settings" if ref else ""))
    return out


def _axis_name(pa: float, ra_axis_angle: float) -> str | None:
    d = abs((pa - ra_axis_angle + 90.0) % 180.0 - 90.0)
    if d <= AXIS_TOLERANCE_DEG:
        return "ra"
    if abs(d - 90.0) <= AXIS_TOLERANCE_DEG:
        return "dec"
    return None


def trailing_advice(m: dict, ra_axis_angle: float | None = None) -> list[str]:
    e = m.get("elongation")
    pa = m.get("elongation_pa")
    if e is None or pa is None or (m.get("stars_measured") or 0) < 3 or e < TRAIL_ELONGATION:
        return []
    text = f"stars elongated {e:.1f}:1 along PA {pa:.0f}°"
    if ra_axis_angle is None:
        return [text + ": check balance, polar alignment or guiding"]
    axis = _axis_name(pa, ra_axis_angle)
    if axis == "ra":
        return [text + ", the RA axis: check balance, polar alignment or guiding"]
    if axis == "dec":
        return [text + ", the Dec axis: check polar alignment, Dec backlash or guiding"]
    return [text + ", along neither axis: check for wind, flexure, a dragging cable or tilt"]


def advise(
    m: dict,
    *,
    kind: str | None = None,
    reference: dict | None = None,
    ra_axis_angle: float | None = None,
    limits: RigLimits | None = None,
) -> list[str]:
    """Advice lines for one frame's metrics.

    ``kind`` overrides ``m["kind"]`` (light, flat, dark, bias, darkflat).
    ``reference`` holds the exposure/iso/gain/temperature of the frames a
    calibration frame must match. ``ra_axis_angle`` is the angle of the RA
    axis on the sensor (degrees, from +x toward +y), known after guider
    calibration. ``limits``: what the rig can do (the longest sub, guided
    or not); the defaults of :class:`RigLimits` when None.
    """
    if m.get("empty"):
        return ["empty frame: every pixel is 0, no image data (check the camera, card and cable)"]
    k = (kind or m.get("kind") or "light").lower()
    if k in ("light", "test", "focus", "guide"):
        return light_advice(m, limits) + trailing_advice(m, ra_axis_angle)
    if k == "flat":
        return flat_advice(m)
    if k in ("dark", "bias", "darkflat"):
        return calibration_advice(m, k, reference)
    return []
