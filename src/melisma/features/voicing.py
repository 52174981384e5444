"""Voicing recovery: give back the voiced frames a tracker dropped next to its voiced runs.

DIO keeps F0 candidates only where its contour is stable, so on singing (vibrato, glides, soft onsets and
offsets) it calls about 12 % of the truly voiced frames unvoiced (voicing recall 0.878 against the true F0 of the
held-out sung clips, harvest 0.962), and conversion renders each such frame as noise. For every unvoiced frame
within ``reach`` frames of a voiced one, the period the contour implies there (log-F0 interpolated between the
neighbouring voiced frames, the nearest one's held at run edges) is searched within +-3 % for the normalised
autocorrelation peak of a ``window_s`` window centred on the frame. The frame is voiced again when that
peak exceeds ``threshold``, with the F0 of the peak refined by parabolic interpolation.

On the 20 held-out sung clips (``python benchmarks/pitch_accuracy.py data/corpus-heldout --methods dio --kind sung``)
this raises dio's voicing recall from 0.878 to 0.924 (accuracy 0.886 -> 0.925); precision moves from 0.995 to
0.992 and gross pitch errors (> 50 c) from 1.4 % to 2.05 %. It costs about 0.001 s per second of audio.
"""

from __future__ import annotations

import numpy as np

from melisma.audio.constants import FRAME_RATE

SEARCH = 0.03  # +- fraction of the implied period searched


def recover_voicing(audio: np.ndarray, sr: int, f0: np.ndarray, reach: int = 12, threshold: float = 0.5,
                    window_s: float = 0.025) -> np.ndarray:
    """(n,) audio at ``sr`` and its (T,) F0 on the shared grid (Hz, 0 = unvoiced) -> (T,) F0 with frames
    near voiced runs voiced again where the audio is periodic at the implied period (see the module doc)."""
    out = np.asarray(f0, dtype=np.float32).copy()
    voiced = np.flatnonzero(out > 0)
    if voiced.size == 0:
        return out
    frames = np.arange(out.size)
    implied = np.exp(np.interp(frames, voiced, np.log(out[voiced])))
    nearest = np.searchsorted(voiced, frames).clip(1, voiced.size - 1)
    distance = np.minimum(np.abs(frames - voiced[nearest - 1]), np.abs(voiced[nearest] - frames))
    candidates = np.flatnonzero((out == 0) & (distance <= reach))
    half = int(window_s * sr) // 2
    max_lag = int(sr / implied[candidates].min() * (1 + SEARCH)) + 2 if candidates.size else 0
    x = np.pad(np.asarray(audio, dtype=np.float64), (half + 1, half + max_lag + 1))
    hop = sr / FRAME_RATE
    for t in candidates:
        start = int(round(t * hop)) + 1  # window [start, start + 2 half) of the padded signal: centred on frame t
        a = x[start:start + 2 * half]
        period = sr / implied[t]
        lags = np.arange(max(2, int(period * (1 - SEARCH))), int(period * (1 + SEARCH)) + 2)
        r = np.array([_ncc(a, x[start + lag:start + lag + 2 * half]) for lag in (lags[0] - 1, *lags, lags[-1] + 1)])
        k = int(np.argmax(r[1:-1])) + 1
        if r[k] > threshold:
            out[t] = sr / (lags[k - 1] + _parabola_peak(r[k - 1], r[k], r[k + 1]))
    return out


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b) + 1e-12))


def _parabola_peak(left: float, mid: float, right: float) -> float:
    """Offset (in [-0.5, 0.5] samples) of the vertex of the parabola through three equally spaced points."""
    den = left - 2 * mid + right
    return float(np.clip(0.5 * (left - right) / den, -0.5, 0.5)) if den < 0 else 0.0
