"""On-disk corpus format: ``corpus.json`` plus FLAC audio and .npy true-F0 files, all paths relative.

corpus.json = {"format_version": 1, "sample_rate": 44100, "hop_size": 512, "target_lufs": -20.0,
               "clips": [ClipRecord as dict, ...]}
F0 files hold float32 (n // 512 + 1,) Hz for a clip of n samples, 0 = unvoiced.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from melisma.atomic import write_text_atomic
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE, TARGET_LUFS
from melisma.errors import MelismaError

FORMAT_VERSION = 1
MANIFEST = "corpus.json"


@dataclass
class ClipRecord:
    """One clip. ``melody``: [[midi, start_s, dur_s], ...] for sung clips (empty for speech)."""

    id: str
    path: str  # FLAC, relative to the corpus folder
    voice: str  # voice id, e.g. "kokoro:jf_alpha+jm_kumo@0.5"
    kind: str  # "speech" | "sung"
    text: str
    language: str  # "ja" | "en"
    duration: float  # seconds
    f0: str  # .npy of true F0, relative path
    f0_source: str  # "melody" (imposed, exact) | "harvest" (measured on the rendered audio)
    parallel_group: str  # clips sharing it have the same text (and, if sung, the same melody and key)
    melody: list[list[float]] = field(default_factory=list)
    key: str = ""  # e.g. "D minor" (sung clips)
    bpm: float = 0.0
    f0_accuracy: float | None = None  # sung: share of frames where harvest lands within 50 cents of f0
    synth_seconds: float = 0.0  # wall time spent making this clip
    renderer: str = ""  # "tts" (speech) | "world" (WORLD speech-to-singing) | "festival-singing"
    root: str = field(default="", repr=False, compare=False)  # corpus folder (not stored)

    @property
    def audio_path(self) -> Path:
        return Path(self.root) / self.path

    @property
    def f0_path(self) -> Path:
        return Path(self.root) / self.f0

    def load_audio(self) -> np.ndarray:
        """(n,) float32 at 44.1 kHz."""
        from melisma.audio.io import load_audio

        return load_audio(self.audio_path)[0]

    def load_f0(self) -> np.ndarray:
        """(n // 512 + 1,) float32 true F0 in Hz, 0 = unvoiced."""
        return np.load(self.f0_path).astype(np.float32)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("root")
        return d


def read_manifest(folder: str | os.PathLike) -> dict:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        raise MelismaError(f"{folder}: not a melisma corpus (no {MANIFEST})")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MelismaError(f"{p}: unreadable corpus manifest ({exc})") from None
    if data.get("format_version") != FORMAT_VERSION:
        raise MelismaError(f"{p}: corpus format_version {data.get('format_version')!r}, "
                           f"this melisma reads {FORMAT_VERSION}")
    return data


def load_corpus(folder: str | os.PathLike) -> list[ClipRecord]:
    """All clip records of the corpus in ``folder`` (paths resolved through ``record.audio_path``)."""
    data = read_manifest(folder)
    names = {f.name for f in fields(ClipRecord)} - {"root"}
    root = str(Path(folder).resolve())
    return [ClipRecord(**{k: v for k, v in c.items() if k in names}, root=root) for c in data["clips"]]


@dataclass(frozen=True)
class ClipRef:
    """Where one training clip lives: audio, true F0 (None when the list has none), voice, parallel group."""

    audio: Path
    f0: Path | None
    voice: str
    group: str = ""


def clip_refs(folder: str | os.PathLike) -> list[ClipRef]:
    """Read ``folder/corpus.json`` leniently for training: a melisma corpus, or any file holding a list of
    ``{"path", "voice"[, "f0", "parallel_group"]}`` (or ``{"clips": [...]}``); relative paths are resolved
    against ``folder``. Raises MelismaError when the file is missing, unreadable or has no usable rows."""
    root = Path(folder)
    index = root / MANIFEST
    if not index.is_file():
        raise MelismaError(f"no {MANIFEST} in {root}")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        rows = data["clips"] if isinstance(data, dict) else data
        refs = [ClipRef(root / str(r["path"]), root / str(r["f0"]) if r.get("f0") else None, str(r["voice"]),
                        str(r.get("parallel_group") or "")) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MelismaError(f"{index}: not a clip list ({type(exc).__name__}: {exc})") from None
    return refs


def write_manifest(folder: str | os.PathLike, clips: list[ClipRecord], extra: dict | None = None) -> Path:
    """Write corpus.json atomically (temp file + rename), so readers never see half a manifest."""
    p = Path(folder) / MANIFEST
    data = {"format_version": FORMAT_VERSION, "sample_rate": SAMPLE_RATE, "hop_size": HOP_SIZE,
            "target_lufs": TARGET_LUFS, **(extra or {}), "clips": [c.to_json() for c in clips]}
    return write_text_atomic(p, json.dumps(data, ensure_ascii=False, indent=1))
