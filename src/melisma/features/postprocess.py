"""F0 post-processing and conversions shared by every pitch extractor and by the models.

All functions take and return F0 tracks as (T,) float arrays in Hz on the shared frame grid,
0 marking an unvoiced frame.  Nothing here changes the number of frames except ``resample_f0``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter as _median_filter

from melisma.audio.constants import F0_MAX, F0_MIN


def cents_error(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Absolute pitch error in cents on frames voiced in both tracks: (T,), (T,) -> (k,) cents."""
    est, ref = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    both = (est > 0) & (ref > 0)
    return np.abs(1200.0 * np.log2(est[both] / ref[both]))


def limit_range(f0: np.ndarray, f0_min: float = F0_MIN, f0_max: float = F0_MAX) -> np.ndarray:
    """Mark frames outside [f0_min, f0_max] Hz unvoiced (0); NaN counts as unvoiced."""
    f = np.nan_to_num(np.asarray(f0, dtype=np.float32), nan=0.0)
    return np.where((f >= f0_min) & (f <= f0_max), f, 0.0).astype(np.float32)


def voiced_runs(voiced: np.ndarray) -> list[tuple[int, int]]:
    """(T,) bool -> list of [start, end) index pairs of consecutive voiced frames."""
    v = np.concatenate([[False], np.asarray(voiced, bool), [False]])
    edges = np.flatnonzero(v[1:] != v[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def remove_short_runs(f0: np.ndarray, min_frames: int = 3) -> np.ndarray:
    """Unvoice voiced runs shorter than ``min_frames`` frames (isolated blips are almost always errors)."""
    out = np.asarray(f0, dtype=np.float32).copy()
    for start, end in voiced_runs(out > 0):
        if end - start < min_frames:
            out[start:end] = 0.0
    return out


def fix_octave_jumps(f0: np.ndarray, window: int = 31, tolerance_cents: float = 300.0) -> np.ndarray:
    """Fold frames an octave (or two) away from the local median pitch back towards it.

    The reference is a running median of log-F0 over ``window`` frames of the same voiced run (runs are
    treated separately, so a new phrase may start in any octave).  A frame is moved by +-1 or +-2
    octaves when that brings it within ``tolerance_cents`` of the reference and it was further away.
    """
    out = np.asarray(f0, dtype=np.float32).copy()
    for start, end in voiced_runs(out > 0):
        if end - start < 3:
            continue
        cents = 1200.0 * np.log2(out[start:end].astype(np.float64))
        ref = _median_filter(cents, size=min(window, end - start), mode="nearest")
        shift = np.round((ref - cents) / 1200.0).clip(-2, 2)
        moved = cents + 1200.0 * shift
        fix = (shift != 0) & (np.abs(moved - ref) < tolerance_cents)
        cents[fix] = moved[fix]
        out[start:end] = (2.0 ** (cents / 1200.0)).astype(np.float32)
    return out


def median_smooth(f0: np.ndarray, size: int = 3) -> np.ndarray:
    """Median filter of log-F0 inside each voiced run (never mixes voiced and unvoiced frames).

    ``size`` is in frames (odd; 1 or less disables).  Runs shorter than ``size`` use their own length.
    """
    out = np.asarray(f0, dtype=np.float32).copy()
    if size <= 1:
        return out
    for start, end in voiced_runs(out > 0):
        k = min(size, end - start)
        if k > 1:
            logf = np.log(out[start:end].astype(np.float64))
            out[start:end] = np.exp(_median_filter(logf, size=k, mode="nearest")).astype(np.float32)
    return out


def clean_f0(
    f0: np.ndarray,
    f0_min: float = F0_MIN,
    f0_max: float = F0_MAX,
    octave_fix: bool = True,
    median: int = 3,
    min_voiced_frames: int = 3,
) -> np.ndarray:
    """The common post-processing chain: range limit, short-blip removal, octave-jump fix, median filter."""
    f = limit_range(f0, f0_min, f0_max)
    if min_voiced_frames > 1:
        f = remove_short_runs(f, min_voiced_frames)
    if octave_fix:
        f = fix_octave_jumps(f)
    f = median_smooth(f, median)
    return limit_range(f, f0_min, f0_max)


def interpolate_unvoiced(f0: np.ndarray, log: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(T,) F0 in Hz with 0 = unvoiced -> ((T,) continuous track, (T,) bool voiced mask).

    The continuous track is natural-log Hz (``log=True``, what the models consume) or Hz, linearly
    interpolated in log-F0 across unvoiced gaps and held flat before the first / after the last voiced
    frame.  A clip with no voiced frame gets a constant log(F0_MIN) track and an all-False mask.
    """
    f = np.asarray(f0, dtype=np.float64)
    voiced = f > 0
    cont: np.ndarray
    if not voiced.any():
        cont = np.full(f.shape, np.log(F0_MIN))
    else:
        idx = np.flatnonzero(voiced)
        cont = np.interp(np.arange(f.size), idx, np.log(f[idx]))
    values = cont if log else np.exp(cont)
    return values.astype(np.float32), voiced


def resample_f0(
    f0: np.ndarray, src_times: np.ndarray, dst_times: np.ndarray, voiced_weight: np.ndarray | None = None
) -> np.ndarray:
    """Move an F0 track to other frame times (seconds): log-linear pitch, nearest-ish voicing.

    (S,) Hz at ``src_times`` -> (D,) Hz at ``dst_times``.  Pitch is interpolated in log-F0 over the
    continuous (gap-filled) track; a destination frame is voiced when the linearly interpolated voicing
    indicator is >= 0.5, so voicing edges move by at most half a source frame.
    """
    cont, voiced = interpolate_unvoiced(f0, log=True)
    weight = voiced.astype(np.float64) if voiced_weight is None else voiced_weight
    logf = np.interp(dst_times, src_times, cont)
    v = np.interp(dst_times, src_times, weight) >= 0.5
    return np.where(v, np.exp(logf), 0.0).astype(np.float32)


def f0_to_coarse(f0: np.ndarray, n_bins: int = 256, f0_min: float = F0_MIN, f0_max: float = F0_MAX) -> np.ndarray:
    """(T,) Hz -> (T,) int64 pitch classes for an embedding table: 0 = unvoiced, 1..n_bins-1 voiced.

    Bins are uniform on the mel scale between ``f0_min`` and ``f0_max`` (as in so-vits-svc), so low
    notes get roughly as many bins per semitone as high ones on a perceptual scale.
    """
    f = np.asarray(f0, dtype=np.float64)
    mel = 1127.0 * np.log1p(f / 700.0)
    lo, hi = 1127.0 * np.log1p(f0_min / 700.0), 1127.0 * np.log1p(f0_max / 700.0)
    coarse = np.rint((mel - lo) * (n_bins - 2) / (hi - lo) + 1).clip(1, n_bins - 1)
    return np.where(f > 0, coarse, 0).astype(np.int64)


def voicing_scores(estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Voicing decision quality of ``estimate`` against ``reference`` (both (T,) Hz, 0 = unvoiced).

    Returns accuracy, precision and recall of the voiced class (fractions in [0, 1]; NaN when undefined).
    """
    est, ref = np.asarray(estimate) > 0, np.asarray(reference) > 0
    tp = float(np.sum(est & ref))
    return {
        "accuracy": float(np.mean(est == ref)) if est.size else float("nan"),
        "precision": tp / est.sum() if est.sum() else float("nan"),
        "recall": tp / ref.sum() if ref.sum() else float("nan"),
    }
