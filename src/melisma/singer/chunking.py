"""Long audio in chunks: cut at the quietest frames, convert each chunk with context on both sides, and join the
chunks with complementary raised-cosine crossfades centred on the cuts (weights sum to 1: no seams, no gaps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.features.loudness import frame_rms_db


def plan_cuts(audio: np.ndarray, max_chunk_s: float = 30.0, search_s: float = 5.0) -> list[int]:
    """Cut points (sample indices, multiples of HOP_SIZE) including 0 and len(audio).

    Each chunk is at most ``max_chunk_s`` long; a cut is placed at the quietest frame within the last
    ``search_s`` seconds before that limit, so cuts fall in pauses between phrases whenever there are any.
    """
    n = audio.shape[0]
    if n <= _max_len(max_chunk_s):
        return [0, n]
    return cuts_from_level(frame_rms_db(audio), n, max_chunk_s, search_s)


def _max_len(max_chunk_s: float) -> int:
    return max(int(max_chunk_s * SAMPLE_RATE) // HOP_SIZE, 4) * HOP_SIZE


def cuts_from_level(level: np.ndarray, n: int, max_chunk_s: float = 30.0, search_s: float = 5.0) -> list[int]:
    """``plan_cuts`` given the (n // HOP_SIZE + 1,) frame levels (``frame_rms_db``) of n samples."""
    max_len = _max_len(max_chunk_s)
    # at most half a chunk back: a cut right after the previous one would leave a chunk shorter than its crossfade
    search = max(min(int(search_s * SAMPLE_RATE) // HOP_SIZE, max_len // HOP_SIZE // 2), 1)
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
    pieces = crossfaded_pieces(audio.shape[0], lambda lo, hi: audio[lo:hi], convert, cuts, context, fade)
    return np.concatenate(list(pieces)).astype(np.float32)


def crossfaded_pieces(n: int, read: Callable[[int, int], np.ndarray], convert: Callable[[np.ndarray, int], np.ndarray],
                      cuts: list[int], context: int = 16 * HOP_SIZE, fade: int = 8 * HOP_SIZE) -> Iterator[np.ndarray]:
    """``convert_in_chunks`` as a stream: the joined output of (n,) audio, whose samples lo..hi ``read(lo, hi)``
    gives, in consecutive float32 pieces, each yielded as soon as no later chunk adds to it (so an hour-long input
    is converted in the memory of one chunk)."""
    fade = min(fade, 2 * context) // 2 * 2
    half = fade // 2
    tail = np.zeros(0, dtype=np.float64)  # the part of the output the next chunk still adds to
    for i in range(len(cuts) - 1):
        a, b = cuts[i], cuts[i + 1]
        lo = max(0, (a - context) // HOP_SIZE * HOP_SIZE)
        hi = min(n, b + context)
        y = np.asarray(convert(read(lo, hi), lo), dtype=np.float64)
        first, last = i == 0, i == len(cuts) - 2
        s = a if first else a - half
        e = b if last else b + half
        piece = crossfade_weights(e - s, fade, fade_in=not first, fade_out=not last) * y[s - lo:e - lo]
        piece[:tail.size] += tail
        keep = 0 if last else fade
        tail = piece[piece.size - keep:]
        yield piece[:piece.size - keep].astype(np.float32)
