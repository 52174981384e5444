"""Voices no shipped model may train on: evaluation of unseen-speaker conversion uses only these.

Every foundation recipe reads its training corpora through ``trainable_clips``, which refuses a corpus
holding one of them (or a kokoro blend that leaks one), so the policy is enforced, not kept by convention.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from melisma.errors import MelismaError

if TYPE_CHECKING:
    from melisma.corpus.manifest import ClipRecord

# One male, one female and one blend; the blend's parents stay trainable on their own.  flite awb and
# festvox dita joined when those backends arrived (no shipped model's corpus held them: content-builtin,
# singer-base and vocoder-builtin were trained on kokoro, piper, festival slt/ked and English espeak only), so
# the singer benchmark has unseen targets from four non-kokoro families: festival, flite, festvox Czech, kokoro.
HELD_OUT_VOICES: tuple[str, ...] = (
    "festival:kal",  # US English male (diphone)
    "kokoro:jf_tebukuro",  # Japanese female
    "kokoro:jf_nezumi+jm_kumo@0.5",  # blend, an intermediate speaker
    "flite:awb",  # Scottish English male (CMU ARCTIC recordings, clustergen)
    "festival:dita",  # Czech female (festvox diphone)
)
# The same recorded speaker under another backend: holding one out holds out the other.
SAME_SPEAKER = {"flite:kal16": "festival:kal"}

T = TypeVar("T")


def is_held_out(voice_id: str) -> bool:
    """True when ``voice_id`` is (or, for blends, numerically equals) a held-out voice."""
    from melisma.corpus.voices import parse_voice

    if voice_id in HELD_OUT_VOICES:
        return True
    try:
        spec = parse_voice(voice_id)
    except ValueError:
        return False
    return any(_same(spec, parse_voice(h)) for h in HELD_OUT_VOICES)


def near_held_out(voice_id: str) -> bool:
    """True for held-out voices, for their speaker under another backend (``SAME_SPEAKER``), and for kokoro
    blends that would leak one: a blend with a held-out parent, or any blend of the same two parents as a
    held-out blend (0.4 and 0.5 sound nearly alike)."""
    from melisma.corpus.voices import parse_voice

    if is_held_out(voice_id) or is_held_out(SAME_SPEAKER.get(voice_id, voice_id)):
        return True
    try:
        spec = parse_voice(voice_id)
    except ValueError:
        return False
    if spec.backend != "kokoro":
        return False
    for h in map(parse_voice, HELD_OUT_VOICES):
        if h.backend != "kokoro":
            continue
        if len(h.parents) == 1 and h.parents[0] in spec.parents:
            return True
        if len(h.parents) == 2 and set(h.parents) == set(spec.parents):
            return True
    return False


def _same(a, b) -> bool:
    if a.backend != b.backend:
        return False
    if a.backend != "kokoro":
        return a.name == b.name
    wa = dict(zip(a.parents, a.weights, strict=True))
    wb = dict(zip(b.parents, b.weights, strict=True))
    return set(wa) == set(wb) and all(abs(wa[k] - wb[k]) < 1e-6 for k in wa)


def split_voices(voice_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """-> (training voices, held-out voices), order kept, duplicates dropped."""
    seen = list(dict.fromkeys(voice_ids))
    return [v for v in seen if not is_held_out(v)], [v for v in seen if is_held_out(v)]


def split_clips(clips: Iterable[T]) -> tuple[list[T], list[T]]:
    """Clip records (anything with ``.voice``) -> (training clips, held-out clips)."""
    train: list[T] = []
    held: list[T] = []
    for c in clips:
        (held if is_held_out(c.voice) else train).append(c)  # type: ignore[attr-defined]
    return train, held


def refuse_held_out(clips: Iterable[ClipRecord], source: str | os.PathLike) -> None:
    """Raise MelismaError (one line) when any of ``clips`` is by a held-out voice or a blend leaking one."""
    leaked = sorted({c.voice for c in clips if near_held_out(c.voice)})
    if leaked:
        raise MelismaError(f"{source}: holds held-out voice(s) {', '.join(leaked)}; no foundation model may "
                           "train on them (melisma.corpus.heldout)")


def trainable_clips(folders: Sequence[str | os.PathLike]) -> list[ClipRecord]:
    """Every clip of the corpora in ``folders``, read by ``load_corpus``; the entry of each foundation recipe.

    Raises MelismaError when a folder is not a corpus or holds a held-out voice (``refuse_held_out``).
    """
    from melisma.corpus.manifest import load_corpus

    clips: list[ClipRecord] = []
    for folder in folders:
        found = load_corpus(folder)
        refuse_held_out(found, folder)
        clips += found
    return clips
