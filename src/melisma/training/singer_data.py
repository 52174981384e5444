"""Training data for the singer model: a dataset's clips -> their cached frame features
(``melisma.features.cache``, filled by ``melisma features`` or by the first ``melisma train``), then random
overlapping segments with augmentation (input-side pitch-shift variants of the content, loudness jitter).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from melisma.audio.io import audio_files_below
from melisma.errors import MelismaError
from melisma.features.cache import FeatureCache
from melisma.features.extractor import FeatureExtractor, Features
from melisma.singer.model import MEL_MAX, MEL_MIN, normalise_mel

MIN_PIECE_FRAMES = 9  # pieces shorter than 8 hops (0.1 s) are not trained on
CACHE_FOLDER = "cache"  # a dataset's feature cache: DATASET/cache


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

    @classmethod
    def of(cls, feats: Features, singer: int) -> ClipFeatures:
        """Training tensors of a clip's Features (which must hold mel and content)."""
        if feats.mel is None or feats.content is None:
            raise ValueError("training features need mel and content")
        return cls(normalise_mel(torch.from_numpy(feats.mel)), torch.from_numpy(feats.content),
                   torch.from_numpy(feats.f0), torch.from_numpy(feats.loudness), singer)


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
    from melisma.prepare.manifest import MANIFEST, read_manifest

    manifest = dataset / MANIFEST
    if manifest.is_file():
        try:
            paths = [dataset / c["path"] for c in read_manifest(manifest)["clips"]]
        except (KeyError, TypeError) as exc:
            raise MelismaError(f"{manifest}: unreadable manifest ({exc})") from None
    else:
        paths = audio_files_below(dataset)
    if not paths:
        raise MelismaError(f"{dataset}: no audio clips found")
    return paths


def dataset_cache(dataset: Path, extractor: FeatureExtractor, fallback: Path | None = None) -> FeatureCache:
    """The feature cache of ``dataset``: DATASET/cache, or ``fallback`` when the dataset folder is read-only."""
    folder = dataset / CACHE_FOLDER
    writable = os.access(folder if folder.is_dir() else dataset, os.W_OK)
    if not writable and fallback is not None:
        folder = fallback
    return FeatureCache(folder, extractor)


def dataset_features(dataset: Path, cache: FeatureCache, progress: bool = True,
                     label: str = "features") -> Iterator[tuple[Path, list[Features]]]:
    """(clip, its pieces' Features) for every clip of ``dataset``, read from ``cache`` or computed into it."""
    from melisma.progress import track

    clips = list_clips(dataset)
    for path in track(clips, label) if progress else clips:
        yield path, cache.get(path)


def load_dataset(datasets: list[tuple[str, Path]], extractor: FeatureExtractor, progress: bool = True,
                 fallback_cache: Path | None = None, cache_root: Path | None = None
                 ) -> tuple[list[ClipFeatures], list[FeatureCache]]:
    """Training clips of every dataset (singer i = datasets[i]) and the caches they came from: DATASET/cache,
    or ``cache_root``/NAME when given (``fallback_cache``/NAME for a read-only dataset)."""
    out, caches = [], []
    for singer, (name, folder) in enumerate(datasets):
        if cache_root is not None:
            cache = FeatureCache(cache_root / name, extractor)
        else:
            cache = dataset_cache(folder, extractor, fallback_cache / name if fallback_cache else None)
        caches.append(cache)
        for _, pieces in dataset_features(folder, cache, progress):
            out += [ClipFeatures.of(p, singer) for p in pieces if p.frames >= MIN_PIECE_FRAMES]
    if not out:
        raise MelismaError("the datasets hold no clip longer than 0.1 s")
    return out, caches


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
