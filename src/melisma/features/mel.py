"""Log-mel spectrogram with the project's fixed STFT settings (see melisma.audio.constants).

Framing is centred: a clip of n samples gives ``n_frames(n) = n // HOP_SIZE + 1`` frames, the same count
pyworld's dio/harvest give at FRAME_PERIOD_MS, so pitch, loudness, content and mel line up frame for frame.
Values are natural-log magnitudes, ``log(max(mel, 1e-5))``, as NSF-HiFiGAN expects.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from melisma.audio.constants import F_MAX, F_MIN, HOP_SIZE, N_FFT, N_MELS, SAMPLE_RATE, WIN_SIZE

LOG_FLOOR = 1e-5


@lru_cache(maxsize=4)
def mel_basis(device: str = "cpu") -> torch.Tensor:
    """(N_MELS, N_FFT // 2 + 1) Slaney-normalised mel filterbank."""
    import librosa

    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
    return torch.from_numpy(basis).float().to(device)


@lru_cache(maxsize=4)
def _window(device: str = "cpu") -> torch.Tensor:
    return torch.hann_window(WIN_SIZE, device=device)


def magnitude_stft(audio: torch.Tensor) -> torch.Tensor:
    """(B, n) waveform at SAMPLE_RATE -> (B, N_FFT // 2 + 1, n // HOP_SIZE + 1) linear magnitude."""
    # reflect padding needs more than N_FFT // 2 samples; very short clips pad with zeros instead
    pad_mode = "reflect" if audio.shape[-1] > N_FFT // 2 else "constant"
    spec = torch.stft(
        audio, N_FFT, HOP_SIZE, WIN_SIZE, window=_window(str(audio.device)), center=True,
        pad_mode=pad_mode, return_complex=True,
    )
    return spec.abs().clamp_min(1e-9)


def log_mel(audio: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Waveform (n,) or (B, n) at SAMPLE_RATE -> log-mel (B, N_MELS, T), T = n // HOP_SIZE + 1 at FRAME_RATE."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() == 1:
        x = x[None]
    mag = magnitude_stft(x)
    mel = torch.matmul(mel_basis(str(x.device)), mag)
    return torch.log(mel.clamp_min(LOG_FLOOR))
