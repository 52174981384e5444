"""Build a corpus: groups of voices read the same text and sing the same melody (parallel data).

Group ``g`` fixes a language, a text and a melody plan (key, tempo, notes) from ``seed`` and ``g`` alone,
then the voices of that language with the fewest clips so far render it: spoken, and sung through WORLD.
The manifest is rewritten after every group, so a corpus can be used while it grows, and a rerun into
the same folder skips the clips already there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melisma.atomic import atomic_path
from melisma.audio.constants import FRAME_RATE, SAMPLE_RATE, TARGET_LUFS
from melisma.corpus.backends import Speech
from melisma.corpus.manifest import MANIFEST, ClipRecord, load_corpus, write_manifest
from melisma.corpus.melody import Expression, MelodyPlan, fit_register, random_melody
from melisma.corpus.texts import pick_text
from melisma.corpus.voices import RANGES, VoiceSpec, backend_module, parse_voice, synthesize_speech

KINDS = ("speech", "sung")
PEAK_LIMIT = 0.98
EDGE_PAD_S = 0.1


@dataclass(frozen=True)
class BuildOptions:
    voices: tuple[str, ...]
    clips_per_voice: int = 10  # counts spoken and sung clips
    kinds: tuple[str, ...] = KINDS
    parallel: int = 3  # voices per group
    seed: int = 0
    min_f0_accuracy: float = 0.8  # sung renditions whose harvest disagrees more with the melody are dropped
    short: bool = False  # 2-3 s phrases and 4-5 note melodies (tiny test corpora)
    native_singing: bool = False  # festival kal/ked also sing each melody in festival's own singing mode


def normalise_loudness(audio: np.ndarray, sr: int = SAMPLE_RATE, target: float = TARGET_LUFS) -> np.ndarray:
    """Gain to ``target`` LUFS (BS.1770); the rare peaks above 0.7 are soft-limited below 0.98, which
    keeps the loudness on target where plain peak scaling would leave peaky voices 2-3 LU quiet."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sr, block_size=min(0.4, len(audio) / sr * 0.9))
    loud = meter.integrated_loudness(audio.astype(np.float64))
    y = audio * (10 ** ((target - loud) / 20.0)) if np.isfinite(loud) else audio.copy()
    return soft_limit(y).astype(np.float32)


def soft_limit(y: np.ndarray, knee: float = 0.7, ceiling: float = PEAK_LIMIT) -> np.ndarray:
    """Identity below ``knee``; above it, a tanh curve that approaches ``ceiling`` smoothly."""
    mag = np.abs(y)
    over = mag > knee
    if not over.any():
        return y
    room = ceiling - knee
    out = y.copy()
    out[over] = np.sign(y[over]) * (knee + room * np.tanh((mag[over] - knee) / room))
    return out


def trim_bounds(audio: np.ndarray, sr: int, threshold_db: float = -45.0) -> tuple[int, int]:
    """(start, end) samples of ``audio`` without its leading/trailing parts quieter than ``threshold_db`` below
    the peak, keeping 0.1 s pads."""
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak == 0.0:
        return 0, len(audio)
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (threshold_db / 20))
    pad = int(EDGE_PAD_S * sr)
    return max(0, int(loud[0]) - pad), min(len(audio), int(loud[-1]) + pad)


def trim_silence(audio: np.ndarray, sr: int, threshold_db: float = -45.0) -> np.ndarray:
    """``audio`` cut to ``trim_bounds``."""
    start, end = trim_bounds(audio, sr, threshold_db)
    return audio[start:end]


def speech_at_rate(spec: VoiceSpec, text: str, rng: np.random.Generator) -> Speech:
    """Spoken ``text`` by ``spec`` at 44.1 kHz, trimmed, float32; its phone timings moved with the trim."""
    import soxr

    said = synthesize_speech(spec, text, rng)
    if len(said.audio) < said.sr // 4:
        raise ValueError(f"{spec.voice_id} produced no audio for {text!r}")
    audio = said.audio.astype(np.float32)
    audio = soxr.resample(audio, said.sr, SAMPLE_RATE) if said.sr != SAMPLE_RATE else audio
    audio = np.asarray(audio, np.float32)
    start, end = trim_bounds(audio, SAMPLE_RATE)
    return said.with_audio(audio[start:end], SAMPLE_RATE, start / SAMPLE_RATE)


# vowel letters of the Latin-script languages; a run of them is one syllable nucleus (diphthongs included)
VOWEL_LETTERS = {"it": "aeiouàèéìíòóù", "fi": "aeiouyäö", "cs": "aeiouyáéěíóúůý"}


def n_notes_for(text: str, language: str, rng: np.random.Generator) -> int:
    """Roughly one note per syllable, 4..14 notes. ja: ~0.6 per character (a mora per kana, kanji read as
    ~2); en: ~1 per 4.5 letters; it, fi, cs: one per run of vowel letters (their spelling is phonemic; Czech
    syllabic r/l without a vowel are rare in these texts)."""
    if language in VOWEL_LETTERS:
        vowels = VOWEL_LETTERS[language]
        low = text.lower()
        count = float(sum(c in vowels and (i == 0 or low[i - 1] not in vowels) for i, c in enumerate(low)))
    else:
        per = 0.6 if language == "ja" else 1 / 4.5
        count = sum(c.isalnum() for c in text) * per
    return int(np.clip(round(count * rng.uniform(0.8, 1.1)), 4, 14))


@dataclass
class Group:
    index: int
    language: str
    text: str
    plan: MelodyPlan

    @property
    def gid(self) -> str:
        return f"g{self.index:04d}"


def make_group(seed: int, index: int, language: str, short: bool = False) -> Group:
    """Group ``index``: its text and melody depend only on (seed, index, language)."""
    rng = np.random.default_rng([seed, index, 7])
    text = pick_text(language, rng, short)
    n_notes = min(5, n_notes_for(text, language, rng)) if short else n_notes_for(text, language, rng)
    return Group(index, language, text, random_melody(rng, n_notes))


class CorpusBuilder:
    """Renders groups into ``folder`` and keeps its manifest current."""

    def __init__(self, folder: str | Path, options: BuildOptions):
        self.folder = Path(folder)
        self.opt = options
        self.specs = [parse_voice(v) for v in options.voices]
        for backend in sorted({s.backend for s in self.specs}):
            backend_module(backend).check_available()
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = load_corpus(self.folder) if (self.folder / MANIFEST).exists() else []
        self.clips: list[ClipRecord] = existing
        self.ids = {c.id for c in existing}
        self.counts = {s.voice_id: sum(c.voice == s.voice_id for c in existing) for s in self.specs}

    def done(self) -> bool:
        return all(n >= self.opt.clips_per_voice for n in self.counts.values())

    def groups(self) -> Iterator[Group]:
        langs = sorted({s.language for s in self.specs})
        index = 0
        while not self.done():
            behind = [lang for lang in langs
                      if any(self.counts[s.voice_id] < self.opt.clips_per_voice for s in self.specs
                             if s.language == lang)]
            yield make_group(self.opt.seed, index, behind[index % len(behind)], self.opt.short)
            index += 1

    def pick_voices(self, group: Group) -> list[VoiceSpec]:
        rng = np.random.default_rng([self.opt.seed, group.index, 11])
        pool = [s for s in self.specs if s.language == group.language]
        order = sorted(pool, key=lambda s: (self.counts[s.voice_id], rng.random()))
        return order[: self.opt.parallel]

    def render_group(self, group: Group) -> None:
        for spec in self.pick_voices(group):
            try:
                self.render_voice(group, spec)
            except ValueError:
                continue  # a TTS that produced nothing usable for this text: the next group covers it
            write_manifest(self.folder, self.clips)

    def render_voice(self, group: Group, spec: VoiceSpec) -> None:
        from melisma.corpus import singing

        ids = {k: f"{group.gid}-{k}-{spec.slug}" for k in self.opt.kinds}
        if all(i in self.ids for i in ids.values()):
            return
        rng = np.random.default_rng([self.opt.seed, group.index, sum(spec.voice_id.encode())])
        t0 = time.perf_counter()
        said = speech_at_rate(spec, group.text, rng)
        speech = normalise_loudness(said.audio)
        params = singing.analyse(speech)
        t_speech = time.perf_counter() - t0
        phones: dict = {"phones": list(said.phones), "phone_set": said.phone_set}
        if "speech" in self.opt.kinds and ids["speech"] not in self.ids:
            self.save(ids["speech"], spec, group, "speech", speech, params.f0, "harvest", t_speech,
                      renderer="tts", phone_ends=list(said.phone_ends or ()), **phones)
        if "sung" in self.opt.kinds and ids["sung"] not in self.ids:
            t1 = time.perf_counter()
            shift = fit_register(group.plan, *RANGES[spec.register])
            clip = singing.sing(params, group.plan, shift, Expression.random(rng))
            audio = normalise_loudness(clip.audio)
            acc, _ = singing.cents_accuracy(clip.f0, singing.analyse_f0(audio))
            if acc < self.opt.min_f0_accuracy:
                return
            melody = [[n.midi, n.start_s, n.dur_s] for n in clip.notes]
            ends = sung_phone_ends(said, clip.source_frames, len(audio) / SAMPLE_RATE)
            rel_map = f"timemap/{spec.slug}/{ids['sung']}.npy"
            save_npy(self.folder / rel_map, clip.source_frames.astype(np.int32))
            self.save(ids["sung"], spec, group, "sung", audio, clip.f0, "melody",
                      time.perf_counter() - t1 + t_speech, melody=melody, key=group.plan.key,
                      bpm=round(group.plan.bpm, 2), f0_accuracy=round(acc, 4), renderer="world",
                      phone_ends=ends, time_map=rel_map, **phones)
        if self.opt.native_singing and "sung" in self.opt.kinds:
            self.render_native(group, spec)

    def render_native(self, group: Group, spec: VoiceSpec) -> None:
        """Festival's own singing mode (kal, ked): one word per note; its F0 is measured, not imposed."""
        from melisma.corpus.backends import festival
        from melisma.corpus.singing import analyse_f0

        cid = f"{group.gid}-native-{spec.slug}"
        if spec.backend != "festival" or spec.name not in festival.SINGING_VOICES or cid in self.ids:
            return
        t0 = time.perf_counter()
        words = [w.strip(".,!?;:") for w in group.text.split() if w.strip(".,!?;:")]
        if not words:
            return
        shift = fit_register(group.plan, *RANGES[spec.register])
        midis, beats = group.plan.midis(shift), group.plan.beats
        notes = [(midis[i % len(midis)], beats[i % len(beats)]) for i in range(len(words))]
        audio, sr = festival.sing(spec.name, words, notes, group.plan.bpm)
        import soxr

        audio = normalise_loudness(trim_silence(soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32), SAMPLE_RATE))
        f0 = analyse_f0(audio)
        voiced = np.flatnonzero(f0 > 0)
        if len(voiced) < 20:
            return
        # festival follows the score's durations only roughly: lay the notes over the voiced span
        first, span = float(voiced[0] / FRAME_RATE), float((voiced[-1] - voiced[0]) / FRAME_RATE)
        total = sum(b for _, b in notes)
        melody, t = [], first
        for m, b in notes:
            melody.append([m, round(t, 4), round(span * b / total, 4)])
            t += span * b / total
        self.save(cid, spec, group, "sung", audio, f0, "harvest", time.perf_counter() - t0,
                  parallel_group=f"{group.gid}-sung-native", melody=melody, key=group.plan.key,
                  bpm=round(group.plan.bpm, 2), renderer="festival-singing")

    def save(self, cid: str, spec: VoiceSpec, group: Group, kind: str, audio: np.ndarray, f0: np.ndarray,
             f0_source: str, seconds: float, parallel_group: str = "", **extra) -> None:
        from melisma.audio.io import save_audio

        rel_audio = f"audio/{spec.slug}/{cid}.flac"
        rel_f0 = f"f0/{spec.slug}/{cid}.npy"
        save_f0(self.folder / rel_f0, f0)
        save_audio(self.folder / rel_audio, audio, SAMPLE_RATE, subtype="PCM_16")  # atomic too
        rec = ClipRecord(cid, rel_audio, spec.voice_id, kind, group.text, group.language,
                         round(len(audio) / SAMPLE_RATE, 4), rel_f0, f0_source, parallel_group or f"{group.gid}-{kind}",
                         root=str(self.folder.resolve()), synth_seconds=round(seconds, 3), **extra)
        self.clips.append(rec)
        self.ids.add(cid)
        self.counts[spec.voice_id] += 1


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as .npy atomically (a killed build leaves no half-written file)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_f0(path: Path, f0: np.ndarray) -> None:
    """Write (T,) F0 in Hz as float32 .npy atomically."""
    save_npy(path, np.asarray(f0, np.float32))


def sung_phone_ends(said: Speech, source_frames: np.ndarray, duration: float) -> list[float]:
    """The speech's phone end times carried through a WORLD-sung clip's time map ([] without timings)."""
    from melisma.corpus.singing import map_times

    if said.phone_ends is None:
        return []
    return [min(t, round(duration, 4)) for t in map_times(said.phone_ends, source_frames)]


def build_corpus(folder: str | Path, voices: Sequence[str], clips_per_voice: int = 10,
                 kinds: Sequence[str] = KINDS, parallel: int = 3, seed: int = 0,
                 short: bool = False, native_singing: bool = False) -> list[ClipRecord]:
    """Render (or extend) the corpus in ``folder``; returns all its clip records.

    ``voices``: voice ids; ``clips_per_voice`` counts spoken and sung clips; ``kinds`` from ("speech",
    "sung"); ``parallel`` voices render each text; ``short`` makes 2-3 s phrases; ``native_singing``
    adds festival's own singing-mode renditions for the kal/ked voices.
    """
    from melisma.progress import track

    bad = set(kinds) - set(KINDS)
    if bad or not kinds:
        raise ValueError(f"kinds must be taken from {KINDS}, got {list(kinds)}")
    opt = BuildOptions(tuple(voices), clips_per_voice, tuple(kinds), parallel, seed, short=short,
                       native_singing=native_singing)
    builder = CorpusBuilder(folder, opt)
    per_group = max(1, min(parallel, len(voices)) * len(kinds))
    need = sum(max(0, clips_per_voice - n) for n in builder.counts.values())
    for group in track(builder.groups(), "rendering corpus", total=-(-need // per_group)):
        builder.render_group(group)
    write_manifest(folder, builder.clips)
    return builder.clips
