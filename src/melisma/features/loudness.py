"""Frame loudness: RMS level in dB per frame, on the shared frame grid (n // HOP_SIZE + 1 frames)."""

from __future__ import annotations

import numpy as np

from melisma.audio.constants import HOP_SIZE, WIN_SIZE

SILENCE_DB = -100.0  # floor for digital silence


def frame_rms_db(audio: np.ndarray) -> np.ndarray:
    """(n,) waveform in [-1, 1] -> (n // HOP_SIZE + 1,) RMS level in dBFS, centred Hann-free windows of WIN_SIZE."""
    x = np.asarray(audio, dtype=np.float32)
    pad = WIN_SIZE // 2
    padded = np.pad(x, (pad, pad), mode="reflect" if x.size > pad else "constant")
    n_frames = x.size // HOP_SIZE + 1
    # mean of squares per window from a cumulative sum: O(n) however long the clip
    csum = np.concatenate([[0.0], np.cumsum(padded.astype(np.float64) ** 2)])
    starts = np.arange(n_frames) * HOP_SIZE
    ends = np.minimum(starts + WIN_SIZE, padded.size)
    power = (csum[ends] - csum[starts]) / np.maximum(ends - starts, 1)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-20)), SILENCE_DB).astype(np.float32)
