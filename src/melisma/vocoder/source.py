"""Excitation signals for source-filter vocoders: F0 upsampling, band-limited pulse train, voicing.

Everything runs at SAMPLE_RATE. Frame ``t`` of a frame-rate track sits at sample ``t * hop`` (centred framing),
so a track of T frames drives ``T * hop`` samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from melisma.audio.constants import SAMPLE_RATE

DEFAULT_UNVOICED_HZ = 100.0  # phase keeps running at this rate before the first voiced frame


def fill_unvoiced(f0: torch.Tensor) -> torch.Tensor:
    """(B, T) Hz with 0 for unvoiced -> (B, T) Hz where unvoiced frames hold the last voiced value
    (the next voiced value before the first one), so interpolated pitch never glides through 0 Hz."""
    voiced = f0 > 0
    t = torch.arange(f0.shape[-1], device=f0.device).expand_as(f0)
    last = torch.where(voiced, t, torch.zeros_like(t)).cummax(dim=-1).values
    filled = torch.gather(f0, -1, last)
    rev = torch.where(voiced.flip(-1), t, torch.zeros_like(t)).cummax(dim=-1).values
    nxt = torch.gather(f0.flip(-1), -1, rev).flip(-1)
    filled = torch.where(filled > 0, filled, nxt)
    return torch.where(filled > 0, filled, torch.full_like(filled, DEFAULT_UNVOICED_HZ))


def upsample_linear(track: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, T) frame track -> (B, T * hop) samples, linear between frame centres, last frame held."""
    ext = torch.cat([track, track[:, -1:]], dim=-1)  # (B, T + 1)
    return F.interpolate(ext[:, None], size=track.shape[-1] * hop + 1, mode="linear", align_corners=True)[
        :, 0, :-1
    ]


def pulse_train(f0_samples: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(B, N) instantaneous F0 in Hz (> 0) -> (B, N) band-limited pulse train.

    Sum of cosine harmonics k = 1..K of the running phase, K = floor(Nyquist / F0), in closed form
    (Dirichlet kernel), so cost is O(N) whatever the pitch. Each harmonic has amplitude ``2 sqrt(F0 / sr)``,
    which gives the train the same power density as unit-variance white noise: one spectral envelope fits both.
    """
    inc = f0_samples.double() / sample_rate
    phase = torch.remainder(torch.cumsum(inc, dim=-1), 1.0).float() * (2 * math.pi)
    k = torch.floor(0.5 * sample_rate / f0_samples).clamp_min(1.0)
    half = torch.sin(0.5 * phase)
    safe = torch.where(half.abs() < 1e-4, torch.ones_like(half), half)
    dirichlet = torch.where(half.abs() < 1e-4, k, torch.sin((k + 0.5) * phase) / (2 * safe) - 0.5)
    return dirichlet * 2.0 * torch.sqrt(f0_samples / sample_rate)


def harmonic_excitation(f0: torch.Tensor, hop: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(B, T) frame F0 in Hz (0 = unvoiced) -> (B, T * hop) pulse train, faded to 0 over unvoiced frames."""
    voiced = (f0 > 0).float()
    f0_s = upsample_linear(fill_unvoiced(f0), hop)
    return pulse_train(f0_s, sample_rate) * upsample_linear(voiced, hop)
