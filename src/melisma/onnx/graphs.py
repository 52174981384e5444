"""The three networks of a conversion, wrapped as the graphs ``melisma export`` writes (torch side only).

Each wrapper calls the stage's own module, so the graph computes exactly what the torch engine computes; what
stays outside the graphs (log-mel, pitch, loudness, the vocoder's source and STFT) runs in numpy in
``melisma.onnx.runtime``.

- ``ContentGraph``: log-mel (1, 128, T) -> content (1, C, T)                       (builtin content encoder)
- ``StudentGraph``: content (1, C, T), f0 (1, T) Hz, loudness (1, T) dBFS, singer weights (1, S), noise
  (1, 128, T) standard normal -> log-mel (1, 128, T): condition encoder + ONE consistency step from
  noise * SIGMA_MAX + the prior, denormalised (``consistency_sample`` with steps = 1, then ``denormalise_mel``)
- ``FilterGraph``: log-mel (1, 128, T), f0 (1, T) -> (1, T, 2 * n_bins) clamped log magnitudes of the builtin
  vocoder's harmonic and noise filters, frames first (the layout the numpy synthesis works in)
"""

from __future__ import annotations

import torch
from torch import nn

from melisma.content.builtin import BuiltinNet
from melisma.onnx.synthesis import LOG_MAG_MAX
from melisma.singer.consistency import consistency_fn
from melisma.singer.edm import SIGMA_MAX
from melisma.singer.model import SingerNet, denormalise_mel
from melisma.vocoder.builtin import BuiltinVocoder


class ContentGraph(nn.Module):
    """log-mel (B, 128, T) -> content (B, C, T) of the builtin content encoder (``BuiltinNet.encode``)."""

    def __init__(self, net: BuiltinNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net.encode(mel)[1]


class StudentGraph(nn.Module):
    """One-step student: (content, f0, loudness, singer weights, noise) -> log-mel (B, 128, T)."""

    def __init__(self, net: SingerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, content: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor,
                singer_weights: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        cond = self.net.condition(content, f0, loudness, singer_weights)
        sigma = torch.full(noise.shape[:1], SIGMA_MAX, dtype=noise.dtype)
        x0 = consistency_fn(self.net, noise * SIGMA_MAX, sigma, cond.hidden)
        return denormalise_mel(cond.prior + x0)


class FilterGraph(nn.Module):
    """Builtin vocoder's network: log-mel (B, 128, T), f0 (B, T) -> (B, T, 2 * n_bins), clamped as
    ``BuiltinVocoder.filters`` clamps it."""

    def __init__(self, vocoder: BuiltinVocoder) -> None:
        super().__init__()
        self.net = vocoder.net

    def forward(self, mel: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        return self.net(mel, f0).clamp(max=LOG_MAG_MAX).transpose(1, 2)
