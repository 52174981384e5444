"""Cut a vocal track into clips on silence, the way Audio Slicer (openvpi) does, on a 10 ms RMS envelope.

1. A frame is silent when its RMS level is below ``threshold_db`` (relative to the track's loud level,
   so a quietly recorded song slices the same as a loud one).
2. Every silent run of at least ``min_silence_s`` splits the track; up to ``keep_silence_s`` of the
   silence stays on each side of the cut (leading/trailing silence is trimmed to that too).
3. Neighbouring pieces are merged while a piece is shorter than ``min_length_s`` and the merge stays
   under ``max_length_s``.
4. Pieces longer than ``max_length_s`` are split into equal windows that overlap by ``overlap_s``.

Everything works on the envelope (one float per 10 ms), so an hour of audio costs a few MB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from melisma.audio.constants import SAMPLE_RATE

ENVELOPE_HOP = SAMPLE_RATE // 100  # 441 samples = 10 ms per envelope frame
LOUD_PERCENTILE = 95.0  # the track's "loud level": 95th percentile of frame RMS dB
MAX_MERGE_GAP = 100  # frames (1 s): never merge across a longer silence
LOUD_REFERENCE_DB = -20.0  # threshold_db is relative to a track whose loud level sits here


@dataclass(frozen=True)
class SliceSettings:
    threshold_db: float = -40.0  # dB, silence below this (for a track whose loud level is -20 dBFS)
    min_length_s: float = 5.0  # merge pieces shorter than this with a neighbour when possible
    min_silence_s: float = 0.3  # shortest silence that may split
    keep_silence_s: float = 0.25  # silence kept at each side of a cut
    max_length_s: float = 30.0  # longer pieces are split with overlap
    overlap_s: float = 1.0  # overlap between the windows of a split piece


def envelope_db(audio: np.ndarray) -> np.ndarray:
    """(n,) mono at SAMPLE_RATE -> (ceil(n / 441),) RMS level in dBFS of consecutive 10 ms frames."""
    x = np.asarray(audio, dtype=np.float64)
    n = int(math.ceil(x.size / ENVELOPE_HOP))
    padded = np.zeros(n * ENVELOPE_HOP)
    padded[: x.size] = x
    power = (padded.reshape(n, ENVELOPE_HOP) ** 2).mean(axis=1)
    return (10.0 * np.log10(np.maximum(power, 1e-12))).astype(np.float32)


def absolute_threshold(env_db: np.ndarray, threshold_db: float) -> float:
    """The silence threshold in dBFS for this track: ``threshold_db`` shifted by its loud level."""
    audible = env_db[env_db > -100.0]
    if audible.size == 0:
        return threshold_db
    loud = float(np.percentile(audible, LOUD_PERCENTILE))
    return threshold_db + (loud - LOUD_REFERENCE_DB)


def slice_envelope(env_db: np.ndarray, settings: SliceSettings = SliceSettings()) -> list[tuple[int, int]]:
    """10 ms envelope (dBFS) -> list of ``(start, end)`` in samples at SAMPLE_RATE, in order, may overlap."""
    silent = env_db < absolute_threshold(env_db, settings.threshold_db)
    pieces = _sound_pieces(silent, settings)
    pieces = _merge_short(pieces, settings)
    frames_per_s = SAMPLE_RATE / ENVELOPE_HOP
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        for s, e in split_long(a, b, round(settings.max_length_s * frames_per_s),
                               round(settings.overlap_s * frames_per_s)):
            out.append((s * ENVELOPE_HOP, e * ENVELOPE_HOP))
    return out


def _silent_runs(silent: np.ndarray) -> list[tuple[int, int]]:
    """Boolean frames -> ``(start, end)`` frame ranges of consecutive True values."""
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _sound_pieces(silent: np.ndarray, s: SliceSettings) -> list[tuple[int, int]]:
    """Frame ranges of sound between long silences, each keeping up to ``keep_silence_s`` of silence."""
    n = silent.size
    min_sil = max(1, round(s.min_silence_s * 100))
    keep = round(s.keep_silence_s * 100)
    pieces: list[tuple[int, int]] = []
    start = 0
    for a, b in _silent_runs(silent):
        if a == 0 or b == n or b - a >= min_sil:
            mid = (a + b) // 2  # a silence shorter than twice `keep` is shared at its middle
            end = min(a + keep, mid) if a > 0 else 0
            if end > start and not silent[start:end].all():
                pieces.append((start, end))
            start = max(b - keep, mid) if b < n else n
    if start < n and not silent[start:].all():
        pieces.append((start, n))
    return pieces


def _merge_short(pieces: list[tuple[int, int]], s: SliceSettings) -> list[tuple[int, int]]:
    """Join a piece with the next while it is shorter than min_length and the join fits max_length."""
    min_len, max_len = s.min_length_s * 100, s.max_length_s * 100
    merged: list[tuple[int, int]] = []
    for a, b in pieces:
        if merged:
            pa, pb = merged[-1]
            if (pb - pa < min_len or b - a < min_len) and b - pa <= max_len and a - pb <= MAX_MERGE_GAP:
                merged[-1] = (pa, b)
                continue
        merged.append((a, b))
    return merged


def split_long(start: int, end: int, max_len: int, overlap: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into the fewest equal windows of length <= ``max_len`` overlapping by ``overlap``."""
    length = end - start
    if length <= max_len:
        return [(start, end)]
    count = math.ceil((length - overlap) / (max_len - overlap))
    step = (length - overlap) / count
    return [(start + round(i * step), min(end, start + round((i + 1) * step) + overlap)) for i in range(count)]
