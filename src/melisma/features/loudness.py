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


def a_weighting_db(freqs: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting gain in dB at ``freqs`` Hz (0 dB at 1 kHz; very negative at DC)."""
    f2 = np.maximum(np.asarray(freqs, dtype=np.float64), 1e-3) ** 2
    ra = (12194.0**2 * f2**2) / (
        (f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
    )
    return 20.0 * np.log10(ra) + 2.0


def frame_a_weighted_db(audio: np.ndarray) -> np.ndarray:
    """(n,) waveform at SAMPLE_RATE in [-1, 1] -> (n // HOP_SIZE + 1,) A-weighted level in dBFS per frame.

    Hann-windowed power spectrum (the project STFT) weighted by the A curve, scaled so that a sine at
    1 kHz reads the same as ``frame_rms_db`` (-3.01 dB at full scale).  Quieter than RMS for bass-heavy
    frames, which tracks perceived loudness of a voice better.
    """
    import torch

    from melisma.audio.constants import N_FFT, SAMPLE_RATE
    from melisma.features.mel import magnitude_stft

    x = torch.as_tensor(np.asarray(audio, dtype=np.float32))[None]
    power = magnitude_stft(x)[0].double().numpy() ** 2  # (N_FFT // 2 + 1, T)
    weight = 10.0 ** (a_weighting_db(np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)) / 10.0)
    weight[1:-1] *= 2.0  # one-sided spectrum: count the mirrored bins
    window = np.hanning(WIN_SIZE + 1)[:-1]  # torch.hann_window is periodic
    mean_power = (weight @ power) / (N_FFT * np.sum(window**2))
    return np.maximum(10.0 * np.log10(np.maximum(mean_power, 1e-20)), SILENCE_DB).astype(np.float32)


def check_weighting(weighting: str) -> str:
    """``weighting`` in its canonical spelling, "A" or "rms"; anything else raises ValueError."""
    if weighting.upper() == "A":
        return "A"
    if weighting.lower() == "rms":
        return "rms"
    raise ValueError(f"loudness weighting must be 'A' or 'rms', got {weighting!r}")


def frame_loudness_db(audio: np.ndarray, weighting: str = "rms") -> np.ndarray:
    """Per-frame level in dBFS on the shared grid: ``weighting`` "rms" (flat RMS, what the singer model is
    trained on) or "A" (A-weighted)."""
    return frame_a_weighted_db(audio) if check_weighting(weighting) == "A" else frame_rms_db(audio)
