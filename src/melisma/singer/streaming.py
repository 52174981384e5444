"""Long files converted in the memory of one chunk, by either engine (torch ``Voice`` or ``OnnxVoice``).

``convert_file(voice, src, dst)`` decodes ``src`` block by block to a 44.1 kHz float32 scratch file beside ``dst``,
computes the frame levels block by block, cuts where ``plan_cuts`` would (``cuts_from_level``), and converts each
chunk (with ``crossfaded_pieces``' context) through the voice's own ``convert_detailed``; the crossfaded output is
resampled and written as it comes (an atomic temporary file, renamed at the end). Peak memory does not grow with
the input's length (``benchmarks/speed.py`` measures it for an hour).

Differences from converting the whole array at once: each chunk's F0 is tracked on the chunk and its context
rather than on the whole file (the trackers are local: the same F0 away from the first and last context frames),
chunk k draws its noise from ``seed + k``, and ``auto_transpose`` takes the median F0 of a first, pitch-only pass.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE, WIN_SIZE
from melisma.errors import AudioInputError
from melisma.features.loudness import frame_rms_db
from melisma.singer.chunking import crossfaded_pieces, cuts_from_level

STREAM_ABOVE_S = 600.0  # the CLI streams inputs longer than this; shorter ones are converted in memory
LEVEL_BLOCK_FRAMES = 1 << 15  # frames of level computed at a time (about 6 minutes)


def convert_file(voice: Any, src: str | os.PathLike, dst: str | os.PathLike, *, transpose: float = 0.0,
                 auto_transpose: bool = False, singer: str | dict | None = None, output_sr: int | None = None,
                 max_chunk_s: float = 30.0, seed: int = 0, **options: Any) -> float:
    """Convert the audio file ``src`` into the audio file ``dst``; returns the transposition applied (semitones).
    ``voice``: anything with ``convert_detailed`` and ``transpose_for`` (both engines); ``options``
    (steps, sampler, f0) go to ``convert_detailed`` unchanged."""
    from melisma.atomic import atomic_path
    from melisma.audio.io import check_output_rate, probe_audio

    info = probe_audio(src)
    out_sr = int(output_sr or SAMPLE_RATE)
    check_output_rate(dst, out_sr)
    with tempfile.TemporaryDirectory(prefix=".melisma-stream.", dir=Path(dst).parent) as scratch:
        raw = Path(scratch) / "input.f32"
        n = decode_to_raw(info, raw)
        read = raw_reader(raw)
        cuts = cuts_from_level(block_levels(read, n), n, max_chunk_s)
        shift = transpose
        if auto_transpose:
            shift = voice.transpose_for(_pitch_pass(voice, read, cuts), transpose, True, singer)
        counter = iter(range(len(cuts)))

        def one_chunk(segment: np.ndarray, start: int) -> np.ndarray:
            return voice.convert_detailed(segment, SAMPLE_RATE, transpose=shift, singer=singer,
                                          max_chunk_s=max_chunk_s + 2.0, seed=seed + next(counter),
                                          **options).audio

        want = int(round(info.frames * out_sr / info.sample_rate))
        with atomic_path(dst) as tmp:
            write_stream(tmp, Path(dst).suffix, crossfaded_pieces(n, read, one_chunk, cuts), out_sr, want)
    return float(shift)


def decode_to_raw(info: Any, raw: Path) -> int:
    """Decode the file of ``info`` to mono float32 at SAMPLE_RATE in the headerless file ``raw``; -> samples."""
    import soxr

    from melisma.audio.io import mono_blocks

    resampler = None if info.sample_rate == SAMPLE_RATE else soxr.ResampleStream(
        info.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    n = 0
    with open(raw, "wb") as f:
        for block, last in _with_last(mono_blocks(info)):
            if not np.isfinite(block).all():
                raise AudioInputError(f"{info.path}: contains NaN or infinite samples")
            y = block if resampler is None else resampler.resample_chunk(block, last=last)
            f.write(np.ascontiguousarray(y, dtype=np.float32).tobytes())
            n += y.size
    if n < HOP_SIZE:
        raise AudioInputError(f"{info.path}: too short to convert")
    return n


def _with_last(blocks: Any) -> Any:
    """(block, is_last) pairs of an iterator of blocks."""
    previous = None
    for block in blocks:
        if previous is not None:
            yield previous, False
        previous = block
    if previous is not None:
        yield previous, True


def raw_reader(raw: Path) -> Any:
    """``read(lo, hi)`` -> float32 samples lo..hi of the headerless float32 file ``raw`` (a fresh array: reading
    does not keep the file's pages in this process's memory, as a memory map would)."""
    def read(lo: int, hi: int) -> np.ndarray:
        return np.fromfile(raw, dtype=np.float32, count=max(hi - lo, 0), offset=4 * lo)

    return read


def block_levels(read: Any, n: int) -> np.ndarray:
    """``frame_rms_db`` of all n samples, LEVEL_BLOCK_FRAMES frames at a time (the same values: each block is read
    with the half window either side that its frames need)."""
    total = n // HOP_SIZE + 1
    margin = WIN_SIZE // 2 // HOP_SIZE  # frames of context whose windows reach into the block
    parts = []
    for f0 in range(0, total, LEVEL_BLOCK_FRAMES):
        f1 = min(total, f0 + LEVEL_BLOCK_FRAMES)
        lo = max(0, (f0 - margin) * HOP_SIZE)
        hi = min(n, (f1 - 1 + margin) * HOP_SIZE + 1)
        level = frame_rms_db(read(lo, hi))
        first = f0 - lo // HOP_SIZE
        parts.append(level[first:first + f1 - f0])
    return np.concatenate(parts)


def _pitch_pass(voice: Any, read: Any, cuts: list[int]) -> np.ndarray:
    """The model F0 of every chunk (its own frames only), concatenated: what auto-transposition takes the median of."""
    f0 = [voice.features.f0(read(a, b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return np.concatenate(f0)


def write_stream(path: Path, suffix: str, pieces: Any, out_sr: int, want: int) -> None:
    """Write float32 pieces at SAMPLE_RATE to ``path`` (format from ``suffix``) at ``out_sr``, exactly ``want``
    samples (cut or padded with silence at the end), clipped to [-1, 1]."""
    import soundfile as sf
    import soxr

    fmt = suffix.lstrip(".").upper() or "WAV"
    resampler = None if out_sr == SAMPLE_RATE else soxr.ResampleStream(SAMPLE_RATE, out_sr, 1, dtype="float32")
    written = 0
    with sf.SoundFile(str(path), "w", out_sr, 1, format=fmt) as f:
        for piece, last in _with_last(pieces):
            y = piece if resampler is None else resampler.resample_chunk(piece, last=last)
            if not np.isfinite(y).all():
                raise AudioInputError(f"{path}: refusing to write audio with NaN or infinite samples")
            y = np.clip(y[: max(want - written, 0)], -1.0, 1.0)
            f.write(y)
            written += y.size
        if written < want:
            f.write(np.zeros(want - written, dtype=np.float32))
