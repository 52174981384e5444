"""Pitch fidelity: how closely the converted clip follows the intended F0.

Every F0 track lives on the shared grid (``n // HOP_SIZE + 1`` frames at FRAME_RATE), 0 = unvoiced.
The judge tracker defaults to harvest, which conversion does not use, so a converter cannot score well
by reproducing its own tracker's mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

DEFAULT_JUDGE = "harvest"
CENTS_PER_OCTAVE = 1200.0


@dataclass(frozen=True)
class PitchScores:
    """Output F0 against intended F0, over frames both call voiced (``both_voiced`` of them)."""

    cents_error_mean: float  # mean |1200 log2(out/intended)|, cents
    cents_error_median: float  # cents
    f0_correlation: float  # Pearson r of F0 in Hz; nan when fewer than 3 common voiced frames
    vuv_agreement: float  # fraction of frames where voiced/unvoiced decisions agree, in [0, 1]
    both_voiced: int  # frames voiced in both tracks


@lru_cache(maxsize=4)
def judge(tracker: str) -> Any:
    """The PitchExtractor called ``tracker``, built once per process (neural ones load weights)."""
    from melisma.features.pitch import get_pitch_extractor

    return get_pitch_extractor(tracker)


def extract_f0(audio: np.ndarray, sr: int, tracker: str = DEFAULT_JUDGE) -> np.ndarray:
    """(n,) mono at ``sr`` -> (T,) float32 F0 in Hz (0 = unvoiced) on the shared grid, by ``tracker``."""
    return np.asarray(judge(tracker).extract(audio, sr), dtype=np.float32)


def intended_f0(source_f0: np.ndarray, transpose: float = 0.0) -> np.ndarray:
    """(T,) source F0 in Hz -> (T,) F0 the conversion should sing: shifted by ``transpose`` semitones."""
    return (np.asarray(source_f0, dtype=np.float32) * np.float32(2.0 ** (transpose / 12.0))).astype(np.float32)


def pitch_scores(output_f0: np.ndarray, target_f0: np.ndarray) -> PitchScores:
    """Compare two (T,) F0 tracks frame by frame (trimmed to the shorter one)."""
    t = min(len(output_f0), len(target_f0))
    out, ref = np.asarray(output_f0[:t], np.float64), np.asarray(target_f0[:t], np.float64)
    v_out, v_ref = out > 0, ref > 0
    both = v_out & v_ref
    vuv = float(np.mean(v_out == v_ref)) if t else float("nan")
    if not both.any():
        return PitchScores(float("nan"), float("nan"), float("nan"), vuv, 0)
    cents = np.abs(CENTS_PER_OCTAVE * np.log2(out[both] / ref[both]))
    return PitchScores(
        cents_error_mean=float(cents.mean()),
        cents_error_median=float(np.median(cents)),
        f0_correlation=_pearson(out[both], ref[both]),
        vuv_agreement=vuv,
        both_voiced=int(both.sum()),
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
