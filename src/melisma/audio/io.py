"""Decode any common audio file to mono float32 at a chosen rate; write audio atomically.

Decoding goes through libsndfile (soundfile: wav, flac, ogg, mp3, aiff...).  Every failure becomes an
``AudioInputError`` with one line that names the file, so the CLI never shows a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from melisma.atomic import atomic_path
from melisma.audio.constants import SAMPLE_RATE
from melisma.errors import AudioInputError

MIN_RATE = 8_000
MAX_RATE = 384_000
# what melisma reads as audio when it expands a folder (prepare, train, convert, features)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".opus", ".m4a"})
# output rates each format can hold: MPEG audio has nine; libsndfile's Vorbis encoder crashes the process
# (segfault, not an error) above 200 kHz, so ogg stops at 192 kHz; wav and flac take any rate melisma reads
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_OGG_RATE = 192_000
MAX_CHANNELS = 64  # more is not a recording melisma can mix down meaningfully (and bounds a block's memory)
BLOCK_SAMPLES = 1 << 22  # samples (frames x channels) decoded at a time: a long file never needs a full copy


def audio_files_below(folder: Path, recursive: bool = True) -> list[Path]:
    """Audio files in ``folder`` (by suffix, sorted; below it too when ``recursive``), hidden paths left out."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(f for f in found if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` without decoding it. Raises AudioInputError on anything unusable."""
    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"{p}: no such file")
    if p.is_dir():
        raise AudioInputError(f"{p}: is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioInputError(f"{p}: file is empty")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile reports every format problem as a generic error
        raise AudioInputError(f"{p}: not a readable audio file ({_short(exc)})") from None
    if info.frames <= 0:
        raise AudioInputError(f"{p}: contains no audio samples")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioInputError(f"{p}: {info.channels} channels; melisma reads 1-{MAX_CHANNELS}")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioInputError(f"{p}: sample rate {info.samplerate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    return AudioInfo(p, int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = SAMPLE_RATE,
    *,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 in [-1, 1].

    Returns ``(audio, sr)``: audio of shape (n_samples,), sr = ``sample_rate`` (resampled with soxr),
    or the file's own rate when ``sample_rate`` is None.  ``start``/``duration`` (seconds) read a window.
    Non-finite samples are rejected: they poison every later stage.
    """
    info = probe_audio(path)
    first = int(round(start * info.sample_rate))
    count = -1 if duration is None else int(round(duration * info.sample_rate))
    try:
        mono = _decode_mono(info, first, count)
    except AudioInputError:
        raise
    except Exception as exc:
        raise AudioInputError(f"{info.path}: decoding failed, file may be truncated ({_short(exc)})") from None
    if mono.size == 0:
        raise AudioInputError(f"{info.path}: contains no audio samples")
    if not np.isfinite(mono).all():
        raise AudioInputError(f"{info.path}: contains NaN or infinite samples")
    sr = info.sample_rate if sample_rate is None else int(sample_rate)
    if sr != info.sample_rate:
        mono = soxr.resample(mono, info.sample_rate, sr, quality="HQ").astype(np.float32)
    return mono, sr


def _decode_mono(info: AudioInfo, first: int, count: int) -> np.ndarray:
    """Average channels block by block so an hour of 8-channel audio costs one mono copy."""
    parts = list(mono_blocks(info, first, count))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def mono_blocks(info: AudioInfo, first: int = 0, count: int = -1) -> Iterator[np.ndarray]:
    """The file of ``info`` from frame ``first`` (``count`` frames, -1: to the end) as consecutive float32 mono
    blocks at the file's own rate, about BLOCK_SAMPLES samples decoded at a time."""
    with sf.SoundFile(str(info.path)) as f:
        f.seek(first)
        remaining = count if count >= 0 else info.frames - first
        block_frames = max(1, BLOCK_SAMPLES // info.channels)
        while remaining > 0:
            block = f.read(min(block_frames, remaining), dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            yield block.mean(axis=1, dtype=np.float32)
            remaining -= block.shape[0]


def save_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write ``audio`` ((n,) or (n, channels)) atomically: a temporary file in the same folder, then rename.

    The format follows the suffix (.wav, .flac, .ogg, .mp3).  A failed write leaves nothing behind.
    """
    p = Path(path)
    fmt = p.suffix.lstrip(".").upper() or "WAV"
    if fmt not in sf.available_formats():
        raise AudioInputError(f"{p}: unsupported output format '{p.suffix}' (use .wav, .flac, .ogg or .mp3)")
    check_output_rate(p, sample_rate)
    data = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(data).all():
        raise AudioInputError(f"{p}: refusing to write audio with NaN or infinite samples")
    with atomic_path(p) as tmp:
        sf.write(tmp, np.clip(data, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    return p


def check_output_rate(path: str | os.PathLike, sample_rate: int) -> None:
    """Raise AudioInputError unless a file of ``path``'s format (by suffix) can be written at ``sample_rate``
    Hz; called before a conversion starts, and by ``save_audio`` itself."""
    fmt = Path(path).suffix.lstrip(".").lower() or "wav"
    if fmt == "mp3":
        ok, allowed = sample_rate in MP3_RATES, ", ".join(str(r) for r in MP3_RATES)
    else:
        top = MAX_OGG_RATE if fmt in ("ogg", "oga", "opus") else MAX_RATE
        ok, allowed = MIN_RATE <= sample_rate <= top, f"{MIN_RATE}-{top}"
    if not ok:
        raise AudioInputError(f"{path}: a .{fmt} file cannot be written at {sample_rate} Hz (allowed: {allowed})")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:160] if text else type(exc).__name__
