"""Separation training data melisma makes itself: sung corpus vocals over MIDI accompaniment rendered by fluidsynth.

Each song comes from ``(seed, index)`` alone: a chord progression in the key and tempo of its vocal's first clip,
with chords, bass, drums and (sometimes) a pad and a lead line, each on a random GM program of its role, rendered
through a sampled General MIDI soundfont (Debian ``fluid-soundfont-gm``) by the ``fluidsynth`` CLI; random
volumes, reverb/chorus sends, shelving EQ on both stems and a synthetic room on the vocal; the vocal scaled to a
vocal-to-accompaniment ratio (energy over the song) drawn from ``RATIO_DB``.

Held out for tests: the GM programs with ``program % 8 == 3`` (one per GM family) and drum kits ``TEST_KITS`` are
only used by ``split="test"``, whose songs also draw from another seed stream; the caller gives it held-out voices.

On disk (a folder): ``data.json`` (stamped ``melisma.separation-data``) and per song ``<id>.vocal.flac``,
``<id>.accompaniment.flac`` and ``<id>.mix.flac`` (PCM 24-bit; the mix is exactly the sum of the stored stems).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.audio.constants import SAMPLE_RATE
from melisma.errors import MelismaError, MissingDependencyError
from melisma.formats import check, stamp
from melisma.separation.midi import DRUM_CHANNEL, Note, Part, midi_bytes

GENERATOR_VERSION = 1  # bump when the same seed would give other audio
RATIO_DB = (-10.0, 6.0)  # vocal-to-accompaniment energy ratio range, dB
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
MANIFEST = "data.json"
PCM24 = float(2**23)
SPLITS = ("train", "test")

# GM programs per role (see the General MIDI level 1 sound set); the test split uses only those with p % 8 == 3
ROLE_PROGRAMS: dict[str, tuple[int, ...]] = {
    "chords": (0, 1, 2, 3, 4, 5, 6, 11, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29, 30, 46, 48, 49),
    "bass": (32, 33, 34, 35, 36, 37, 38, 39, 43),
    "pad": (48, 49, 50, 51, 52, 53, 54, 88, 89, 90, 91, 92, 94, 95),
    "lead": (8, 9, 10, 11, 12, 13, 40, 41, 56, 57, 59, 60, 61, 64, 65, 66, 67, 68, 69, 71, 72, 73, 75, 80, 81, 82,
             83, 84, 85, 87, 104, 105, 107),
}
TRAIN_KITS, TEST_KITS = (0, 16, 24, 32, 48), (8, 25, 40)  # fluidsynth drum presets (bank 128)
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {"major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0)),
                "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 2, 3, 4))}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def programs_for(role: str, split: str) -> tuple[int, ...]:
    """GM programs of ``role`` that ``split`` may use (train: p % 8 != 3; test: p % 8 == 3)."""
    held = split == "test"
    return tuple(p for p in ROLE_PROGRAMS[role] if (p % 8 == 3) == held)


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0-11
    mode: str  # "major" | "minor"

    def pitch(self, degree: int, octave_c: int) -> int:
        """MIDI pitch of scale ``degree`` (any int) above the tonic nearest above the C at MIDI ``octave_c``."""
        scale = SCALES[self.mode]
        return octave_c + self.tonic + 12 * (degree // 7) + scale[degree % 7]


def parse_key(text: str, rng: np.random.Generator) -> Key:
    """``"D minor"`` -> Key(2, "minor"); anything else -> a random key."""
    parts = text.split()
    if len(parts) == 2 and parts[0] in NOTE_NAMES and parts[1] in SCALES:
        return Key(NOTE_NAMES.index(parts[0]), parts[1])
    return Key(int(rng.integers(12)), str(rng.choice(list(SCALES))))


@dataclass(frozen=True)
class Arrangement:
    bpm: float
    key: Key
    parts: tuple[Part, ...]
    roles: dict[str, int]  # role -> GM program (drums: kit)


def _vel(rng: np.random.Generator, base: int, spread: int = 12) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def _chord_notes(key: Key, progression, bar_beats: float, n_beats: float, rng, channel: int,
                 style: str | None = None) -> list[Note]:
    """Triads (sometimes sevenths) around middle C in one of four rhythms: held, stabs, off-beats, arpeggio."""
    style = style or str(rng.choice(["held", "stabs", "offbeat", "arpeggio"]))
    seventh = rng.random() < 0.3
    notes, t, i = [], 0.0, 0
    while t < n_beats:
        deg = progression[i % len(progression)]
        chord = [key.pitch(deg + k, 48) for k in ((0, 2, 4, 6) if seventh else (0, 2, 4))]
        if style == "held":
            notes += [Note(channel, p, t, bar_beats * 0.95, _vel(rng, 70)) for p in chord]
        elif style in ("stabs", "offbeat"):
            for b in np.arange(0.5 if style == "offbeat" else 0.0, bar_beats, 1.0):
                notes += [Note(channel, p, t + b, 0.4, _vel(rng, 80)) for p in chord]
        else:
            step = float(rng.choice([0.25, 0.5]))
            for j, b in enumerate(np.arange(0.0, bar_beats, step)):
                notes.append(Note(channel, (chord + [chord[0] + 12])[j % (len(chord) + 1)], t + b, step, _vel(rng, 75)))
        t, i = t + bar_beats, i + 1
    return notes


def _bass_notes(key: Key, progression, bar_beats: float, n_beats: float, rng, channel: int) -> list[Note]:
    """Chord roots in the bass octave: held, on the beat, on eighths, or root-fifth."""
    style = rng.choice(["held", "beats", "eighths", "root-fifth"])
    notes, t, i = [], 0.0, 0
    while t < n_beats:
        root = key.pitch(progression[i % len(progression)], 36)
        if style == "held":
            notes.append(Note(channel, root, t, bar_beats * 0.95, _vel(rng, 95)))
        else:
            step = 0.5 if style == "eighths" else 1.0
            for j, b in enumerate(np.arange(0.0, bar_beats, step)):
                p = root + 7 if style == "root-fifth" and j % 2 else root
                notes.append(Note(channel, p, t + b, step * 0.85, _vel(rng, 95)))
        t, i = t + bar_beats, i + 1
    return notes


def _drum_notes(n_beats: float, rng) -> list[Note]:
    """Kick, snare (back-beat or half-time), hats on eighths or sixteenths, a crash every four bars."""
    c, notes = DRUM_CHANNEL, []
    kick_beats = [(0.0, 2.0), (0.0, 1.0, 2.0, 3.0), (0.0, 1.5, 2.5), (0.0, 0.75, 2.0, 2.5)][int(rng.integers(4))]
    snare_beats = (1.0, 3.0) if rng.random() < 0.7 else (2.0,)
    hat_step = float(rng.choice([0.5, 0.5, 0.25, 1.0]))
    hat = int(rng.choice([42, 42, 46, 51]))
    for bar in range(int(np.ceil(n_beats / 4))):
        t = 4.0 * bar
        notes += [Note(c, 36, t + b, 0.25, _vel(rng, 105)) for b in kick_beats]
        notes += [Note(c, int(rng.choice([38, 40])), t + b, 0.25, _vel(rng, 100)) for b in snare_beats]
        notes += [Note(c, hat, t + b, 0.2, _vel(rng, 70 if (b % 1) else 85)) for b in np.arange(0.0, 4.0, hat_step)]
        if bar % 4 == 0 and rng.random() < 0.5:
            notes.append(Note(c, 49, t, 1.0, _vel(rng, 90)))
    return notes


def _lead_notes(key: Key, n_beats: float, rng, channel: int) -> list[Note]:
    """A scale-walk melody in the singing register (the hardest accompaniment to tell from a voice), with rests."""
    notes, t, deg = [], float(rng.integers(0, 4)), int(rng.integers(0, 7))
    while t < n_beats:
        length = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
        if rng.random() < 0.8:
            notes.append(Note(channel, key.pitch(deg, 60), t, length * 0.9, _vel(rng, 85)))
        deg = int(np.clip(deg + rng.choice([-2, -1, -1, 1, 1, 2, 3]), -3, 10))
        t += length
    return notes


def _part(channel: int, program: int, notes: list[Note], rng) -> Part:
    return Part(channel, program, int(rng.integers(70, 121)), int(rng.integers(0, 90)), int(rng.integers(0, 50)),
                tuple(n for n in notes if 0 <= n.pitch <= 127))


def arrange(rng: np.random.Generator, key: Key, bpm: float, duration_s: float, split: str) -> Arrangement:
    """A random arrangement of ``duration_s`` (plus a bar): chords and/or bass always, drums, pad, lead sometimes."""
    n_beats = duration_s * bpm / 60.0 + 4.0
    progression = PROGRESSIONS[key.mode][int(rng.integers(len(PROGRESSIONS[key.mode])))]
    bar_beats = float(rng.choice([2.0, 4.0, 4.0, 8.0]))
    wanted = {"chords": rng.random() < 0.9, "bass": rng.random() < 0.85, "drums": rng.random() < 0.8,
              "pad": rng.random() < 0.45, "lead": rng.random() < 0.45}
    if not (wanted["chords"] or wanted["bass"]):
        wanted["chords"] = True
    parts, roles = [], {}
    for channel, role in enumerate(("chords", "bass", "pad", "lead")):
        if not wanted[role]:
            continue
        program = int(rng.choice(programs_for(role, split)))
        if role == "chords":
            notes = _chord_notes(key, progression, bar_beats, n_beats, rng, channel)
        elif role == "bass":
            notes = _bass_notes(key, progression, bar_beats, n_beats, rng, channel)
        elif role == "pad":
            held = _chord_notes(key, progression, bar_beats, n_beats, rng, channel, style="held")
            notes = [Note(channel, n.pitch + 12 * int(rng.integers(-1, 2)), n.start, n.length, n.velocity)
                     for n in held]
        else:
            notes = _lead_notes(key, n_beats, rng, channel)
        parts.append(_part(channel, program, notes, rng))
        roles[role] = program
    if wanted["drums"]:
        kit = int(rng.choice(TEST_KITS if split == "test" else TRAIN_KITS))
        parts.append(_part(DRUM_CHANNEL, kit, _drum_notes(n_beats, rng), rng))
        roles["drums"] = kit
    return Arrangement(bpm, key, tuple(parts), roles)


def soundfont() -> Path:
    """The General MIDI soundfont fluidsynth renders with (MissingDependencyError with the fix when absent)."""
    if shutil.which("fluidsynth") is None:
        raise MissingDependencyError("separation data needs fluidsynth: apt-get install fluidsynth fluid-soundfont-gm")
    for path in SOUNDFONTS:
        if Path(path).is_file():
            return Path(path)
    raise MissingDependencyError("separation data needs a GM soundfont: apt-get install fluid-soundfont-gm")


def render(arr: Arrangement, n: int, workdir: Path) -> np.ndarray:
    """(n,) float32 mono accompaniment at SAMPLE_RATE: ``arr`` through fluidsynth (deterministic: no dither)."""
    mid, wav = workdir / "song.mid", workdir / "song.wav"
    mid.write_bytes(midi_bytes(arr.parts, arr.bpm, n / SAMPLE_RATE * arr.bpm / 60.0 + 4.0))
    cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav",
           "-g", "0.5", str(soundfont()), str(mid)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not wav.is_file():
        raise MelismaError(f"fluidsynth failed: {(done.stderr or done.stdout).strip()[:160]}")
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    return np.pad(mono, (0, max(0, n - mono.size)))[:n].astype(np.float32)


def _biquad_shelf(x: np.ndarray, freq: float, gain_db: float, high: bool) -> np.ndarray:
    """RBJ-cookbook shelving filter (slope 1) on (n,) ``x``."""
    from scipy.signal import lfilter

    a_lin, w0 = 10 ** (gain_db / 40), 2 * np.pi * freq / SAMPLE_RATE
    cos, alpha = np.cos(w0), np.sin(w0) / 2 * np.sqrt(2)
    s = -1 if high else 1
    sq = 2 * np.sqrt(a_lin) * alpha
    b = a_lin * np.array([(a_lin + 1) - s * (a_lin - 1) * cos + sq, 2 * s * ((a_lin - 1) - s * (a_lin + 1) * cos),
                          (a_lin + 1) - s * (a_lin - 1) * cos - sq])
    a = np.array([(a_lin + 1) + s * (a_lin - 1) * cos + sq, -2 * s * ((a_lin - 1) + s * (a_lin + 1) * cos),
                  (a_lin + 1) + s * (a_lin - 1) * cos - sq])
    return lfilter(b / a[0], a / a[0], x).astype(np.float32)


def colour(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random low shelf (100-400 Hz) and high shelf (2-8 kHz), each -6..+6 dB."""
    y = _biquad_shelf(x, float(rng.uniform(100, 400)), float(rng.uniform(-6, 6)), high=False)
    return _biquad_shelf(y, float(rng.uniform(2000, 8000)), float(rng.uniform(-6, 6)), high=True)


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise (RT60 0.2-1.4 s, 5-30 ms pre-delay), 5-35 % wet."""
    from scipy.signal import fftconvolve

    rt60 = float(rng.uniform(0.2, 1.4))
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    ir = np.concatenate([np.zeros(int(rng.uniform(0.005, 0.03) * SAMPLE_RATE)), ir / np.sqrt((ir**2).sum())])
    wet = fftconvolve(x, ir)[: x.size]
    return (x + float(rng.uniform(0.05, 0.35)) * wet).astype(np.float32)


@dataclass(frozen=True)
class VocalClip:
    """A sung clip the generator may place: its corpus id, voice, audio file, key and tempo."""

    id: str
    voice: str
    path: str
    key: str
    bpm: float


def place_vocal(clips: Sequence[VocalClip], n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """(n,) one voice's clips laid one after another with 0.2-2 s gaps (each -3..+3 dB); and the clip ids."""
    order = rng.permutation(len(clips))
    out, used, at, k = np.zeros(n, np.float32), [], int(rng.uniform(0.0, 1.5) * SAMPLE_RATE), 0
    while at < n - SAMPLE_RATE // 2 and k < 4 * len(clips):
        clip = clips[int(order[k % len(clips)])]
        audio, _ = sf.read(clip.path, dtype="float32", always_2d=True)
        seg = audio.mean(axis=1)[: n - at] * 10 ** (rng.uniform(-3, 3) / 20)
        out[at: at + seg.size] += seg
        used.append(clip.id)
        at, k = at + seg.size + int(rng.uniform(0.2, 2.0) * SAMPLE_RATE), k + 1
    return out, used


@dataclass
class SongRecord:
    id: str
    voice: str
    clips: list[str]
    bpm: float
    key: str
    roles: dict[str, int]
    ratio_db: float
    seconds: float
    root: str = ""

    def stem_path(self, stem: str) -> Path:
        """``stem`` in vocal | accompaniment | mix -> its FLAC file."""
        return Path(self.root) / f"{self.id}.{stem}.flac"

    def load(self, stem: str) -> np.ndarray:
        audio, _ = sf.read(str(self.stem_path(stem)), dtype="float32")
        return audio


def _quantise(x: np.ndarray) -> np.ndarray:
    """Round to the 24-bit PCM grid, so stored stems sum exactly to the stored mix."""
    return (np.round(np.clip(x, -1.0, 1.0 - 1 / PCM24) * PCM24) / PCM24).astype(np.float32)


def make_song(voices: dict[str, list[VocalClip]], seed: int, index: int, split: str, duration_s: float,
              workdir: Path) -> tuple[SongRecord, np.ndarray, np.ndarray]:
    """Song ``index`` of the stream ``(seed, split)``: its record, vocal stem and accompaniment stem, (n,) each."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    n = int(round(duration_s * SAMPLE_RATE))
    voice = sorted(voices)[int(rng.integers(len(voices)))]
    clips = voices[voice]
    lead = clips[int(rng.integers(len(clips)))]
    bpm = lead.bpm if 60 <= lead.bpm <= 180 and rng.random() < 0.7 else float(rng.uniform(70, 160))
    arr = arrange(rng, parse_key(lead.key, rng), round(bpm, 2), duration_s, split)
    acc = colour(render(arr, n, workdir), rng)
    vocal, used = place_vocal(clips, n, rng)
    vocal = colour(room(vocal, rng) if rng.random() < 0.6 else vocal, rng)
    ratio = float(rng.uniform(*RATIO_DB))
    ev, ea = float((vocal**2).sum()), max(float((acc**2).sum()), 1e-12)
    vocal *= np.sqrt(ea / max(ev, 1e-12) * 10 ** (ratio / 10))
    mix = vocal + acc
    level = 10 ** (rng.uniform(-26, -14) / 20) / max(float(np.sqrt((mix**2).mean())), 1e-9)
    level = min(level, 0.95 / max(float(np.abs(mix).max()), 1e-9))
    rec = SongRecord(f"{split}-{seed}-{index:05d}", voice, used, arr.bpm, f"{NOTE_NAMES[arr.key.tonic]} {arr.key.mode}",
                     arr.roles, round(ratio, 3), duration_s)
    return rec, _quantise(vocal * level), _quantise(acc * level)


def vocal_clips(clips) -> dict[str, list[VocalClip]]:
    """Corpus ``ClipRecord``s -> {voice: its sung clips} (speech clips are left out)."""
    out: dict[str, list[VocalClip]] = {}
    for c in clips:
        if c.kind == "sung":
            out.setdefault(c.voice, []).append(VocalClip(c.id, c.voice, str(c.audio_path), c.key, float(c.bpm)))
    if not out:
        raise MelismaError("separation data needs sung clips; the corpus has none (melisma corpus build)")
    return out


def build_separation_data(folder: str | os.PathLike, clips, n_songs: int, seed: int = 0, split: str = "train",
                          duration_s: float = 10.0, log: Callable[[str], None] | None = None) -> Path:
    """Write ``n_songs`` songs made from corpus ``clips`` (sung ones) into the new folder ``folder``.

    The folder is built beside its destination and renamed into place, so it is complete or absent.
    """
    if split not in SPLITS:
        raise MelismaError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    out = Path(folder)
    if out.exists():
        raise MelismaError(f"{out}: exists; choose a new folder for the separation data")
    voices = vocal_clips(clips)
    soundfont()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private; the data gets the usual permissions
    try:
        records = [_write_song(tmp, voices, seed, i, split, duration_s, log) for i in range(n_songs)]
        doc = {**stamp("separation-data"), "generator": GENERATOR_VERSION, "seed": seed, "split": split,
               "sample_rate": SAMPLE_RATE, "soundfont": soundfont().name, "voices": sorted(voices),
               "songs": [asdict(r) for r in records]}
        (tmp / MANIFEST).write_text(json.dumps(doc, indent=1))
        os.replace(tmp, out)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_song(tmp: Path, voices, seed: int, index: int, split: str, duration_s: float, log) -> SongRecord:
    rec, vocal, acc = make_song(voices, seed, index, split, duration_s, tmp)
    for stem, audio in (("vocal", vocal), ("accompaniment", acc), ("mix", vocal + acc)):
        sf.write(str(tmp / f"{rec.id}.{stem}.flac"), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
    for leftover in ("song.mid", "song.wav"):
        (tmp / leftover).unlink(missing_ok=True)
    if log is not None and (index + 1) % 25 == 0:
        log(f"separation data: {index + 1} songs")
    return rec


def load_separation_data(folder: str | os.PathLike) -> list[SongRecord]:
    """The songs of a separation-data folder (format checked; a missing or foreign folder is a one-line error)."""
    path = Path(folder) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MelismaError(f"{folder}: not separation data ({type(exc).__name__}: {str(exc)[:80]})") from None
    check(doc, "separation-data", path)
    return [SongRecord(**{**s, "root": str(Path(folder))}) for s in doc["songs"]]
