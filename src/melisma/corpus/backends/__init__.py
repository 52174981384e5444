"""Offline text-to-speech backends. Each returns a ``Speech``: the audio and the phones its own front end chose.

A backend module exposes ``synthesize(spec: VoiceSpec, text: str, rng) -> Speech`` and ``check_available()``,
which raises MissingDependencyError with an install line when its tool is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Speech:
    """One utterance from a synthesiser.

    ``audio``: (n,) float32 at ``sr`` Hz.  ``phones``: the front end's own phone symbols, in order, in the
    inventory named by ``phone_set`` (see ``melisma.corpus.phones``).  ``phone_ends``: end time of each phone in
    seconds from the start of ``audio`` (non-decreasing, one per phone), or None when the front end gives no
    timings.
    """

    audio: np.ndarray
    sr: int
    phones: tuple[str, ...]
    phone_ends: tuple[float, ...] | None
    phone_set: str

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr

    def with_audio(self, audio: np.ndarray, sr: int, offset_s: float = 0.0) -> Speech:
        """The same phones on new ``audio`` at ``sr`` whose start lies ``offset_s`` seconds into the old audio
        (resampling, trimming); the timings move with it and are clipped to the new clip."""
        ends = None
        if self.phone_ends is not None:
            dur = len(audio) / sr
            ends = tuple(round(float(np.clip(e - offset_s, 0.0, dur)), 4) for e in self.phone_ends)
        return replace(self, audio=audio, sr=sr, phone_ends=ends)


def clip_ends(ends: list[float], duration: float) -> tuple[float, ...]:
    """Phone end times made non-decreasing and clipped to ``[0, duration]`` (front ends round, and diphone
    voices can report a last pause longer than the wave they wrote)."""
    out = np.clip(np.maximum.accumulate(np.asarray(ends, np.float64)), 0.0, duration) if ends else np.zeros(0)
    return tuple(round(float(e), 4) for e in out)
