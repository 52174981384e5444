"""``CausalSynth`` in torch, differentiable: what training the streaming vocoder network through the causal
synthesis needs (``melisma.training.streaming.finetune_vocoder``). The numpy ``CausalSynth`` is what the engine
runs; this is its twin from the start of a stream (no carried state), with the same steps, and
tests/test_streaming.py checks the two give the same audio for the same noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from melisma.audio.constants import SAMPLE_RATE
from melisma.live.frontend import STREAM_HOP
from melisma.live.synthesis import CEP_FFT, CONV_FFT, IR_TAPER, N_BINS, NOISE_GAIN
from melisma.onnx.synthesis import DEFAULT_UNVOICED_HZ, LOG_MAG_MAX
from melisma.vocoder.builtin import minimum_phase_log


def _held(f0: torch.Tensor) -> torch.Tensor:
    """(B, K) Hz -> the last voiced F0 at or before each frame (DEFAULT_UNVOICED_HZ before the first)."""
    k = torch.arange(f0.shape[-1], device=f0.device).expand_as(f0)
    last = torch.where(f0 > 0, k, torch.full_like(k, -1)).cummax(dim=-1).values
    held = torch.gather(f0, -1, last.clamp_min(0))
    return torch.where(last >= 0, held, torch.full_like(held, DEFAULT_UNVOICED_HZ))


def excitation(f0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """f0 (B, K) Hz, noise (B, K * STREAM_HOP) standard normal -> (B, 2, K * STREAM_HOP) pulse train and scaled
    noise, each segment ramping from the previous frame's F0 and voicing (a stream starts unvoiced)."""
    b, k = f0.shape
    held = _held(f0).double()
    voiced = (f0 > 0).double()
    prev_f0 = torch.cat([held.new_full((b, 1), DEFAULT_UNVOICED_HZ), held[:, :-1]], dim=1)
    prev_v = torch.cat([voiced.new_zeros(b, 1), voiced[:, :-1]], dim=1)
    prev_g = torch.cat([voiced.new_zeros(b, 1), voiced.new_ones(b, k - 1)], dim=1)
    ramp = torch.arange(1, STREAM_HOP + 1, dtype=torch.float64, device=f0.device) / STREAM_HOP
    f0_s = (prev_f0[..., None] + (held - prev_f0)[..., None] * ramp).reshape(b, -1)
    v_s = (prev_v[..., None] + (voiced - prev_v)[..., None] * ramp).reshape(b, -1)
    g_s = (prev_g[..., None] + (1.0 - prev_g)[..., None] * ramp).reshape(b, -1)
    phase = torch.remainder(torch.cumsum(f0_s / SAMPLE_RATE, dim=-1), 1.0) * (2 * math.pi)
    harmonics = torch.floor(0.5 * SAMPLE_RATE / f0_s).clamp_min(1.0)
    half = torch.sin(0.5 * phase)
    small = half.abs() < 1e-4
    dirichlet = torch.where(small, harmonics,
                            torch.sin((harmonics + 0.5) * phase) / (2 * torch.where(small, torch.ones_like(half), half))
                            - 0.5)
    pulses = dirichlet * 2.0 * torch.sqrt(f0_s / SAMPLE_RATE) * v_s * g_s
    return torch.stack([pulses, NOISE_GAIN * noise.double() * g_s], dim=1).float()


def responses(log_mag: torch.Tensor) -> torch.Tensor:
    """(B, K, 2 * N_BINS) log magnitudes -> (B, K, 2, CONV_FFT // 2 + 1) harmonic and noise responses."""
    lm = log_mag.clamp(max=LOG_MAG_MAX).reshape(*log_mag.shape[:2], 2, N_BINS)
    mid = 0.5 * (lm[..., :-1] + lm[..., 1:])
    fine = torch.stack([lm[..., :-1], mid], dim=-1).flatten(-2)
    fine = torch.cat([fine, lm[..., -1:]], dim=-1)  # bins interpolated halfway: CEP_FFT // 2 + 1
    h = torch.exp(minimum_phase_log(fine, CEP_FFT))
    taper = torch.as_tensor(IR_TAPER, dtype=torch.float32, device=log_mag.device)
    return torch.fft.rfft(torch.fft.irfft(h, n=CEP_FFT) * taper, n=CONV_FFT)


def synthesize(log_mag: torch.Tensor, f0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(B, K, 2 * N_BINS), (B, K) Hz, (B, K * STREAM_HOP) -> (B, K * STREAM_HOP) audio, as ``CausalSynth.push``
    of the K frames at the start of a stream (before clipping)."""
    b, k = f0.shape
    h = responses(log_mag)
    h = torch.cat([h[:, :1], h], dim=1)  # the first segment's previous response is its own
    exc = F.pad(excitation(f0, noise), (CEP_FFT, 0))
    windows = exc.unfold(-1, CEP_FFT + STREAM_HOP, STREAM_HOP)[:, :, :k]  # (B, 2, K, span)
    spec = torch.fft.rfft(windows, n=CONV_FFT).transpose(1, 2)  # (B, K, 2, bins)
    ramp = (torch.arange(STREAM_HOP, device=f0.device) + 0.5) / STREAM_HOP
    ends = [torch.fft.irfft((spec * h[:, j : j + k]).sum(dim=2), n=CONV_FFT)[..., CEP_FFT : CEP_FFT + STREAM_HOP]
            for j in (0, 1)]
    return (ends[0] * (1.0 - ramp) + ends[1] * ramp).reshape(b, -1)
