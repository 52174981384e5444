"""A per-clip feature cache: what ``melisma features`` fills and ``melisma train`` reads.

``FeatureCache(cache_dir, extractor)`` keeps, for each audio file, one ``<stem>-<pathhash>.safetensors`` holding
the ``Features`` (``melisma.features.extractor``) of each piece of the clip: files longer than ``max_piece_s`` are
cut into pieces of that length so extraction stays light on memory. The entry's metadata carries the cache
format version and a key hashed from the file's bytes and everything that changes a feature (the extractor's
``settings()``: pitch method and its settings, loudness kind, content-encoder identity, pitch-shift variants,
``FEATURE_VERSION``; and ``max_piece_s``). A matching key is reused; any change recomputes and replaces the
entry. Entries are written atomically, so an interrupted run never leaves a bad one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from melisma.atomic import atomic_path
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.features.extractor import FeatureExtractor, Features
from melisma.formats import is_current, stamp_metadata

MAX_PIECE_S = 20.0


def file_digest(path: Path) -> str:
    """BLAKE2b hex digest of a file's bytes (identity of a clip, robust to copies and touched mtimes)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """Per-clip feature files in ``cache_dir``; ``get(path)`` loads or computes. ``hits``/``misses`` count calls."""

    def __init__(self, cache_dir: str | os.PathLike, extractor: FeatureExtractor,
                 max_piece_s: float = MAX_PIECE_S) -> None:
        self.cache_dir = Path(cache_dir)
        self.extractor = extractor
        self.max_piece_s = float(max_piece_s)
        # taken once: the content identity hashes the encoder's weights, which a cache's lifetime does not change
        self._settings = {**extractor.settings(), "max_piece_s": self.max_piece_s}
        self.hits = 0
        self.misses = 0

    def settings(self) -> dict[str, Any]:
        """Everything besides the audio that determines an entry."""
        return self._settings

    def key(self, audio_path: Path) -> str:
        blob = json.dumps({"audio": file_digest(audio_path), **self.settings()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def entry_path(self, audio_path: str | os.PathLike) -> Path:
        """Cache file of a clip: named after its stem plus a hash of its absolute path (no collisions)."""
        p = Path(audio_path).resolve()
        return self.cache_dir / f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:10]}.safetensors"

    def get(self, audio_path: str | os.PathLike) -> list[Features]:
        """Features of each piece of the clip at ``audio_path`` (one piece unless it is longer than
        ``max_piece_s``), from the cache when still valid."""
        from melisma.audio.io import load_audio

        src = Path(audio_path)
        key = self.key(src)
        entry = self.entry_path(src)
        cached = read_entry(entry, key)
        if cached is not None:
            self.hits += 1
            return cached
        audio, _ = load_audio(src, SAMPLE_RATE)
        pieces = [self.extractor(piece) for piece in split_pieces(audio, self.max_piece_s)]
        write_entry(entry, pieces, key, self.settings())
        self.misses += 1
        return pieces


def split_pieces(audio: np.ndarray, max_piece_s: float) -> list[np.ndarray]:
    """(n,) audio at SAMPLE_RATE -> consecutive pieces of at most ``max_piece_s``; a last piece shorter than
    one frame hop is dropped (it holds no frame of its own)."""
    step = max(HOP_SIZE, int(max_piece_s * SAMPLE_RATE))
    pieces = [audio[s:s + step] for s in range(0, audio.shape[0], step)]
    return [p for i, p in enumerate(pieces) if i == 0 or p.shape[0] >= HOP_SIZE]


def read_entry(path: Path, key: str) -> list[Features] | None:
    """The pieces stored at ``path`` if it exists, is readable and carries ``key``; otherwise None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if not is_current(meta, "features") or meta.get("key") != key:
                return None
            names = set(f.keys())
            pieces = []
            for i in range(int(meta["pieces"])):
                fields = {k: f.get_tensor(f"{i}.{k}") for k in ("f0", "loudness", "mel", "content")
                          if f"{i}.{k}" in names}
                pieces.append(Features(**fields))
            return pieces
    except Exception:  # a truncated or foreign file is simply recomputed
        return None


def write_entry(path: Path, pieces: list[Features], key: str, settings: dict[str, Any]) -> None:
    """Write ``pieces`` to ``path`` atomically with the cache metadata."""
    from safetensors.numpy import save_file

    tensors = {f"{i}.{k}": np.ascontiguousarray(v) for i, p in enumerate(pieces) for k, v in p.arrays().items()}
    meta = {**stamp_metadata("features"), "key": key,
            "pieces": str(len(pieces)), "settings": json.dumps(settings, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
