"""Voices no shipped model may train on: evaluation of unseen-speaker conversion uses only these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

# One male, one female and one blend; the blend's parents stay trainable on their own.
HELD_OUT_VOICES: tuple[str, ...] = (
    "festival:kal",  # US English male (diphone)
    "kokoro:jf_tebukuro",  # Japanese female
    "kokoro:jf_nezumi+jm_kumo@0.5",  # blend, an intermediate speaker
)

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
    """True for held-out voices and for kokoro blends that would leak one: a blend with a held-out parent,
    or any blend of the same two parents as a held-out blend (0.4 and 0.5 sound nearly alike)."""
    from melisma.corpus.voices import parse_voice

    if is_held_out(voice_id):
        return True
    spec = parse_voice(voice_id)
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
