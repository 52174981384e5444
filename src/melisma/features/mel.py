"""Log-mel spectrogram with the project's fixed STFT settings (see melisma.audio.constants).

Framing is centred: a clip of n samples gives ``n_frames(n) = n // HOP_SIZE + 1`` frames, the same count
pyworld's dio/harvest give at FRAME_PERIOD_MS, so pitch, loudness, content and mel line up frame for frame.
Values are natural-log magnitudes, ``log(max(mel, 1e-5))``, as NSF-HiFiGAN expects.

Two front ends compute the same numbers from the same filterbank and window: ``log_mel`` (torch, differentiable,
what training and the torch engine use) and ``log_mel_np`` (numpy only, what the onnxruntime engine uses so that
it never imports torch); tests/test_export.py checks they agree to float32 rounding.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from melisma.audio.constants import F_MAX, F_MIN, HOP_SIZE, N_FFT, N_MELS, SAMPLE_RATE, WIN_SIZE

if TYPE_CHECKING:
    import torch

LOG_FLOOR = 1e-5
MAG_FLOOR = 1e-9  # magnitudes are clamped here before the filterbank (keeps log and its gradient finite)


@lru_cache(maxsize=1)
def mel_basis_np() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) float32 Slaney-normalised mel filterbank (read-only)."""
    import librosa

    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
    basis = np.ascontiguousarray(basis, dtype=np.float32)
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=4)
def mel_basis(device: str = "cpu") -> torch.Tensor:
    """(N_MELS, N_FFT // 2 + 1) Slaney-normalised mel filterbank (``mel_basis_np`` as a tensor)."""
    import torch

    return torch.tensor(mel_basis_np()).to(device)


def hann_window_np(size: int) -> np.ndarray:
    """(size,) float32 periodic Hann window, the values of ``torch.hann_window(size)``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(size) / size)).astype(np.float32)


@lru_cache(maxsize=4)
def _window(device: str = "cpu") -> torch.Tensor:
    import torch

    return torch.hann_window(WIN_SIZE, device=device)


def _pad_mode(n: int) -> str:
    # reflect padding needs more than N_FFT // 2 samples; very short clips pad with zeros instead
    return "reflect" if n > N_FFT // 2 else "constant"


def magnitude_stft(audio: torch.Tensor) -> torch.Tensor:
    """(B, n) waveform at SAMPLE_RATE -> (B, N_FFT // 2 + 1, n // HOP_SIZE + 1) linear magnitude."""
    import torch

    spec = torch.stft(
        audio, N_FFT, HOP_SIZE, WIN_SIZE, window=_window(str(audio.device)), center=True,
        pad_mode=_pad_mode(audio.shape[-1]), return_complex=True,
    )
    return spec.abs().clamp_min(MAG_FLOOR)


def log_mel(audio: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Waveform (n,) or (B, n) at SAMPLE_RATE -> log-mel (B, N_MELS, T), T = n // HOP_SIZE + 1 at FRAME_RATE."""
    import torch

    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() == 1:
        x = x[None]
    mag = magnitude_stft(x)
    mel = torch.matmul(mel_basis(str(x.device)), mag)
    return torch.log(mel.clamp_min(LOG_FLOOR))


def _magnitude_frames_np(audio: np.ndarray) -> np.ndarray:
    """(B, n) waveform -> (B, T, N_FFT // 2 + 1) float32 magnitude, frames first (the fast layout for numpy)."""
    import scipy.fft

    x = np.asarray(audio, dtype=np.float32)
    pad = N_FFT // 2
    padded = np.pad(x, [(0, 0), (pad, pad)], mode=_pad_mode(x.shape[-1]))  # type: ignore[call-overload]
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)[:, ::HOP_SIZE]  # (B, T, N_FFT)
    spec = scipy.fft.rfft(frames * hann_window_np(WIN_SIZE), axis=-1)  # complex64 (B, T, K)
    return np.maximum(np.abs(spec), np.float32(MAG_FLOOR))


def magnitude_stft_np(audio: np.ndarray) -> np.ndarray:
    """(B, n) float32 waveform -> (B, N_FFT // 2 + 1, n // HOP_SIZE + 1) float32 linear magnitude (as
    ``magnitude_stft``: centred frames, periodic Hann window of WIN_SIZE = N_FFT)."""
    return _magnitude_frames_np(audio).transpose(0, 2, 1)


def log_mel_np(audio: np.ndarray) -> np.ndarray:
    """``log_mel`` in numpy: (n,) or (B, n) float waveform -> (B, N_MELS, T) float32 natural-log mel."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    mel = np.matmul(_magnitude_frames_np(x), mel_basis_np().T)  # (B, T, N_MELS)
    return np.log(np.maximum(mel, np.float32(LOG_FLOOR))).transpose(0, 2, 1)
