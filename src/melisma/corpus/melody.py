"""Random singable melodies and the F0 curve a singer would draw through them.

A melody is a list of ``Note(midi, start_s, dur_s)``.  ``f0_curve`` turns it into F0 in Hz on the shared
frame grid, with portamento between notes and delayed vibrato, as singers do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melisma.audio.constants import FRAME_RATE

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
BEAT_CHOICES = (0.5, 1.0, 1.0, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Note:
    midi: int  # MIDI note number (60 = C4 = 261.63 Hz)
    start_s: float  # seconds from the start of the clip
    dur_s: float  # seconds


@dataclass(frozen=True)
class MelodyPlan:
    """A melody independent of any voice: scale degrees and beats, in a key and tempo."""

    tonic: int  # MIDI of the tonic in the female register (57..69)
    mode: str  # "major" | "minor"
    bpm: float
    degrees: tuple[int, ...]  # scale steps from the tonic (may be negative or > 7)
    beats: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{NOTE_NAMES[self.tonic % 12]} {self.mode}"

    def midis(self, transpose: int = 0) -> list[int]:
        scale = SCALES[self.mode]
        return [self.tonic + transpose + 12 * (d // 7) + scale[d % 7] for d in self.degrees]

    def notes(self, start_s: float = 0.0, transpose: int = 0) -> list[Note]:
        """Notes laid end to end from ``start_s`` (seconds), shifted by ``transpose`` semitones."""
        out, t = [], start_s
        for m, b in zip(self.midis(transpose), self.beats, strict=True):
            d = 60.0 * b / self.bpm
            out.append(Note(m, round(t, 4), round(d, 4)))
            t += d
        return out


def random_melody(rng: np.random.Generator, n_notes: int, low: int = 57, high: int = 76) -> MelodyPlan:
    """A stepwise random melody of ``n_notes`` notes within MIDI [low, high] (female register).

    Mostly steps of one or two scale degrees, some leaps of a third or fourth; it starts on a tonic-chord
    tone and ends on the tonic, with a long last note.
    """
    mode = "major" if rng.random() < 0.6 else "minor"
    tonic = int(rng.integers(low, min(high - 7, low + 12) + 1))
    scale = SCALES[mode]

    def midi(d: int) -> int:
        return tonic + 12 * (d // 7) + scale[d % 7]

    degrees = [int(rng.choice([0, 2, 4]))]
    for _ in range(n_notes - 2):
        step = int(rng.choice([-2, -1, -1, 1, 1, 2, -3, 3, 4, 0]))
        d = degrees[-1] + step
        if not low <= midi(d) <= high:
            d = degrees[-1] - step
        if not low <= midi(d) <= high:
            d = degrees[-1]
        degrees.append(d)
    degrees.append(7 if degrees[-1] >= 4 else 0)
    beats = [float(rng.choice(BEAT_CHOICES)) for _ in range(n_notes - 1)] + [2.0]
    return MelodyPlan(tonic, mode, float(rng.uniform(80, 112)), tuple(degrees), tuple(beats))


def fit_register(plan: MelodyPlan, low: int, high: int) -> int:
    """Octave shift (semitones) that puts the plan's notes best inside [low, high]."""
    ms = np.array(plan.midis())
    centre = (low + high) / 2
    return int(12 * round((centre - (ms.min() + ms.max()) / 2) / 12))


@dataclass(frozen=True)
class Expression:
    """How a voice sings: vibrato rate (Hz), depth (cents, peak), onset delay (s), glide time (s)."""

    vibrato_hz: float = 5.5
    vibrato_cents: float = 45.0
    vibrato_delay_s: float = 0.2
    glide_s: float = 0.06

    @staticmethod
    def random(rng: np.random.Generator) -> Expression:
        return Expression(float(rng.uniform(5.0, 6.2)), float(rng.uniform(30, 60)),
                          float(rng.uniform(0.12, 0.3)), float(rng.uniform(0.03, 0.09)))


def f0_curve(notes: list[Note], n_frames: int, expr: Expression, frame_rate: float = FRAME_RATE) -> np.ndarray:
    """(n_frames,) F0 in Hz drawn through ``notes``: before the first note it holds the first pitch,
    after the last the last. Glides are raised-cosine in log frequency, centred on each onset; vibrato
    (sinusoidal in cents) fades in over 0.15 s after ``vibrato_delay_s`` into each note longer than 0.35 s.
    """
    t = np.arange(n_frames) / frame_rate
    semis = np.full(n_frames, float(notes[0].midi))
    for prev, nxt in zip(notes[:-1], notes[1:], strict=True):
        half = min(expr.glide_s, 0.3 * prev.dur_s, 0.3 * nxt.dur_s) / 2
        x = np.clip((t - (nxt.start_s - half)) / max(2 * half, 1e-6), 0.0, 1.0)
        semis += (nxt.midi - prev.midi) * 0.5 * (1 - np.cos(np.pi * x))
    cents = np.zeros(n_frames)
    for n in notes:
        if n.dur_s < 0.35:
            continue
        local = t - n.start_s - expr.vibrato_delay_s
        inside = (local > 0) & (t < n.start_s + n.dur_s)
        ramp = np.clip(local / 0.15, 0.0, 1.0)
        cents += np.where(inside, expr.vibrato_cents * ramp * np.sin(2 * np.pi * expr.vibrato_hz * local), 0.0)
    return (440.0 * 2.0 ** ((semis + cents / 100.0 - 69.0) / 12.0)).astype(np.float64)
