"""The streaming networks' inference in numpy: ``CausalStack`` layer for layer, without torch's per-call cost.

A block carries one or two frames; at that size each torch call costs more than its arithmetic (a 192 x 384
linear layer: ~35 us in torch, ~5 us as a numpy matmul on this CPU), so the engine runs the networks through
``NumpyStack``, built from the trained torch module; tests/test_streaming.py checks both give the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf
from torch import nn

from melisma.live.nets import KERNEL, CausalBlock, CausalStack


def _np(t) -> np.ndarray:
    return t.detach().float().numpy().copy()


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    inv_n = np.float32(1.0 / x.shape[-1])
    d = x - np.add.reduce(x, axis=-1, keepdims=True) * inv_n
    var = np.add.reduce(d * d, axis=-1, keepdims=True) * inv_n
    return d * (1.0 / np.sqrt(var + np.float32(eps))) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / np.sqrt(2.0))))


@dataclass(frozen=True)
class _Block:
    """One ``CausalBlock``'s weights, matrices transposed for ``x @ w``."""

    dilation: int
    context: int
    dw: np.ndarray
    dw_b: np.ndarray
    ln_w: np.ndarray
    ln_b: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    gamma: np.ndarray


class NumpyStack:
    """``CausalStack.forward`` for one stream: x (T, in_dim) [+ singer weights (S,)] -> (T, out_dim), state."""

    def __init__(self, net: CausalStack) -> None:
        self.cfg = net.cfg
        self.inp = (_np(net.inp.weight).T, _np(net.inp.bias))
        self.singer = None if net.singer is None else _np(net.singer)
        self.blocks: list[_Block] = []
        for block in net.blocks:
            assert isinstance(block, CausalBlock)
            lin1, lin2 = block.mlp[0], block.mlp[2]
            assert isinstance(lin1, nn.Linear) and isinstance(lin2, nn.Linear)
            self.blocks.append(_Block(block.dw.dilation, block.dw.context, _np(block.dw.weight),
                                      _np(block.dw.bias), _np(block.norm.weight), _np(block.norm.bias),
                                      _np(lin1.weight).T, _np(lin1.bias), _np(lin2.weight).T, _np(lin2.bias),
                                      _np(block.gamma)))
        self.norm = (_np(net.norm.weight), _np(net.norm.bias))
        self.head = (_np(net.head.weight).T, _np(net.head.bias))

    def __call__(self, x: np.ndarray, state: list[np.ndarray] | None = None,
                 singer_weights: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        h = x.astype(np.float32) @ self.inp[0] + self.inp[1]
        if self.singer is not None:
            if singer_weights is None:
                raise ValueError("a decoder needs singer weights (S,)")
            h = h + singer_weights.astype(np.float32) @ self.singer
        new_state = []
        t = h.shape[0]
        for i, b in enumerate(self.blocks):
            ctx, dil = b.context, b.dilation
            prev = np.zeros((ctx, h.shape[1]), np.float32) if state is None else state[i]
            full = np.concatenate([prev, h])
            y = b.dw_b.copy()
            for j in range(KERNEL):
                y = y + b.dw[j] * full[ctx - j * dil : ctx - j * dil + t]
            m = _gelu(_layer_norm(y, b.ln_w, b.ln_b) @ b.w1 + b.b1) @ b.w2 + b.b2
            h = h + b.gamma * m
            new_state.append(full[full.shape[0] - ctx :])
        return _gelu(_layer_norm(h, *self.norm)) @ self.head[0] + self.head[1], new_state
