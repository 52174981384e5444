"""Speaker similarity: cosine between Resemblyzer utterance embeddings (256-d, L2-normalised).

The encoder (17 MB of weights shipped inside the resemblyzer package) is loaded once per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from melisma.evaluate.deps import require
from melisma.evaluate.resample import JUDGE_RATE, to_16k

MIN_VOICED_SECONDS = 0.3
SILENCE_PEAK = 1e-4  # peak below -80 dBFS: nothing to embed
EMBEDDING_DIM = 256  # Resemblyzer needs at least a few partial windows of speech


@lru_cache(maxsize=1)
def _encoder() -> Any:
    resemblyzer = require("resemblyzer")
    return resemblyzer.VoiceEncoder(device="cpu", verbose=False)


def speaker_embedding(audio: np.ndarray, sr: int) -> np.ndarray:
    """(n,) mono at ``sr`` -> (256,) float32 unit-norm speaker embedding.

    Long silences are trimmed by Resemblyzer's VAD first; if that leaves too little, the untrimmed
    clip is embedded instead so a quiet or sung clip still gets a vector.  A silent clip has no voice:
    its embedding is all NaN, so every similarity to it is NaN (null in JSON), never a flattering number.
    """
    resemblyzer = require("resemblyzer")
    x = to_16k(audio, sr).astype(np.float64)
    if x.size == 0 or np.max(np.abs(x)) < SILENCE_PEAK:
        return np.full(EMBEDDING_DIM, np.nan, np.float32)
    wav = resemblyzer.preprocess_wav(x)
    if wav.size < MIN_VOICED_SECONDS * JUDGE_RATE:
        wav = x
    emb = _encoder().embed_utterance(wav.astype(np.float32))
    return np.asarray(emb, dtype=np.float32)


def centroid(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """(k, 256) embeddings -> (256,) unit-norm mean: the voice of several reference clips."""
    m = np.mean(np.stack(embeddings), axis=0)
    return (m / (np.linalg.norm(m) + 1e-12)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors, in [-1, 1]."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
