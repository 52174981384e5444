"""A synthetic song with known stems, for tests and benchmarks of separation and slicing (numpy only).

The vocal: phrases of notes with vibrato, 12 harmonics under a vowel-like envelope and short noise
consonants, separated by pauses.  The accompaniment: a repeating chord loop, a bass line, kick and hi-hat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melisma.audio.constants import SAMPLE_RATE


@dataclass(frozen=True)
class SyntheticSong:
    vocal: np.ndarray  # (n,) float32 at SAMPLE_RATE
    accompaniment: np.ndarray  # (n,) float32
    phrases: list[tuple[float, float]]  # (start, end) seconds of each sung phrase

    @property
    def mix(self) -> np.ndarray:
        return (self.vocal + self.accompaniment).astype(np.float32)


def sung_phrase(duration: float, rng: np.random.Generator, base_midi: float = 57.0) -> np.ndarray:
    """(round(duration * SAMPLE_RATE),) a legato phrase of random notes with 5.5 Hz vibrato, peak ~0.3."""
    n = int(round(duration * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    n_notes = max(1, int(duration / 0.5))
    midi = base_midi + rng.choice([0, 2, 4, 5, 7, 9, 12], size=n_notes)
    note_of_sample = np.minimum((t / duration * n_notes).astype(int), n_notes - 1)
    pitch = np.convolve(midi[note_of_sample], np.ones(441) / 441, mode="same")  # 10 ms glides
    pitch[:441], pitch[-441:] = pitch[441], pitch[-442]
    f0 = 440.0 * 2 ** ((pitch - 69 + 0.25 * np.sin(2 * np.pi * 5.5 * t)) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = np.zeros(n)
    for k in range(1, 13):
        freq = k * f0
        formant = 1.0 + 2.0 * np.exp(-(((freq - 700) / 300) ** 2)) + np.exp(-(((freq - 1200) / 300) ** 2))
        voice += formant / k * np.sin(k * phase) * (freq < SAMPLE_RATE / 2 - 1000)
    envelope = np.minimum(1.0, np.minimum(t, duration - t) / 0.05)
    voice *= envelope * 0.3 / (np.abs(voice).max() + 1e-9)
    onsets = (np.arange(n_notes) * n / n_notes).astype(int)
    for on in onsets[1::2]:  # a short noise consonant on every other note
        burst = rng.standard_normal(min(1500, n - on)) * 0.02
        voice[on: on + burst.size] += burst
    return voice.astype(np.float32)


def accompaniment(duration: float, rng: np.random.Generator, level: float = 0.5) -> np.ndarray:
    """(n,) a 2 s loop (two chords, bass, kick on beats, hi-hat off beats) repeated for ``duration``, peak ~level."""
    bar = 2 * SAMPLE_RATE
    t = np.arange(bar) / SAMPLE_RATE
    loop = np.zeros(bar)
    for half, root in enumerate((48, 53)):
        sl = slice(half * bar // 2, (half + 1) * bar // 2)
        for semis in (0, 4, 7, 12):
            f = 440.0 * 2 ** ((root + semis - 57) / 12)
            loop[sl] += sum(np.sin(2 * np.pi * k * f * t[sl]) / k**1.5 for k in range(1, 6)) * 0.15
        fb = 440.0 * 2 ** ((root - 24 - 57 + 12) / 12)
        loop[sl] += 0.3 * np.sin(2 * np.pi * fb * t[sl])
    beat = SAMPLE_RATE // 2
    kick_t = np.arange(beat // 2) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 12)
    hat = rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300) * 0.3
    for b in range(4):
        loop[b * beat: b * beat + kick.size] += 0.6 * kick
        loop[b * beat + beat // 2: b * beat + beat // 2 + hat.size] += hat
    n = int(round(duration * SAMPLE_RATE))
    out = np.tile(loop, n // bar + 1)[:n]
    return (out * level / (np.abs(out).max() + 1e-9)).astype(np.float32)


def synthetic_song(
    phrase_lengths: tuple[float, ...] = (6.0, 9.0, 4.0, 12.0),
    pause: float = 1.5,
    accompaniment_level: float = 0.35,
    seed: int = 0,
) -> SyntheticSong:
    """A song: ``pause`` s of intro, then each phrase followed by ``pause`` s; stems and phrase times."""
    rng = np.random.default_rng(seed)
    total = pause + sum(p + pause for p in phrase_lengths)
    vocal = np.zeros(int(round(total * SAMPLE_RATE)), np.float32)
    phrases, at = [], pause
    for length in phrase_lengths:
        seg = sung_phrase(length, rng)
        i = int(round(at * SAMPLE_RATE))
        vocal[i: i + seg.size] = seg
        phrases.append((at, at + length))
        at += length + pause
    acc = accompaniment(total, rng, accompaniment_level) if accompaniment_level > 0 else np.zeros_like(vocal)
    return SyntheticSong(vocal, acc, phrases)


def sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Signal-to-distortion ratio in dB of ``estimate`` against ``reference`` (both (n,))."""
    ref = np.asarray(reference, np.float64)
    err = np.asarray(estimate, np.float64) - ref
    return float(10 * np.log10((ref**2).sum() / max((err**2).sum(), 1e-20)))
