"""The 16 kHz view of a clip that the speech-trained judges (Resemblyzer, DNSMOS, PESQ, STOI) expect."""

from __future__ import annotations

import numpy as np
import soxr

JUDGE_RATE = 16_000  # Hz, the rate every speech-trained metric model was trained at


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """(n,) mono at ``sr`` -> (m,) float32 mono at 16 kHz."""
    x = np.asarray(audio, dtype=np.float32)
    if sr == JUDGE_RATE:
        return x
    return soxr.resample(x, sr, JUDGE_RATE, quality="HQ").astype(np.float32)


def peak_normalise(audio: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale so the largest absolute sample is ``peak`` (silence is returned unchanged)."""
    m = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio if m == 0.0 else (audio * (peak / m)).astype(np.float32)
