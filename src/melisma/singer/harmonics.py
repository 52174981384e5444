"""The harmonic template: what a flat-envelope harmonic comb at F0 looks like through melisma's log-mel.

Below about 3 kHz the 128-bin mel resolves single harmonics of a sung voice, so the true log-mel carries a comb
whose peaks sit at exactly k * F0. In the log domain a voiced frame's mel is about envelope + comb; a network
that gets F0 only as a number must learn the comb's highly non-linear dependence on it. The template gives the
comb to the model directly: for each frame, log(mel of the comb) - log(mel of the comb's mean level), floored
at ``FLOOR_DB`` between harmonics, 0 where unvoiced. (It lowers the mel L1 of the base model; the vocoder already
draws the comb in the audio, so reconstruction PESQ-wb stays where it was — see the model card.)

Shapes: f0 (B, T) Hz -> template (B, N_MELS, T), natural-log units, mean about 0 over the bins of a frame.
The template depends on F0 alone, so it is computed once on a 2-cent grid over [F0_MIN, F0_MAX] and looked up
(linear interpolation), which costs nothing beside the model.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from melisma.audio.constants import F0_MAX, F0_MIN, F_MAX, F_MIN, N_FFT, SAMPLE_RATE, WIN_SIZE
from melisma.features.mel import mel_basis

FLOOR_DB = -30.0  # depth of the comb's valleys relative to its mean level
GRID_CENTS = 2.0  # spacing of the look-up table
_NEIGHBOURS = (-2, -1, 0, 1, 2)  # harmonics either side of the nearest whose Hann lobe can reach a bin


def hann_lobe(offset_bins: torch.Tensor) -> torch.Tensor:
    """|DTFT| of a Hann window ``offset_bins`` FFT bins away from a sinusoid, 1 at the centre."""
    x = offset_bins.abs()
    near_one = (x - 1.0).abs() < 1e-4
    safe = torch.where(near_one, torch.full_like(x, 2.0), x)
    lobe = (torch.sinc(safe) / (1.0 - safe**2)).abs()
    return torch.where(near_one, torch.full_like(x, 0.5), lobe)


def harmonic_template(f0: torch.Tensor) -> torch.Tensor:
    """(B, T) F0 Hz (0 = unvoiced) -> (B, N_MELS, T) log-mel comb relative to its mean level (0 if unvoiced);
    F0 outside [F0_MIN, F0_MAX] is clamped to it."""
    table = _table(str(f0.device))  # (G, M)
    pos = 1200.0 / GRID_CENTS * torch.log2(f0.clamp(F0_MIN, F0_MAX) / F0_MIN)
    lo = pos.floor().long().clamp(0, table.shape[0] - 2)
    frac = (pos - lo).clamp(0.0, 1.0)[..., None]
    rows = table[lo] * (1.0 - frac) + table[lo + 1] * frac  # (B, T, M)
    return rows.transpose(1, 2) * (f0 > 0).float()[:, None, :]


@lru_cache(maxsize=2)
def _table(device: str) -> torch.Tensor:
    n = math.ceil(1200.0 / GRID_CENTS * math.log2(F0_MAX / F0_MIN)) + 1
    grid = F0_MIN * 2.0 ** (torch.arange(n, dtype=torch.float32) * GRID_CENTS / 1200.0)
    return exact_template(grid[None])[0].T.contiguous().to(device)  # (n, M)


def exact_template(f0: torch.Tensor) -> torch.Tensor:
    """``harmonic_template`` computed directly (what the look-up table holds)."""
    basis = mel_basis(str(f0.device))  # (M, K)
    freqs = torch.arange(basis.shape[1], device=f0.device, dtype=torch.float32) * (SAMPLE_RATE / N_FFT)
    bins_per_hz = WIN_SIZE / SAMPLE_RATE
    f = f0.clamp_min(1.0)[..., None]  # (B, T, 1)
    nearest = torch.round(freqs / f)  # (B, T, K)
    comb = torch.zeros_like(nearest)
    for m in _NEIGHBOURS:
        k = nearest + m
        lobe = hann_lobe((freqs - k * f) * bins_per_hz)
        comb = comb + torch.where(k >= 1, lobe, torch.zeros_like(lobe))
    band = (freqs >= F_MIN) & (freqs <= F_MAX)
    level = comb[..., band].mean(-1, keepdim=True)  # (B, T, 1)
    comb = comb + level * 10.0 ** (FLOOR_DB / 20.0)  # magnitude (as log_mel), floored between harmonics
    mel = torch.einsum("mk,btk->bmt", basis, comb)
    flat = torch.einsum("mk,btk->bmt", basis, level.expand_as(comb))
    template = torch.log(mel / flat.clamp_min(1e-12))
    return template * (f0 > 0).float()[:, None, :]

