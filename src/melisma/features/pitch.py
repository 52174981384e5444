"""Pitch extraction behind one small interface.

Every extractor returns F0 in Hz on the shared frame grid: a clip of n samples at SAMPLE_RATE gives
``n // HOP_SIZE + 1`` frames at FRAME_RATE (86.13 frames/s); 0 marks an unvoiced frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class PitchExtractor(ABC):
    """Base class. ``extract(audio, sr)`` -> (T,) float32 F0 in Hz, 0 where unvoiced, T = n_frames at SAMPLE_RATE."""

    name: str = "base"

    @abstractmethod
    def extract(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(n,) mono waveform at ``sr`` -> (T,) F0 in Hz on the shared grid for the same duration."""
