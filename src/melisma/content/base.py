"""The ContentEncoder interface: waveform -> timbre-free content features on the shared frame grid."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class ContentEncoder(nn.Module, ABC):
    """audio (B, n) float at SAMPLE_RATE -> content (B, dim, n // HOP_SIZE + 1) at FRAME_RATE.

    Encoders that work at another rate (HuBERT/ContentVec: 16 kHz, 50 frames/s) resample the input and
    interpolate their frames onto the shared grid themselves. ``identity`` names the weights (``builtin@<hash12>``,
    see ``melisma.identity``), ``dim`` the width.
    """

    identity: str = "base"
    dim: int = 0

    @abstractmethod
    def forward(self, audio: torch.Tensor) -> torch.Tensor: ...
