"""A short demo song: a WORLD-sung vocal over a synthesised band (pad chords, bass, drums), same key/tempo.

Used to make melisma's bundled demo (``melisma/assets/demo``): the song, its dry vocal stem, its
accompaniment stem and a JSON record of voice, key, tempo, chords and melody.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from melisma.audio.constants import FRAME_RATE, HOP_SIZE, SAMPLE_RATE
from melisma.corpus.melody import Expression, MelodyPlan

SR = SAMPLE_RATE
# Chord roots as scale degrees (major key), one chord per bar; each line is one sung phrase of 4 bars.
PROGRESSIONS = ((0, 4, 5, 3), (0, 4, 5, 3), (5, 3, 4, 0))
RHYTHMS = ((1.0, 1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.5, 0.5, 2.0), (1.0, 1.0, 2.0), (1.0, 0.5, 0.5, 2.0))
MAJOR = (0, 2, 4, 5, 7, 9, 11)


@dataclass
class SongPlan:
    tonic: int = 60  # MIDI, C4
    bpm: float = 138.0
    intro_bars: int = 1
    outro_bars: int = 1
    phrases: list[MelodyPlan] = field(default_factory=list)

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    def chords(self) -> list[int]:
        """Chord root degree per bar over the whole song (intro and outro hold the tonic)."""
        body = [d for p in PROGRESSIONS[: len(self.phrases)] for d in p]
        return [0] * self.intro_bars + body + [0] * self.outro_bars

    def phrase_start_s(self, i: int) -> float:
        return (self.intro_bars + 4 * i) * 4 * self.beat_s

    @property
    def duration_s(self) -> float:
        return len(self.chords()) * 4 * self.beat_s + 1.0  # a second of ring-out


def compose(rng: np.random.Generator, tonic: int = 60, bpm: float = 138.0) -> SongPlan:
    """Three 4-bar phrases over PROGRESSIONS: chord tones on the beat, steps between, ending on the tonic."""
    plan = SongPlan(tonic, bpm)
    prev = 2
    for prog in PROGRESSIONS:
        degrees: list[int] = []
        beats: list[float] = []
        for bar, root in enumerate(prog):
            rhythm = (4.0,) if bar == 3 and prog is PROGRESSIONS[-1] else RHYTHMS[int(rng.integers(len(RHYTHMS)))]
            tones = [root + k for k in (0, 2, 4, -7 + 0, -7 + 2, -7 + 4, 7)]
            tones = [t for t in tones if -2 <= t <= 9]
            for j, b in enumerate(rhythm):
                if j == 0:
                    d = min(tones, key=lambda t: (abs(t - prev), rng.random()))
                else:
                    d = prev + int(rng.choice([-1, 1, -2, 2]))
                    d = int(np.clip(d, -2, 9))
                degrees.append(d)
                beats.append(b)
                prev = d
        degrees[-1] = 0 if prog is PROGRESSIONS[-1] else degrees[-1]
        plan.phrases.append(MelodyPlan(tonic, "major", bpm, tuple(degrees), tuple(beats)))
    return plan


# --- the band -----------------------------------------------------------------------------------


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _tone(midi: float, dur: float, harmonics: int, decay: float, attack: float = 0.01) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    f = _hz(midi)
    wave = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, harmonics + 1) if k * f < SR / 2 - 1000)
    env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
    release = np.clip((dur - t) / 0.05, 0.0, 1.0)
    return (wave * env * release).astype(np.float64)


def _add(track: np.ndarray, sig: np.ndarray, at_s: float, gain: float) -> None:
    i = int(at_s * SR)
    n = min(len(sig), len(track) - i)
    if n > 0:
        track[i: i + n] += gain * sig[:n]


def _triad(tonic: int, root_degree: int) -> list[int]:
    out = []
    for k in (0, 2, 4):
        d = root_degree + k
        out.append(tonic - 12 + 12 * (d // 7) + MAJOR[d % 7])
    return out


def accompaniment(plan: SongPlan, rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 band at 44.1 kHz: pad triads per bar, bass on every beat, kick/snare/hats."""
    n = int(plan.duration_s * SR)
    pad, bass, drums = np.zeros(n), np.zeros(n), np.zeros(n)
    bar_s = 4 * plan.beat_s
    for b, root in enumerate(plan.chords()):
        start = b * bar_s
        for m in _triad(plan.tonic, root):
            _add(pad, _tone(m, bar_s, 6, 1.6, attack=0.08), start, 0.12)
        root_midi = _triad(plan.tonic, root)[0] - 12
        for beat in range(4):
            note = root_midi + (7 if beat == 2 else 0)
            _add(bass, _tone(note, plan.beat_s * 0.9, 3, 0.25), start + beat * plan.beat_s, 0.35)
        for eighth in range(8):
            at = start + eighth * plan.beat_s / 2
            if eighth in (0, 4):
                _add(drums, _kick(), at, 0.6)
            if eighth in (2, 6):
                _add(drums, _snare(rng), at, 0.3)
            _add(drums, _hat(rng), at, 0.08 if eighth % 2 else 0.12)
    return pad + bass + drums


def _kick() -> np.ndarray:
    t = np.arange(int(0.25 * SR)) / SR
    f = 50 + 90 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.12)


def _snare(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.18 * SR)) / SR
    noise = np.diff(rng.standard_normal(len(t) + 1))  # first difference: brighter noise
    return (0.5 * noise + 0.6 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t / 0.05)


def _hat(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.05 * SR)) / SR
    noise = np.diff(np.diff(rng.standard_normal(len(t) + 2)))
    return noise * np.exp(-t / 0.012)


# --- the vocal ----------------------------------------------------------------------------------


def sing_song(plan: SongPlan, voice: str, texts: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Vocal track (n,) float64 and its true F0 (n // 512 + 1,) Hz, plus the melody as [midi, start_s, dur_s]."""
    from melisma.corpus.builder import speech_at_rate
    from melisma.corpus.singing import analyse, sing
    from melisma.corpus.voices import parse_voice

    spec = parse_voice(voice)
    n = int(plan.duration_s * SR)
    vocal = np.zeros(n)
    f0 = np.zeros(n // HOP_SIZE + 1)
    notes_out: list = []
    rng = np.random.default_rng(seed)
    for i, (phrase, text) in enumerate(zip(plan.phrases, texts, strict=True)):
        clip = sing(analyse(speech_at_rate(spec, text, rng).audio), phrase, 0, Expression.random(rng))
        # place the clip so its first note starts on the phrase's first downbeat, on a frame boundary
        shift_frames = int(round((plan.phrase_start_s(i) - clip.notes[0].start_s) * FRAME_RATE))
        _add(vocal, clip.audio.astype(np.float64), shift_frames * HOP_SIZE / SR, 1.0)
        j = max(0, shift_frames)
        k = min(len(f0), shift_frames + len(clip.f0))
        f0[j:k] = np.where(clip.f0[j - shift_frames: k - shift_frames] > 0,
                           clip.f0[j - shift_frames: k - shift_frames], f0[j:k])
        off = shift_frames / FRAME_RATE
        notes_out += [[nt.midi, round(nt.start_s + off, 4), nt.dur_s] for nt in clip.notes]
    return vocal, f0, notes_out
