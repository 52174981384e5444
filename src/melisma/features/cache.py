"""Frame features of a clip on one grid, and a per-clip cache that is reused until settings change.

``extract_features(audio, sr, pitch="dio")`` returns, for a clip of n samples at ``sr`` and
T = ``grid_frames(n, sr)`` (= n // 512 + 1 at 44.1 kHz, 86.13 frames/s):

- ``f0``       (T,)      float32, Hz, 0 = unvoiced (``melisma.features.pitch``)
- ``loudness`` (T,)      float32, dBFS per frame, A-weighted by default (``melisma.features.loudness``)
- ``mel``      (128, T)  float32, natural-log mel with the project STFT (``melisma.features.mel``)

``FeatureCache(cache_dir, pitch=...)`` stores them per clip as ``<stem>-<pathhash>.safetensors`` with
metadata: the cache format version, and a key hashed from the clip's content, the extractor settings
and ``FEATURE_VERSION``.  A matching key is reused; any change recomputes and replaces the file.
Files are written atomically (temp file + rename), so an interrupted run never leaves a bad entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from melisma.atomic import atomic_path
from melisma.audio.constants import SAMPLE_RATE
from melisma.features.pitch import PitchExtractor, get_pitch_extractor, grid_frames

FEATURE_VERSION = 1  # bump whenever extraction code changes its output: every cache entry is recomputed
CACHE_FORMAT = "melisma-features"
CACHE_FORMAT_VERSION = "1"
FEATURE_NAMES = ("f0", "loudness", "mel")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad the last axis of ``x`` to ``n`` frames (resampler rounding can differ by one)."""
    if x.shape[-1] >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad, mode="edge")


def extract_features(
    audio: np.ndarray,
    sr: int,
    pitch: str | PitchExtractor = "dio",
    loudness: str = "A",
    **pitch_opts: Any,
) -> dict[str, np.ndarray]:
    """(n,) mono waveform at ``sr`` -> {"f0": (T,) Hz, "loudness": (T,) dBFS, "mel": (128, T) log-mel}.

    ``pitch`` is a method name (``pitch_opts`` go to its constructor) or a ready PitchExtractor;
    ``loudness`` is "A" (A-weighted) or "rms".  Mel and loudness are computed at 44.1 kHz.
    """
    from melisma.features.loudness import frame_loudness_db
    from melisma.features.mel import log_mel

    extractor = pitch if isinstance(pitch, PitchExtractor) else get_pitch_extractor(pitch, **pitch_opts)
    x = np.asarray(audio, dtype=np.float32)
    f0 = extractor.extract(x, sr)
    n = grid_frames(x.size, sr)
    x44 = x if sr == SAMPLE_RATE else soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    mel = log_mel(x44)[0].numpy()
    return {
        "f0": f0.astype(np.float32),
        "loudness": _fit_length(frame_loudness_db(x44, loudness), n).astype(np.float32),
        "mel": _fit_length(mel, n).astype(np.float32),
    }


def file_digest(path: Path) -> str:
    """BLAKE2b hex digest of a file's bytes (identity of a clip, robust to copies and touched mtimes)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """Per-clip feature files in ``cache_dir``; ``get(path)`` loads or computes. ``hits``/``misses`` count calls."""

    def __init__(self, cache_dir: str | os.PathLike, pitch: str = "dio", loudness: str = "A",
                 **pitch_opts: Any) -> None:
        self.cache_dir = Path(cache_dir)
        self.extractor = get_pitch_extractor(pitch, **pitch_opts)
        self.loudness = loudness
        self.hits = 0
        self.misses = 0

    def settings(self) -> dict[str, Any]:
        """Everything besides the audio that determines the features."""
        return {"pitch": self.extractor.settings(), "loudness": self.loudness, "feature_version": FEATURE_VERSION}

    def key(self, audio_path: Path) -> str:
        blob = json.dumps({"audio": file_digest(audio_path), **self.settings()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def entry_path(self, audio_path: str | os.PathLike) -> Path:
        """Cache file of a clip: named after its stem plus a hash of its absolute path (no collisions)."""
        p = Path(audio_path).resolve()
        return self.cache_dir / f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:10]}.safetensors"

    def get(self, audio_path: str | os.PathLike) -> dict[str, np.ndarray]:
        """Features of the clip at ``audio_path`` (see ``extract_features``), from the cache when still valid."""
        from melisma.audio.io import load_audio

        src = Path(audio_path)
        key = self.key(src)
        entry = self.entry_path(src)
        cached = read_entry(entry, key)
        if cached is not None:
            self.hits += 1
            return cached
        audio, sr = load_audio(src, None)
        feats = extract_features(audio, sr, self.extractor, self.loudness)
        write_entry(entry, feats, key, self.settings())
        self.misses += 1
        return feats


def read_entry(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The features stored at ``path`` if it exists, is readable and carries ``key``; otherwise None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT or meta.get("format_version") != CACHE_FORMAT_VERSION:
                return None
            if meta.get("key") != key:
                return None
            return {name: f.get_tensor(name) for name in FEATURE_NAMES}
    except Exception:  # a truncated or foreign file is simply recomputed
        return None


def write_entry(path: Path, feats: dict[str, np.ndarray], key: str, settings: dict[str, Any]) -> None:
    """Write ``feats`` to ``path`` atomically with the cache metadata."""
    from safetensors.numpy import save_file

    meta = {"format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION, "key": key,
            "settings": json.dumps(settings, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in feats.items()}, str(tmp), metadata=meta)


def find_audio_files(root: str | os.PathLike, exclude: Path | None = None) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted), skipping anything inside ``exclude``."""
    root = Path(root)
    skip = exclude.resolve() if exclude is not None else None
    found = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            if skip is not None and skip in p.resolve().parents:
                continue
            found.append(p)
    return found


def iter_dataset_features(
    dataset_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None, pitch: str = "dio", **opts: Any
) -> Iterator[tuple[Path, dict[str, np.ndarray]]]:
    """(clip path, features) for every audio file of a dataset, cached in ``cache_dir`` (default DATASET/cache)."""
    cache = FeatureCache(cache_dir or Path(dataset_dir) / "cache", pitch=pitch, **opts)
    for clip in find_audio_files(dataset_dir, exclude=cache.cache_dir):
        yield clip, cache.get(clip)
