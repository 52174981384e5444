"""The Vocoder interface: log-mel + F0 -> waveform at SAMPLE_RATE."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class Vocoder(nn.Module, ABC):
    """mel (B, N_MELS, T) natural-log mel as ``melisma.features.mel.log_mel`` makes it, f0 (B, T) Hz (0 = unvoiced)
    -> waveform (B, T * HOP_SIZE) float in [-1, 1] at SAMPLE_RATE. Whatever noise a vocoder draws comes
    from ``generator`` when one is given, so a seeded conversion is reproducible.

    ``identity`` names the weights (``builtin@<hash12>``, see ``melisma.identity``) so voice packs can record
    which vocoder they expect.
    """

    identity: str = "base"

    @abstractmethod
    def forward(self, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator | None = None
                ) -> torch.Tensor: ...
