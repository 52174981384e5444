"""Speech to singing with WORLD: the voice's spectral envelope and aperiodicity, a melody's pitch and timing.

harvest + cheaptrick + d4c analyse the spoken clip at 44.1 kHz on the shared frame grid; frames are
regrouped so each note starts on a voiced frame and its voiced frames stretch to the note's length
(unvoiced frames - consonants, pauses - keep their own length); the melody's F0 replaces the voice's on
voiced frames only; WORLD resynthesises. The imposed F0 is the clip's true F0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from melisma.audio.constants import FRAME_PERIOD_MS, FRAME_RATE, HOP_SIZE, SAMPLE_RATE
from melisma.corpus.melody import Expression, MelodyPlan, Note, f0_curve

SPEECH_F0_MIN, SPEECH_F0_MAX = 60.0, 800.0  # Hz, the range WORLD analyses the synthetic speech in

MARGIN_FRAMES = 8  # unvoiced frames kept before the first and after the last voiced frame


@dataclass
class WorldParams:
    f0: np.ndarray  # (T,) Hz, 0 = unvoiced
    sp: np.ndarray  # (T, 1025) spectral envelope (power)
    ap: np.ndarray  # (T, 1025) aperiodicity


@dataclass
class SungClip:
    audio: np.ndarray  # (n,) float32 at 44.1 kHz, n = (T - 1) * HOP_SIZE
    f0: np.ndarray  # (T,) float32 true F0 in Hz on the shared grid, 0 = unvoiced
    notes: list[Note]
    source_frames: np.ndarray  # (T,) int: the speech frame each output frame was made from (``time_map``)


def analyse(audio: np.ndarray, sr: int = SAMPLE_RATE) -> WorldParams:
    """WORLD analysis of (n,) audio at 44.1 kHz on the shared frame grid (n // 512 + 1 frames)."""
    import pyworld as pw

    from melisma.features.pitch import world_f0

    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = world_f0(x, sr, "harvest", refine=False, f0_min=SPEECH_F0_MIN, f0_max=SPEECH_F0_MAX)
    return WorldParams(f0, pw.cheaptrick(x, f0, t, sr), pw.d4c(x, f0, t, sr))


def _segment_map(voiced: np.ndarray, n_out: int) -> np.ndarray:
    """Source frame for each of ``n_out`` output frames: unvoiced frames keep length 1, voiced ones stretch."""
    u = int((~voiced).sum())
    v = int(voiced.sum())
    scale = (n_out - u) / v if v else 0.0
    w = np.where(voiced, scale, 1.0) if v and scale >= 0.35 else np.full(len(voiced), n_out / len(voiced))
    cum = np.concatenate([[0.0], np.cumsum(w)])
    pos = np.interp(np.arange(n_out) + 0.5, cum, np.arange(len(voiced) + 1))
    return np.minimum(pos.astype(int), len(voiced) - 1)


def time_map(voiced: np.ndarray, note_frames: list[int]) -> tuple[np.ndarray, int]:
    """Map output frames to source frames so note k begins on the first voiced frame of voiced group k.

    ``voiced``: (T,) bool of the speech; ``note_frames``: length of each note in frames.
    Returns (source index per output frame, output frame where the first note starts).
    """
    idx = np.flatnonzero(voiced)
    first, last = int(idx[0]), int(idx[-1])
    lead = max(0, first - MARGIN_FRAMES)
    tail_end = min(len(voiced), last + 1 + MARGIN_FRAMES)
    k = len(note_frames)
    bounds = [int(idx[int(round(i * len(idx) / k))]) for i in range(k)] + [last + 1]
    pieces = [np.arange(lead, first)]
    for i in range(k):
        seg = np.arange(bounds[i], bounds[i + 1])
        pieces.append(seg[_segment_map(voiced[seg], note_frames[i])])
    pieces.append(np.arange(last + 1, tail_end))
    return np.concatenate(pieces).astype(int), first - lead


def sing(
    params: WorldParams,
    plan: MelodyPlan,
    transpose: int,
    expr: Expression,
    sr: int = SAMPLE_RATE,
) -> SungClip:
    """Render ``plan`` (shifted by ``transpose`` semitones) with the voice in ``params``."""
    import pyworld as pw

    voiced = params.f0 > 0
    if voiced.sum() < len(plan.degrees) * 2:
        raise ValueError("too few voiced frames to sing this melody")
    rel = plan.notes(0.0, transpose)
    frame_s = FRAME_PERIOD_MS / 1000.0
    ends = np.round(np.array([n.start_s + n.dur_s for n in rel]) / frame_s).astype(int)
    note_frames = list(np.diff(np.concatenate([[0], ends])))
    src, onset = time_map(voiced, note_frames)
    notes = [Note(n.midi, round(n.start_s + onset * frame_s, 4), n.dur_s) for n in rel]
    f0 = np.where(voiced[src], f0_curve(notes, len(src), expr), 0.0)
    sp = np.ascontiguousarray(params.sp[src])
    ap = np.ascontiguousarray(params.ap[src])
    y = pw.synthesize(np.ascontiguousarray(f0), sp, ap, sr, FRAME_PERIOD_MS)
    n = (len(src) - 1) * HOP_SIZE
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    return SungClip(y.astype(np.float32), f0.astype(np.float32), notes, src.astype(np.int32))


def map_times(ends_s: Sequence[float], source_frames: np.ndarray) -> list[float]:
    """Times in the speech (seconds) -> times in the sung clip made through ``source_frames`` (``time_map``).

    A time t ends after every output frame whose source frame lies before t; the map is non-decreasing, so
    the result is too, within [0, len(source_frames) / FRAME_RATE].
    """
    src = np.asarray(source_frames)
    pos = np.searchsorted(src, np.asarray(ends_s, np.float64) * FRAME_RATE, side="left")
    return [round(float(p) / FRAME_RATE, 4) for p in pos]


def cents_accuracy(true_f0: np.ndarray, measured_f0: np.ndarray, tolerance: float = 50.0) -> tuple[float, int]:
    """Fraction of frames voiced in both where |1200 log2(measured/true)| <= tolerance; and that frame count."""
    n = min(len(true_f0), len(measured_f0))
    a, b = true_f0[:n], measured_f0[:n]
    both = (a > 0) & (b > 0)
    if not both.any():
        return 0.0, 0
    err = np.abs(1200.0 * np.log2(b[both] / a[both]))
    return float((err <= tolerance).mean()), int(both.sum())


def analyse_f0(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """harvest F0 (Hz, 0 = unvoiced) of (n,) audio on the shared grid: (n // 512 + 1,) float64."""
    from melisma.features.pitch import world_f0

    return world_f0(audio, sr, "harvest", refine=False, f0_min=SPEECH_F0_MIN, f0_max=SPEECH_F0_MAX)[0]
