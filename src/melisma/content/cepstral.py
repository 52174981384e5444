"""A weight-free content encoder (cepstral, mean/variance-normalised per clip), the fallback the singer model
can be trained with when no learned content encoder is shipped. It keeps the vocal-tract envelope, so some
source timbre leaks into conversions: the learned ``builtin`` encoder is preferred whenever it is installed.
"""

from __future__ import annotations

import math

import torch

from melisma.audio.constants import N_MELS
from melisma.content.base import ContentEncoder
from melisma.features.mel import log_mel

N_CEPS = 24  # cepstral coefficients kept (c1..c24; c0, the level, is left to the loudness input)


def dct_matrix(n_in: int = N_MELS, n_out: int = N_CEPS + 1) -> torch.Tensor:
    """(n_out, n_in) orthonormal DCT-II."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None]
    m = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m.float()


class CepstralContentEncoder(ContentEncoder):
    """audio (B, n) at 44.1 kHz -> (B, 24, n // 512 + 1): mel-cepstrum c1..c24, standardised over each clip."""

    identity = "dsp-cepstral-v1"
    dim = N_CEPS

    def __init__(self):
        super().__init__()
        self.register_buffer("dct", dct_matrix(), persistent=False)

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        ceps = torch.einsum("km,bmt->bkt", self.dct, log_mel(audio))[:, 1:]
        mean = ceps.mean(-1, keepdim=True)
        std = ceps.std(-1, keepdim=True) if ceps.shape[-1] > 1 else torch.ones_like(mean)
        return (ceps - mean) / (std + 1e-3)
