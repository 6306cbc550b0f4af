"""Star, histogram and exposure report of one frame file, as a dict and as text."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .advice import RigLimits, advise
from .levels import BLACK_ESTIMATED
from .io import FrameReadError, read_frame
from .metrics import frame_metrics

CHANNEL_KEYS = ("clipped_black_pct", "saturated_pct", "median", "mode", "mean", "left_edge_visible")


def _clean(v: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    return v


def bias_level(path: str | Path) -> float:
    """The black level a bias (or dark) frame gives: the median of its pixels, in ADU.

    Raises :class:`FrameReadError` when the file cannot be read."""
    return float(np.median(read_frame(path).data))


def analyze_file(path: str | Path, *, ra_axis_angle: float | None = None, reference: dict | None = None,
                 kind: str | None = None, limits: RigLimits | None = None,
                 bias: tuple[float, str] | None = None) -> dict:
    """Metrics and advice for one file; ``{"file", "error", "reason"}`` when it cannot be read.

    ``kind`` (light, flat, dark, bias, darkflat) overrides what the file says:
    camera raw files do not record whether they are a flat or a dark.
    ``limits``: what the rig can do, so the advice stays within it.
    ``bias``: (black level in ADU, the bias file's name) for a file that records
    no black level of its own (see :func:`bias_level`)."""
    p = Path(path)
    try:
        frame = read_frame(p)
    except FrameReadError as exc:
        return {"file": str(p), "error": exc.detail, "reason": exc.reason}
    if kind:
        frame.kind = kind
    if bias is not None and frame.meta.get("black_level_source") == BLACK_ESTIMATED:
        frame.black_level = float(bias[0])
        frame.meta["black_level_source"] = f"bias {bias[1]}"
    try:
        m = frame_metrics(frame)
    except (ValueError, MemoryError) as exc:
        return {"file": str(p), "error": f"cannot measure frame ({exc})", "reason": "measure"}
    out: dict = {
        "file": str(p),
        "kind": m.get("kind"),
        "width": m.get("width"),
        "height": m.get("height"),
        "bayer": m.get("bayer"),
        "exposure": m.get("exposure"),
        "iso": m.get("iso"),
        "gain": m.get("gain"),
        "temperature": m.get("temperature"),
        "colour": m.get("colour"),
        "black_level": m.get("black_level"),
        "black_level_source": m.get("black_level_source"),
        "white_level": m.get("white_level"),
        "white_level_source": m.get("white_level_source"),
        "white_level_declared": m.get("white_level_declared"),
        "stars": m.get("stars", 0),
        "hfr": m.get("hfr"),
        "hfd": m.get("hfd"),
        "fwhm": m.get("fwhm"),
        "fwhm_arcsec": m.get("fwhm_arcsec"),
        "elongation": m.get("elongation"),
        "elongation_pa": m.get("elongation_pa"),
        "snr": m.get("snr"),
        "background": m.get("background"),
        "noise": m.get("noise"),
        "clipped_black_pct": m.get("clipped_black_pct"),
        "below_black_pct": m.get("below_black_pct"),
        "saturated_pct": m.get("saturated_pct"),
        "saturated_stars": m.get("saturated_stars"),
        "median": m.get("median"),
        "mode": m.get("mode"),
        "mean": m.get("mean"),
        "left_edge_visible": m.get("left_edge_visible"),
    }
    if m.get("channels"):
        out["channels"] = {name: {k: c[k] for k in CHANNEL_KEYS} for name, c in m["channels"].items()}
    out["advice"] = advise(m, reference=reference, ra_axis_angle=ra_axis_angle, limits=limits)
    return _clean(out)


def _num(v, fmt: str, unit: str = "") -> str:
    return "–" if v is None else format(v, fmt) + unit


def _edge(v) -> str:
    return "unknown" if v is None else ("visible" if v else "cut off")


def _levels(r: dict) -> str:
    """'black 500 (PEDESTAL)  white 4095 (clip found in the data; declared 65535)'."""
    src = r.get("black_level_source")
    black = _num(r.get("black_level"), ".0f")
    if src == BLACK_ESTIMATED:
        black = f"≤{black} (not recorded: {src})"
    elif src:
        black += f" ({src})"
    white = _num(r.get("white_level"), "g")
    if r.get("white_level_source") == "data":
        white += f" (clip found in the data; declared {_num(r.get('white_level_declared'), 'g')})"
    return f"  black {black}  white {white}"


def format_human(r: dict) -> str:
    lines = [r["file"]]
    desc = [f"{r['width']}×{r['height']}", r.get("kind") or "light"]
    if r.get("colour"):
        desc.append(f"colour {r['colour']}")
    if r.get("bayer"):
        desc.append(f"Bayer {r['bayer']}")
    if r.get("exposure"):
        desc.append(f"{r['exposure']:g} s")
    if r.get("iso"):
        desc.append(f"ISO {r['iso']}")
    if r.get("gain") is not None:
        desc.append(f"gain {r['gain']}")
    lines.append("  " + ", ".join(desc))
    lines.append(
        f"  stars {r['stars']}  HFR {_num(r['hfr'], '.2f')} px  FWHM {_num(r['fwhm'], '.2f')} px"
        + (f" ({r['fwhm_arcsec']:.1f}″)" if r.get("fwhm_arcsec") else "")
        + f"  elongation {_num(r['elongation'], '.2f')}"
        + (f" at {r['elongation_pa']:.0f}°" if r.get("elongation_pa") is not None else "")
    )
    lines.append(_levels(r))
    lines.append(
        f"  median {_num(r['median'], '.0f')}  mode {_num(r['mode'], '.0f')}"
        f"  clipped {_num(r['clipped_black_pct'], '.2f', '%')}  saturated {_num(r['saturated_pct'], '.2f', '%')}"
        f"  left edge {_edge(r.get('left_edge_visible'))}"
    )
    for name, c in (r.get("channels") or {}).items():
        lines.append(
            f"    {name:<2} median {c['median']:.0f}  clipped {c['clipped_black_pct']:.2f}%"
            f"  saturated {c['saturated_pct']:.2f}%  left edge {_edge(c['left_edge_visible'])}"
        )
    for a in r.get("advice") or []:
        lines.append(f"  → {a}")
    return "\n".join(lines)
