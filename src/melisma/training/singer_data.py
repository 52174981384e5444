"""Training data for the singer model: clips -> frame features in memory, random overlapping segments with
augmentation (input-side pitch shift of the content, loudness jitter).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE, n_frames
from melisma.errors import MelismaError
from melisma.features.loudness import frame_rms_db
from melisma.features.mel import log_mel
from melisma.singer.convert import extract_f0
from melisma.singer.convert import fit_frames as _fit_frames
from melisma.singer.model import MEL_MAX, MEL_MIN, normalise_mel

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a", ".opus"}
MAX_CLIP_S = 20.0  # longer files are split so feature extraction stays light on memory


@dataclass
class ClipFeatures:
    """One clip on the shared frame grid: mel (M, T) normalised, content (V, C, T) for V input-side pitch
    variants (variant 0 = original), f0 (T,) Hz, loudness (T,) dBFS, singer index."""

    mel: torch.Tensor
    content: torch.Tensor
    f0: torch.Tensor
    loudness: torch.Tensor
    singer: int

    @property
    def frames(self) -> int:
        return int(self.mel.shape[-1])


def parse_dataset_arg(arg: str) -> tuple[str, Path]:
    """``DIR`` or ``NAME=DIR`` -> (singer name, folder). The name defaults to the folder's name."""
    name, sep, path = arg.partition("=")
    if not sep:
        name, path = "", arg
    p = Path(path).expanduser()
    if not p.is_dir():
        raise MelismaError(f"{p}: dataset folder not found")
    return (name or p.resolve().name), p


def list_clips(dataset: Path) -> list[Path]:
    """Audio files of a dataset: those named by ``manifest.json`` (melisma prepare) or every audio file below."""
    manifest = dataset / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            paths = [dataset / c["path"] for c in data["clips"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise MelismaError(f"{manifest}: unreadable manifest ({exc})") from None
    else:
        paths = sorted(p for p in dataset.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not paths:
        raise MelismaError(f"{dataset}: no audio clips found")
    return paths


def shifted_content(encoder: torch.nn.Module, audio: np.ndarray, semitones: float) -> torch.Tensor:
    """Content of ``audio`` pitch(-and-formant) shifted by ``semitones`` (resampling), back on the original grid."""
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    y = soxr.resample(audio, SAMPLE_RATE * ratio, SAMPLE_RATE).astype(np.float32) if semitones else audio
    with torch.no_grad():
        c = encoder(torch.from_numpy(y)[None])
    t = n_frames(audio.shape[0])
    return torch.nn.functional.interpolate(c, size=t, mode="linear", align_corners=False)[0]


def clip_features(encoder: torch.nn.Module, audio: np.ndarray, singer: int, shifts: list[float],
                  f0_method: str = "dio") -> ClipFeatures:
    """(n,) audio at SAMPLE_RATE -> ClipFeatures with content variants for ``shifts`` (0 first)."""
    t = n_frames(audio.shape[0])
    mel = normalise_mel(log_mel(audio)[0])
    content = torch.stack([shifted_content(encoder, audio, s) for s in [0.0, *shifts]])
    f0 = torch.from_numpy(_fit_frames(extract_f0(audio, f0_method), t))
    loud = torch.from_numpy(frame_rms_db(audio))
    return ClipFeatures(mel, content, f0, loud, singer)


def load_dataset(datasets: list[tuple[str, Path]], encoder: torch.nn.Module, shifts: list[float],
                 f0_method: str = "dio", progress: bool = True) -> list[ClipFeatures]:
    """Features of every clip of every dataset (singer i = datasets[i]); long files split into pieces."""
    from melisma.audio.io import load_audio
    from melisma.progress import track

    jobs = [(i, p) for i, (_, d) in enumerate(datasets) for p in list_clips(d)]
    items = track(jobs, "features") if progress else jobs
    out = []
    for singer, path in items:
        audio, _ = load_audio(path, SAMPLE_RATE)
        step = int(MAX_CLIP_S * SAMPLE_RATE)
        for start in range(0, audio.shape[0], step):
            piece = audio[start:start + step]
            if piece.shape[0] >= 8 * HOP_SIZE:
                out.append(clip_features(encoder, piece, singer, shifts, f0_method))
    if not out:
        raise MelismaError("the datasets hold no clip longer than 0.1 s")
    return out


@dataclass
class Batch:
    """mel (B, M, T), content (B, C, T), f0 (B, T), loudness (B, T), singers (B,), mask (B, 1, T)."""

    mel: torch.Tensor
    content: torch.Tensor
    f0: torch.Tensor
    loudness: torch.Tensor
    singers: torch.Tensor
    mask: torch.Tensor


def sample_batch(clips: list[ClipFeatures], batch: int, frames: int, gen: torch.Generator,
                 loud_jitter_db: float = 0.0, augment: bool = True) -> Batch:
    """Random overlapping segments of ``frames`` frames (clips chosen in proportion to length), augmented."""
    lengths = torch.tensor([c.frames for c in clips], dtype=torch.float64)
    picks = torch.multinomial(lengths, batch, replacement=True, generator=gen).tolist()
    parts = [_segment(clips[i], frames, gen, loud_jitter_db if augment else 0.0, augment) for i in picks]
    return Batch(*(torch.stack(z) for z in zip(*parts, strict=True)))


def _segment(clip: ClipFeatures, frames: int, gen: torch.Generator, jitter_db: float, augment: bool):
    start = int(torch.randint(0, max(1, clip.frames - frames + 1), (1,), generator=gen))
    sl = slice(start, start + frames)
    variant = int(torch.randint(0, clip.content.shape[0], (1,), generator=gen)) if augment else 0
    mel, content = clip.mel[:, sl], clip.content[variant][:, sl]
    f0, loud = clip.f0[sl], clip.loudness[sl]
    if jitter_db:
        gain_db = float(torch.empty(1).uniform_(-jitter_db, jitter_db, generator=gen))
        # a gain g moves log-mel by ln g and loudness by g dB; keep the (normalised) mel consistent with it
        mel = mel + gain_db * math.log(10.0) / 20.0 * 2.0 / (MEL_MAX - MEL_MIN)
        loud = loud + gain_db
    n = mel.shape[-1]
    mask = torch.zeros(1, frames)
    mask[:, :n] = 1.0
    pad = frames - n
    return (torch.nn.functional.pad(mel, (0, pad), value=-1.0), torch.nn.functional.pad(content, (0, pad)),
            torch.nn.functional.pad(f0, (0, pad)), torch.nn.functional.pad(loud, (0, pad), value=-100.0),
            torch.tensor(clip.singer), mask)
