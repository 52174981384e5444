"""Shared fixtures: short real clips on disk, synthesised on the fly with numpy (no network)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def sine_clip():
    """A 2 s sung-like tone at 44.1 kHz: 220 Hz with 5 Hz vibrato and harmonics, (audio, sr, true_f0_hz)."""
    sr = 44_100
    t = np.arange(2 * sr) / sr
    f0 = 220.0 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)).astype(np.float32)
    return audio, sr, f0
