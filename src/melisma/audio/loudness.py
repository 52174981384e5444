"""Integrated loudness (EBU R128 / ITU-R BS.1770 via pyloudnorm) and normalisation to a target.

BS.1770 gates over 400 ms blocks, so pyloudnorm refuses clips shorter than that.  Short clips are
measured on a tiled copy (same K-weighted power, which is all a clip that short has to offer).
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm

from melisma.audio.constants import TARGET_LUFS

BLOCK_SECONDS = 0.4  # BS.1770 gating block
SILENT_LUFS = -70.0  # BS.1770 absolute gate: anything below is silence
PEAK_CEILING = 0.99  # normalised clips never go above this sample peak (no clipping from the gain)


def integrated_lufs(audio: np.ndarray, sr: int) -> float:
    """(n,) mono waveform -> integrated loudness in LUFS; ``-inf`` for silence (below the absolute gate)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.size == 0 or not np.any(x):
        return -math.inf
    need = int(math.ceil(BLOCK_SECONDS * sr)) + 1
    if x.size < need:
        x = np.tile(x, need // x.size + 1)
    value = float(pyloudnorm.Meter(sr).integrated_loudness(x))
    return value if math.isfinite(value) and value > SILENT_LUFS else -math.inf


def normalize_loudness(
    audio: np.ndarray, sr: int, target_lufs: float = TARGET_LUFS, peak_ceiling: float = PEAK_CEILING
) -> tuple[np.ndarray, float]:
    """Scale ``audio`` ((n,) float) to ``target_lufs``; returns ``(scaled float32, measured LUFS before)``.

    The gain is lowered when needed so the sample peak stays at or below ``peak_ceiling``
    (a clip that is peaky for its loudness ends up a little under target rather than clipped).
    Silence is returned unchanged with loudness ``-inf``.
    """
    x = np.asarray(audio, dtype=np.float32)
    lufs = integrated_lufs(x, sr)
    if not math.isfinite(lufs):
        return x.copy(), lufs
    gain = 10.0 ** ((target_lufs - lufs) / 20.0)
    peak = float(np.abs(x).max())
    if peak * gain > peak_ceiling:
        gain = peak_ceiling / peak
    return (x * np.float32(gain)).astype(np.float32), lufs
