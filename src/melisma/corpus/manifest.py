"""On-disk corpus format: ``corpus.json`` plus FLAC audio and .npy true-F0 / time-map files, all paths relative.

corpus.json = {"format": "melisma.corpus", "format_version": 2, "sample_rate": 44100, "hop_size": 512,
               "target_lufs": -20.0, "clips": [ClipRecord as dict, ...]}
F0 files hold float32 (n // 512 + 1,) Hz for a clip of n samples, 0 = unvoiced.  Time maps (WORLD-sung clips)
hold int32 (n // 512 + 1,): for each frame of the sung clip, the frame of the spoken rendition it was made from.
Version 2 added ``phones``, ``phone_ends``, ``phone_set`` and ``time_map``; version-1 manifests load with them
empty.
``load_corpus`` is the one reader: every consumer (training recipes, benchmarks) goes through it.
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
from melisma.formats import CURRENT, check, format_name, stamp

FORMAT = format_name("corpus")
FORMAT_VERSION = CURRENT["corpus"]
MANIFEST = "corpus.json"


@dataclass
class ClipRecord:
    """One clip. ``melody``: [[midi, start_s, dur_s], ...] for sung clips (empty for speech).

    ``phones`` come from the synthesiser's front end (``to_shared(phones, phone_set)`` maps them onto the shared
    inventory); ``phone_ends`` has one non-decreasing time per phone within ``[0, duration]`` when the front
    end gives timings (festival, flite; WORLD-sung clips carry them through their time map).
    """

    id: str
    path: str  # FLAC, relative to the corpus folder
    voice: str  # voice id, e.g. "kokoro:jf_alpha+jm_kumo@0.5"
    kind: str  # "speech" | "sung"
    text: str
    language: str  # "ja" | "en"
    duration: float  # seconds
    f0: str  # .npy of true F0, relative path ("" when the clip has none)
    f0_source: str  # "melody" (imposed, exact) | "harvest" (measured on the rendered audio)
    parallel_group: str  # clips sharing it have the same text (and, if sung, the same melody and key)
    melody: list[list[float]] = field(default_factory=list)
    key: str = ""  # e.g. "D minor" (sung clips)
    bpm: float = 0.0
    f0_accuracy: float | None = None  # sung: share of frames where harvest lands within 50 cents of f0
    synth_seconds: float = 0.0  # wall time spent making this clip
    renderer: str = ""  # "tts" (speech) | "world" (WORLD speech-to-singing) | "festival-singing"
    phones: list[str] = field(default_factory=list)  # the synthesiser's own phones, in order (v2)
    phone_ends: list[float] = field(default_factory=list)  # end of each phone, seconds in this clip; [] unknown
    phone_set: str = ""  # inventory of ``phones`` (melisma.corpus.phones.PHONE_SETS); "" for a v1 clip and for
    # festival's own singing mode (renderer "festival-singing"), which reports no phones
    time_map: str = ""  # WORLD-sung: .npy of the source speech frame per output frame; "" otherwise
    root: str = field(default="", repr=False, compare=False)  # corpus folder (not stored)

    @property
    def audio_path(self) -> Path:
        return Path(self.root) / self.path

    @property
    def f0_path(self) -> Path:
        return Path(self.root) / self.f0

    @property
    def voice_dir(self) -> Path:
        """The folder holding this voice's audio (``audio/<voice slug>/``); its name is the singer name."""
        return self.audio_path.parent

    @property
    def has_f0(self) -> bool:
        """True when the clip lists a true-F0 file and it is there."""
        return bool(self.f0) and self.f0_path.is_file()

    def load_audio(self) -> np.ndarray:
        """(n,) float32 at 44.1 kHz."""
        from melisma.audio.io import load_audio

        return load_audio(self.audio_path)[0]

    @property
    def shared_phones(self) -> list[str]:
        """``phones`` in the shared inventory (``melisma.corpus.phones.SHARED_PHONES``); [] for a v1 clip."""
        from melisma.corpus.phones import to_shared

        return to_shared(self.phones, self.phone_set) if self.phone_set else []

    def load_time_map(self) -> np.ndarray:
        """(T,) int32: source speech frame of each frame of this sung clip (T = len(load_f0()))."""
        if not self.time_map:
            raise MelismaError(f"clip {self.id} has no time map (only WORLD-sung clips of a v2 corpus do)")
        return np.load(Path(self.root) / self.time_map).astype(np.int32)

    def load_f0(self, frames: int | None = None) -> np.ndarray:
        """(n // 512 + 1,) float32 true F0 in Hz, 0 = unvoiced; cut or zero-padded to ``frames`` if given."""
        f0 = np.load(self.f0_path).astype(np.float32)
        if frames is None:
            return f0
        return np.pad(f0[:frames], (0, max(0, frames - len(f0))))

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("root")
        return d


def _read_manifest(folder: str | os.PathLike) -> dict:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        raise MelismaError(f"{folder}: not a melisma corpus (no {MANIFEST})")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MelismaError(f"{p}: unreadable corpus manifest ({exc})") from None
    if not isinstance(data, dict):
        raise MelismaError(f"{p}: not a melisma corpus manifest (build one with `melisma corpus build`)")
    check(data, "corpus", p)  # version-1 manifests written before the format name carry only the version
    if not isinstance(data.get("clips"), list):
        raise MelismaError(f"{p}: corpus manifest has no list of clips")
    return data


def _record(row: object, root: str, where: str) -> ClipRecord:
    names = {f.name for f in fields(ClipRecord)} - {"root"}
    if not isinstance(row, dict):
        raise MelismaError(f"{where}: a clip is {type(row).__name__}, not an object")
    try:
        return ClipRecord(**{k: v for k, v in row.items() if k in names}, root=root)
    except TypeError as exc:  # a required field is missing
        raise MelismaError(f"{where}: clip {row.get('id', '?')!r} is incomplete ({exc})") from None


def load_corpus(folder: str | os.PathLike) -> list[ClipRecord]:
    """All clip records of the corpus in ``folder`` (paths resolved through ``record.audio_path``).

    Raises MelismaError, one line, when ``folder/corpus.json`` is missing, unreadable, not a melisma corpus
    manifest, of a newer or unknown format_version, or lists an incomplete clip.
    """
    data = _read_manifest(folder)
    root = str(Path(folder).resolve())
    where = str(Path(folder) / MANIFEST)
    return [_record(row, root, where) for row in data["clips"]]


def write_manifest(folder: str | os.PathLike, clips: list[ClipRecord], extra: dict | None = None) -> Path:
    """Write corpus.json atomically (temp file + rename), so readers never see half a manifest."""
    p = Path(folder) / MANIFEST
    data = {**stamp("corpus"), "sample_rate": SAMPLE_RATE, "hop_size": HOP_SIZE,
            "target_lufs": TARGET_LUFS, **(extra or {}), "clips": [c.to_json() for c in clips]}
    return write_text_atomic(p, json.dumps(data, ensure_ascii=False, indent=1))
