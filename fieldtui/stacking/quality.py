"""Per-frame quality (the field guide's Plot panel) and the selection of frames to stack."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..imaging.stars import background, bayer_star_sizes, bin_bayer, detect_stars, windowed_centroids


@dataclass
class FrameQuality:
    """Quality of one calibrated frame, in sensor pixels and ADU.

    ``fwhm`` median FWHM of the profile-fitted stars (sensor px, measured as
    ``fieldtui analyze`` measures the frame: on a Bayer mosaic, on its green
    pixels), ``roundness`` median minor/major axis ratio (1 = round), ``stars`` number detected,
    ``background`` sky level and ``noise`` its robust rms (ADU). ``xy`` the
    star positions ``(n, 2)``, brightest first (sensor pixels), as detected (matching
    uses them); ``xy_fine`` the same stars' windowed centroids (:func:`windowed_positions`,
    the transform's fit uses them) and ``snr`` their signal-to-noise ratios ``(n,)``
    (None when not measured).
    """

    fwhm: float
    roundness: float
    stars: int
    background: float
    noise: float
    xy: np.ndarray
    xy_fine: np.ndarray | None = None
    snr: np.ndarray | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("xy")
        d.pop("snr")
        d.pop("xy_fine")
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}


def _finite(data: np.ndarray) -> np.ndarray:
    """``data`` as float32, non-finite values replaced by 0 (a copy only when needed)."""
    a = np.asarray(data, np.float32)
    if not np.isfinite(a.sum()):  # a copy only when there is something to replace
        a = np.nan_to_num(a)
    return a


def luminance(data: np.ndarray, bayer: str | None) -> tuple[np.ndarray, float, float]:
    """The plane stars are measured on, and the factor and offset taking its
    coordinates to sensor pixels: a Bayer mosaic's 2×2 super-pixels (×2, +0.5)."""
    return _plane(_finite(data), bayer)


def _plane(a: np.ndarray, bayer: str | None) -> tuple[np.ndarray, float, float]:
    """:func:`luminance` of a float32 frame already made finite."""
    if bayer:
        return bin_bayer(a), 2.0, 0.5
    return a, 1.0, 0.0


def measure(data: np.ndarray, bayer: str | None, *, max_stars: int = 300, max_fit: int = 60,
            white_level: float | None = None) -> FrameQuality:
    """Measure a calibrated frame ``(H, W)`` (raw layout; ``bayer`` its CFA pattern, None for mono).

    Stars are found on :func:`luminance` (a Bayer mosaic's 2×2 super-pixels), up to
    ``max_stars`` of them for registration, and up to ``max_fit`` of the brightest that
    deserve trust are profile-fitted (:func:`fieldtui.imaging.stars.detect_stars`). The
    frame's FWHM and roundness are those of ``fieldtui analyze``, in sensor pixels: on a
    Bayer frame, the trusted stars are fitted again on the full-resolution green pixels
    (:func:`fieldtui.imaging.stars.bayer_star_sizes`, the function
    :func:`fieldtui.imaging.metrics.measure_frame_stars` uses), leaving out stars whose peak
    reaches 0.8 of ``white_level`` (the raw frames' clip level; calibration moves it by the
    dark's level, a few per cent). The super-pixels' own fit, twice its FWHM, read
    2.26–2.82 px on the real Seestar M94 frames, 0.15–0.44 px (6–19 %) over the testdata
    README's independent reference (2.09–2.55 px, green pixels) and 0.29–0.56 px over
    ``analyze`` and the Focus screen, so a ``--max-fwhm`` taken from them left out every
    colour frame; the green pixels read 1.95–2.38 px there (5–7 % under the reference, as
    ``analyze``), at 7–10 ms more per 4.3 MP frame (60 fits). Without a trusted star, the
    super-pixels' figures (as ``analyze``). Mono frames: the fit on the frame itself
    (``white_level`` unused). The windowed centroids
    (:func:`windowed_positions`) stay on the plane the stars were found on, with the window
    from that plane's FWHM (the one their width was chosen on), so registration is as before.

    Raises ``ValueError`` for an array that is not 2-D.
    """
    data = _finite(data)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D frame, got shape {data.shape}")
    lum, k, off = _plane(data, bayer)
    level, rms = background(lum)
    stars = detect_stars(lum, max_stars=max_stars, max_fit=max_fit, saturation=None,
                         background_map_box=64 if lum.size > 2_000_000 else None)
    fitted = [s for s in stars if s.fitted and not s.saturated]
    use = fitted or stars
    plane_fwhm = float(np.median([s.fwhm for s in use])) if use else math.nan  # pixels of lum
    fwhm = plane_fwhm * k
    rnd = float(np.median([1.0 / max(s.elongation, 1.0) for s in use])) if use else math.nan
    if bayer and fitted:
        sized = bayer_star_sizes(data, [s.scaled(k, off) for s in stars], bayer,
                                 white_level=white_level)
        green = [s for s in sized if s.fitted and not s.saturated]
        if green:
            fwhm = float(np.median([s.fwhm for s in green]))
            rnd = float(np.median([1.0 / max(s.elongation, 1.0) for s in green]))
    xy = np.array([(s.x, s.y) for s in stars], float).reshape(-1, 2)
    fine = windowed_positions(lum, level, xy, plane_fwhm) if len(xy) else xy
    xy, fine = xy * k + off, fine * k + off
    snr = np.array([s.snr for s in stars], float)
    # a super-pixel sums 4 pixels: noise and level per sensor pixel
    div = 4.0 if bayer else 1.0
    return FrameQuality(fwhm=fwhm, roundness=rnd, stars=len(stars), background=level / div,
                        noise=rms / (2.0 if bayer else 1.0), xy=xy, xy_fine=fine, snr=snr)


def windowed_positions(image: np.ndarray, level: float, xy: np.ndarray, fwhm: float) -> np.ndarray:
    """Star positions ``(n, 2)`` (pixels of ``image``, ``(H, W)``) refined to windowed
    centroids: SExtractor's XWIN/YWIN, the centroid under a Gaussian
    window iterated on the image minus the sky ``level``, far less scattered than
    isophotal barycentres for faint stars (Bertin, SExtractor manual, "Windowed
    positional parameters"; :func:`windowed_centroids`). The window is twice the stars' ``fwhm`` (σ = FWHM / 1.1774):
    measured by registering with :func:`.register.match_stars` (SNR-weighted), against the
    stacking benchmark's known transforms (rms over the frame, mono / colour set) and by
    the residual rms of the Seestar M94 test frames (real, Bayer, undersampled stars):
    isophotal 0.0080 / 0.0138 px, 0.34–0.45 px; window of 1× FWHM 0.0041 / 0.0059 px but
    0.76–0.89 px on the real frames; 1.5× 0.0038 / 0.0047 px, 0.34–0.47 px; 2× 0.0044 /
    0.0056 px, 0.31–0.45 px; 3× 0.0068 / 0.0088 px. A position the window cannot refine
    (its window leaves the image, it does not converge to a finite point, or it moved more
    than 1.5 px: a blend) is kept."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    if not math.isfinite(fwhm) or fwhm <= 0 or not len(xy):
        return xy
    return windowed_centroids(image, level, xy, fwhm / 1.1774)


def select(qualities: dict[str, FrameQuality], *, max_fwhm: float | None = None, fwhm_sigma: float | None = None,
           min_roundness: float | None = None, min_star_fraction: float | None = 0.3,
           keep_best: float | None = None) -> dict[str, str]:
    """Frames to leave out, with the reason (``{name: reason}``).

    ``max_fwhm`` an absolute FWHM limit (px); ``fwhm_sigma`` rejects FWHM
    more than that many robust σ above the median; ``min_roundness`` a
    minor/major axis ratio; ``min_star_fraction`` rejects frames with fewer
    stars than that fraction of the median count (clouds); ``keep_best``
    (0–1) keeps only that fraction of the frames, best FWHM first.
    """
    out: dict[str, str] = {}
    names = list(qualities)
    if not names:
        return out
    fw = np.array([qualities[n].fwhm for n in names], float)
    st = np.array([qualities[n].stars for n in names], float)
    med_st = float(np.median(st))
    good = np.isfinite(fw)
    med = float(np.median(fw[good])) if good.any() else math.nan
    sig = float(1.4826 * np.median(np.abs(fw[good] - med))) if good.any() else math.nan
    for i, n in enumerate(names):
        q = qualities[n]
        if min_star_fraction is not None and q.stars < min_star_fraction * med_st:
            out[n] = f"only {q.stars} stars (median {med_st:.0f}): clouds or a trail?"
        elif not math.isfinite(q.fwhm):
            out[n] = "no star could be measured"
        elif max_fwhm is not None and q.fwhm > max_fwhm:
            out[n] = f"FWHM {q.fwhm:.2f} px above the limit {max_fwhm:g}"
        elif fwhm_sigma is not None and sig > 0 and q.fwhm > med + fwhm_sigma * sig:
            out[n] = f"FWHM {q.fwhm:.2f} px, {(q.fwhm - med) / sig:.1f} σ above the median {med:.2f}"
        elif min_roundness is not None and q.roundness < min_roundness:
            out[n] = f"roundness {q.roundness:.2f} below {min_roundness:g} (trailed stars)"
    if keep_best is not None and 0 < keep_best < 1:
        left = [n for n in names if n not in out]
        left.sort(key=lambda n: qualities[n].fwhm)
        keep = max(1, int(math.ceil(keep_best * len(left))))
        for n in left[keep:]:
            out[n] = f"FWHM {qualities[n].fwhm:.2f} px: not among the best {keep_best:.0%}"
    return out


RESAMPLED_NOISE_POWER = 0.4


def weight(q: FrameQuality, scale: float, resampled: float = 1.0) -> float:
    """Stacking weight of a frame: inverse variance of its normalised noise
    (``scale`` is the normalisation factor applied to it), divided by the
    fraction of per-pixel noise variance its resampling keeps (``resampled``,
    :func:`.register.noise_factor`) to the power :data:`RESAMPLED_NOISE_POWER`.

    Resampling between pixels lowers a frame's noise per pixel (the reference,
    not resampled, keeps all of it: 1.5× the others' per pixel with bilinear on
    mono frames, 1.2× on debayered ones, whose noise is correlated between
    neighbours: ``resampled`` counts it), but not on scales of several pixels. Inverse-variance weights on the
    per-pixel noise (power 1) minimise the noise per pixel and cost on large
    scales; equal ones (power 0) the reverse. From the benchmark's 16 lights'
    factors, per pixel / large scales against power 0: power 0.3 −1.3 % /
    +0.2 %, 0.4 −1.6 % / +0.3 %, 0.5 −1.8 % / +0.4 %, 1 −2.2 % / +1.2 %.
    Measured there (noise per pixel / 4×4 / 16×16 blocks): 0.3 8.774 / 11.954
    / 12.791, 0.4 8.751 / 11.966 / 12.780, 0.5 8.731 / 11.976 / 12.781; Siril
    1.0.6 8.765 / 11.968 / 12.918 (its additive-with-scaling normalisation,
    measured on the resampled frames, weights them in effect by the inverse of
    their per-pixel noise: power ½). 0.4 is the one at or under Siril's noise on
    every block size."""
    n = q.noise * scale
    if not n > 0:
        return 0.0
    return 1.0 / (n * n * max(resampled, 1e-3) ** RESAMPLED_NOISE_POWER)
