"""Long audio in chunks: cut at the quietest frames, convert each chunk with context on both sides, and join the
chunks with complementary raised-cosine crossfades centred on the cuts (weights sum to 1: no seams, no gaps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.features.loudness import frame_rms_db


def plan_cuts(audio: np.ndarray, max_chunk_s: float = 30.0, search_s: float = 5.0) -> list[int]:
    """Cut points (sample indices, multiples of HOP_SIZE) including 0 and len(audio).

    Each chunk is at most ``max_chunk_s`` long; a cut is placed at the quietest frame within the last
    ``search_s`` seconds before that limit, so cuts fall in pauses between phrases whenever there are any.
    """
    n = audio.shape[0]
    max_len = max(int(max_chunk_s * SAMPLE_RATE) // HOP_SIZE, 4) * HOP_SIZE
    if n <= max_len:
        return [0, n]
    level = frame_rms_db(audio)
    search = max(int(search_s * SAMPLE_RATE) // HOP_SIZE, 1)
    cuts, start = [0], 0
    while n - start > max_len:
        hi = (start + max_len) // HOP_SIZE
        lo = max(start // HOP_SIZE + 1, hi - search)
        frame = lo + int(np.argmin(level[lo:hi + 1]))
        start = frame * HOP_SIZE
        cuts.append(start)
    cuts.append(n)
    return cuts


def crossfade_weights(length: int, fade: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """(length,) weights: 0 -> 1 over the first ``fade`` samples (sin^2), 1 -> 0 over the last (cos^2)."""
    w = np.ones(length, dtype=np.float64)
    if fade > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
        if fade_in:
            w[:fade] *= ramp
        if fade_out:
            w[-fade:] *= ramp[::-1]
    return w


def convert_in_chunks(audio: np.ndarray, convert: Callable[[np.ndarray, int], np.ndarray], cuts: list[int],
                      context: int = 16 * HOP_SIZE, fade: int = 8 * HOP_SIZE) -> np.ndarray:
    """Apply ``convert(segment, start_sample) -> same-length output`` chunk by chunk and join with crossfades.

    Chunk i covers cuts[i]..cuts[i+1]; it is converted with ``context`` extra samples each side (start kept on a
    HOP_SIZE multiple so frame features align with the whole-file grid) and contributes over
    cuts[i] - fade/2 .. cuts[i+1] + fade/2.  Returns (n,) float32.
    """
    n = audio.shape[0]
    fade = min(fade, 2 * context) // 2 * 2
    half = fade // 2
    out = np.zeros(n, dtype=np.float64)
    for i in range(len(cuts) - 1):
        a, b = cuts[i], cuts[i + 1]
        lo = max(0, (a - context) // HOP_SIZE * HOP_SIZE)
        hi = min(n, b + context)
        y = np.asarray(convert(audio[lo:hi], lo), dtype=np.float64)
        first, last = i == 0, i == len(cuts) - 2
        s = a if first else a - half
        e = b if last else b + half
        w = crossfade_weights(e - s, fade, fade_in=not first, fade_out=not last)
        out[s:e] += w * y[s - lo:e - lo]
    return out.astype(np.float32)
