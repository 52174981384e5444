"""Causal networks of the streaming path: frame-by-frame stacks whose state is carried between blocks.

Every network is a ``CausalStack``: a per-frame input projection, residual blocks of a causal depthwise
convolution (kernel ``KERNEL``, dilations 1, 2, 4, 8, ...) + LayerNorm + MLP, and a per-frame output head.
Layout is frames first, (B, T, C). ``forward(x, state)`` returns the output and the state to pass with the next
frames; state None is the start of a stream (zeros before the first frame), so running a clip whole or block by
block gives the same numbers (tests/test_streaming.py). No statistic spans frames, nothing looks ahead.

The input functions below are numpy (what training prepares once per clip and the engine per block).
The three roles (``StreamConfig.role``), each distilled from its offline stage by ``melisma.training.streaming``:
``content`` (streaming log-mel -> the offline content encoder's output), ``decoder`` (content, F0, loudness,
singer weights -> the log-mel a voice pack's singer model draws) and ``vocoder`` (log-mel, F0 -> the builtin
vocoder's harmonic and noise filter log magnitudes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KERNEL = 3
ROLES = ("content", "decoder", "vocoder")
MEL_CENTER, MEL_SCALE = -6.0, 2.5  # log-mel of normalised singing: about this mean and spread
LOUD_CENTER, LOUD_SCALE = -30.0, 20.0  # dBFS


@dataclass(frozen=True)
class StreamConfig:
    """Architecture of one streaming network (stored in its weights file)."""

    role: str
    in_dim: int
    out_dim: int
    hidden: int = 192
    n_blocks: int = 6
    n_singers: int = 0  # decoder: rows of the singer embedding (mixed by the singer weights)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def receptive_past(self) -> int:
        """Past frames one output frame depends on."""
        return sum((KERNEL - 1) * dilation(i) for i in range(self.n_blocks))


def dilation(i: int) -> int:
    """Dilation of block ``i``: 1, 2, 4, 8, then again."""
    return 2 ** (i % 4)


class CausalDepthwise(nn.Module):
    """Per-channel causal convolution: y[t] = sum_i w[i] * x[t - i * dilation], (B, T, C) -> (B, T, C)."""

    def __init__(self, channels: int, dil: int) -> None:
        super().__init__()
        self.dilation = dil
        self.weight = nn.Parameter(torch.randn(KERNEL, channels) / KERNEL)
        self.bias = nn.Parameter(torch.zeros(channels))

    @property
    def context(self) -> int:
        return (KERNEL - 1) * self.dilation

    def forward(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C), state (B, context, C) the frames before x (None: zeros) -> (y, next state)."""
        if state is None:
            state = x.new_zeros(x.shape[0], self.context, x.shape[2])
        full = torch.cat([state, x], dim=1)
        t = x.shape[1]
        y = self.bias + sum(self.weight[i] * full[:, self.context - i * self.dilation:][:, :t]
                            for i in range(KERNEL))
        return y, full[:, full.shape[1] - self.context:]


class CausalBlock(nn.Module):
    """Causal depthwise conv -> LayerNorm -> MLP, scaled residual (ConvNeXt, frames first)."""

    def __init__(self, channels: int, dil: int) -> None:
        super().__init__()
        self.dw = CausalDepthwise(channels, dil)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.gamma = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        y, state = self.dw(x, state)
        return x + self.gamma * self.mlp(self.norm(y)), state


class CausalStack(nn.Module):
    """(B, T, in_dim) [+ singer weights (B, S)] -> (B, T, out_dim), causal, with carried state."""

    def __init__(self, cfg: StreamConfig) -> None:
        super().__init__()
        if cfg.role not in ROLES:
            raise ValueError(f"unknown streaming role {cfg.role!r}")
        self.cfg = cfg
        self.inp = nn.Linear(cfg.in_dim, cfg.hidden)
        self.singer = nn.Parameter(torch.zeros(cfg.n_singers, cfg.hidden)) if cfg.n_singers else None
        self.blocks = nn.ModuleList(CausalBlock(cfg.hidden, dilation(i)) for i in range(cfg.n_blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, cfg.out_dim)

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None,
                singer_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.inp(x)
        if self.singer is not None:
            if singer_weights is None:
                raise ValueError("a decoder needs singer weights (B, S)")
            h = h + (singer_weights @ self.singer)[:, None]
        new_state = []
        for i, block in enumerate(self.blocks):
            h, s = block(h, None if state is None else state[i])
            new_state.append(s)
        return self.head(F.gelu(self.norm(h))), new_state


def f0_inputs(f0: np.ndarray) -> np.ndarray:
    """(..., T) Hz -> (..., T, 2) float32: log2(f0 / 440) (0 where unvoiced) and the voiced flag."""
    voiced = (f0 > 0).astype(np.float32)
    return np.stack([np.log2(np.maximum(f0, 1.0) / 440.0) * voiced, voiced], axis=-1).astype(np.float32)


def content_inputs(mel: np.ndarray) -> np.ndarray:
    """Streaming log-mel (..., T, 128) -> the content network's input."""
    return ((mel - MEL_CENTER) / MEL_SCALE).astype(np.float32)


def decoder_inputs(content: np.ndarray, f0: np.ndarray, loudness: np.ndarray) -> np.ndarray:
    """content (..., T, C), F0 (..., T) Hz, loudness (..., T) dBFS -> (..., T, C + 3) the decoder's input."""
    loud = ((np.clip(loudness, -100.0, 0.0) - LOUD_CENTER) / LOUD_SCALE)[..., None]
    return np.concatenate([content, f0_inputs(f0), loud], axis=-1).astype(np.float32)


def vocoder_inputs(mel: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """log-mel (..., T, 128), F0 (..., T) Hz -> (..., T, 130) the vocoder network's input."""
    return np.concatenate([(mel - MEL_CENTER) / MEL_SCALE, f0_inputs(f0)], axis=-1).astype(np.float32)


def log_mel_from_decoder(x: np.ndarray) -> np.ndarray:
    """The decoder's normalised mel -> natural-log mel: ``melisma.singer.model.denormalise_mel`` in numpy."""
    from melisma.singer.model import MEL_MAX, MEL_MIN

    mel = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0 * (MEL_MAX - MEL_MIN) + MEL_MIN
    return np.maximum(mel, np.float32(np.log(1e-5))).astype(np.float32)
