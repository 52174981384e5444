"""Tiny melisma corpora for training tests: written through the corpus format's own writer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from melisma.audio.constants import SAMPLE_RATE
from melisma.audio.io import save_audio
from melisma.corpus import ClipRecord, load_corpus, near_held_out, write_manifest

TINY = Path(__file__).parent / "data" / "corpus"  # the committed tiny corpus: it holds held-out voices


def write_clips(folder: Path, clips: list[tuple[str, np.ndarray, np.ndarray | None]]) -> Path:
    """A corpus of spoken clips (voice id, (n,) audio at 44.1 kHz, (n // 512 + 1,) F0 or None) in ``folder``."""
    from melisma.corpus.builder import save_f0
    from melisma.corpus.voices import parse_voice

    records = []
    for i, (voice, audio, f0) in enumerate(clips):
        slug = parse_voice(voice).slug
        rel = f"audio/{slug}/c{i}.flac"
        save_audio(folder / rel, audio, SAMPLE_RATE)
        if f0 is not None:
            save_f0(folder / f"f0/{slug}/c{i}.npy", f0)
        records.append(ClipRecord(f"c{i}", rel, voice, "speech", "la la", "en", round(len(audio) / SAMPLE_RATE, 4),
                                  f"f0/{slug}/c{i}.npy" if f0 is not None else "", "harvest", f"g{i}"))
    write_manifest(folder, records)
    return folder


def trainable_copy(folder: Path) -> Path:
    """The committed tiny corpus less its held-out voices, copied into ``folder``."""
    keep = [c for c in load_corpus(TINY) if not near_held_out(c.voice)]
    for c in keep:
        for rel in (c.path, c.f0):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(TINY / rel, folder / rel)
    write_manifest(folder, keep)
    return folder
