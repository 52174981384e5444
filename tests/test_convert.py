"""Conversion with a tiny pack and stand-in encoder/vocoder: CLI round trip, transpose, chunking, singer mix."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch
from singer_standins import StandInEncoder, StandInVocoder, tiny_pack, write_clip

import melisma.singer.convert as conv
from melisma import paths
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.cli import main
from melisma.errors import MelismaError
from melisma.singer.chunking import convert_in_chunks, crossfade_weights, plan_cuts


@pytest.fixture(autouse=True)
def stand_ins(monkeypatch):
    """The pack names the stand-ins; load_voice gets them instead of the shipped encoder and vocoder."""
    comps = {"content": StandInEncoder(), "vocoder": StandInVocoder()}
    monkeypatch.setattr(conv, "default_component", lambda kind, identity: comps[kind])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def pack(tmp_path):
    return tiny_pack(tmp_path / "tiny.melisma")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_convert_round_trip(tmp_path, pack, capsys):
    src = tmp_path / "in.wav"
    audio = write_clip(src, 1.5, sr=32_000)
    digest = _digest(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "sung.flac"
    rc = main(["-q", "convert", str(src), "-v", str(pack), "-o", str(out), "--singer", "bass",
               "--sample-rate", "22050", "-t", "2"])
    assert rc == 0, capsys.readouterr().err
    y, sr = sf.read(str(out))
    assert sr == 22050
    assert y.shape == (round(audio.size * 22050 / 32_000),)
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3
    assert _digest(src) == digest  # input untouched
    assert sorted(p.name for p in out_dir.iterdir()) == ["sung.flac"]  # no temporary left behind


def test_cli_bad_input_is_one_line(tmp_path, pack, capsys):
    rc = main(["convert", str(tmp_path / "nope.wav"), "-v", str(pack), "-o", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "no such file" in err
    src = tmp_path / "in.wav"
    write_clip(src, 0.5)
    for extra, words in ((["-v", "no-such-voice"], "no such voice pack"),
                         (["-v", str(pack), "--singer", "tenor"], "not in this voice pack"),
                         (["-v", str(pack), "-t", "99"], "transpose"),
                         (["-v", str(pack), "--steps", "0"], "steps")):
        rc = main(["convert", str(src), "-o", str(tmp_path / "o.wav"), *extra])
        err = capsys.readouterr().err
        assert rc != 0 and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "o.wav").exists()
    rc = main(["convert", str(src), "-v", str(pack), "-o", str(src)])
    assert rc != 0 and "overwrite the input" in capsys.readouterr().err


def test_transpose_scales_model_f0(pack):
    voice = conv.load_voice(pack)
    audio = write_clip_array(1.0, 220.0)
    base, zero = voice.model_f0(audio)
    up, three = voice.model_f0(audio, transpose=3)
    assert (zero, three) == (0.0, 3.0)
    voiced = base > 0
    assert voiced.mean() > 0.8
    np.testing.assert_allclose(up[voiced] / base[voiced], 2 ** (3 / 12), rtol=1e-5)
    # auto-transpose to the bass (median 110 Hz) moves a 220 Hz melody down an octave
    w = conv.parse_singer_mix("bass", voice.singers)
    auto, shift = voice.model_f0(audio, auto_transpose=True, weights=w)
    assert np.median(auto[voiced] / base[voiced]) == pytest.approx(0.5, rel=1e-5) and shift == -12.0
    done = voice.convert_detailed(audio, SAMPLE_RATE, auto_transpose=True, transpose=1, singer="bass")
    assert done.transpose == -11.0 and done.sr == SAMPLE_RATE and done.audio.shape == audio.shape


def write_clip_array(seconds, f0):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)).astype(np.float32)


def test_singer_mix_validation():
    singers = ["a", "b"]
    np.testing.assert_allclose(conv.parse_singer_mix("a:0.7,b:0.3", singers).numpy(), [0.7, 0.3], rtol=1e-6)
    np.testing.assert_allclose(conv.parse_singer_mix({"a": 1, "b": 3}, singers).numpy(), [0.25, 0.75])
    np.testing.assert_allclose(conv.parse_singer_mix("b", singers).numpy(), [0.0, 1.0])
    np.testing.assert_allclose(conv.parse_singer_mix(None, ["solo"]).numpy(), [1.0])
    for bad, words in (("c", "not in this voice pack"), ("a:-1", ">= 0"), ("a:x", "not a number"),
                       ("a:0,b:0", "sum to zero"), ("a:nan", "finite")):
        with pytest.raises(MelismaError, match=words):
            conv.parse_singer_mix(bad, singers)


def test_chunk_cuts_fall_in_silence():
    sr = SAMPLE_RATE
    tone = write_clip_array(3.0, 300.0)
    gap = np.zeros(int(0.3 * sr), dtype=np.float32)
    audio = np.concatenate([tone, gap, tone, gap, tone])
    cuts = plan_cuts(audio, max_chunk_s=4.0, search_s=2.0)
    assert cuts[0] == 0 and cuts[-1] == audio.size and len(cuts) >= 3
    for c in cuts[1:-1]:
        assert c % HOP_SIZE == 0
        assert np.abs(audio[c - 256:c + 256]).max() < 1e-3  # inside a pause


def test_crossfaded_chunks_have_no_seams():
    rng = np.random.default_rng(0)
    audio = (0.3 * np.sin(2 * np.pi * 200 * np.arange(8 * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    cuts = [0, 2 * SAMPLE_RATE // HOP_SIZE * HOP_SIZE, 5 * SAMPLE_RATE // HOP_SIZE * HOP_SIZE, audio.size]
    # identity conversion: weights sum to one everywhere, so the chunks rebuild the input exactly
    same = convert_in_chunks(audio, lambda seg, start: seg, cuts)
    np.testing.assert_allclose(same, audio, atol=1e-6)
    # a different gain per chunk: the joins are smooth ramps, never jumps
    gains = {}
    out = convert_in_chunks(audio, lambda seg, start: seg * gains.setdefault(start, rng.uniform(0.5, 1.5)), cuts)
    jumps = np.abs(np.diff(out))
    assert jumps.max() < 1.6 * np.abs(np.diff(audio)).max()
    w = crossfade_weights(100, 40, True, True)
    np.testing.assert_allclose(w[:40] + w[-40:], np.ones(40), atol=1e-12)  # fade-in + fade-out of a join


def test_long_audio_voice_conversion_is_chunked_and_seamless(pack):
    voice = conv.load_voice(pack)
    audio = write_clip_array(5.0, 220.0)
    calls = []
    render = voice.render
    voice.render = lambda seg, *a, **k: calls.append(seg.size) or render(seg, *a, **k)
    y, sr = voice.convert(audio, SAMPLE_RATE, max_chunk_s=2.0)
    assert len(calls) >= 3 and sr == SAMPLE_RATE and y.shape == audio.shape and np.isfinite(y).all()
    whole, _ = conv.load_voice(pack).convert(audio, SAMPLE_RATE)
    # the stand-in vocoder is a sine at F0 scaled by the model's mel energy: chunked and whole outputs share
    # their envelope, and the chunked one has no jump larger than the signal's own sample-to-sample change
    assert np.abs(np.diff(y)).max() <= 1.5 * np.abs(np.diff(whole)).max() + 1e-4


def test_cli_cover_dry_vocal_keeps_stems(tmp_path, pack, capsys):
    src = tmp_path / "song.wav"
    audio = write_clip(src, 1.0)
    out = tmp_path / "cover.wav"
    rc = main(["-q", "cover", str(src), "-v", str(pack), "-o", str(out), "--separate", "none", "--keep-stems"])
    assert rc == 0, capsys.readouterr().err
    y, sr = sf.read(str(out))
    assert sr == SAMPLE_RATE and y.shape == audio.shape and np.isfinite(y).all()
    stems = sorted(p.name for p in tmp_path.glob("cover.*.wav"))
    assert stems == ["cover.accompaniment.wav", "cover.converted.wav", "cover.vocal.wav"]


def test_cli_train_bad_dataset_is_one_line(tmp_path, capsys):
    rc = main(["train", str(tmp_path / "missing"), "-o", str(tmp_path / "v.melisma")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "dataset folder not found" in err
    (tmp_path / "empty").mkdir()
    rc = main(["train", str(tmp_path / "empty"), "-o", str(tmp_path / "v.melisma")])
    assert rc != 0 and "no audio clips" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing written


def test_cli_train_options_reach_the_run_and_bad_ones_are_refused(tmp_path, capsys):
    from melisma.singer.voicepack import load_pack

    data = tmp_path / "alto"
    data.mkdir()
    for i in range(3):
        write_clip(data / f"c{i}.wav", 1.5, 220.0 * (1 + i / 10))
    out = tmp_path / "alto.melisma"
    rc = main(["-q", "train", str(data), "-o", str(out), "--from-scratch", "--batch-size", "0"])
    assert rc == 2 and "--batch-size 0" in capsys.readouterr().err and not out.exists()
    rc = main(["-q", "train", str(data), "-o", str(out), "--from-scratch", "--teacher-steps", "2",
               "--distill-steps", "1", "--batch-size", "2"])
    assert rc == 0, capsys.readouterr().err
    info = load_pack(out).info
    assert (info["teacher_steps"], info["distill_steps"], info["from_base"]) == (2, 1, False)


def test_multi_step_samplers_and_packs_without_teacher(tmp_path, pack):
    voice = conv.load_voice(pack)
    audio = write_clip_array(0.5, 330.0)
    for sampler in ("consistency", "teacher"):
        y, sr = voice.convert(audio, SAMPLE_RATE, steps=3, sampler=sampler, singer="alto:0.5,bass:0.5")
        assert y.shape == audio.shape and np.isfinite(y).all()
    student_only = conv.load_voice(tiny_pack(tmp_path / "s.melisma", teacher=False))
    with pytest.raises(MelismaError, match="no teacher"):
        student_only.convert(audio, SAMPLE_RATE, steps=2, sampler="teacher")
    with pytest.raises(MelismaError, match="trained with the content encoder .test-encoder.; the loaded one is .test-vocoder."):
        conv.Voice(voice.pack, StandInVocoder(), StandInVocoder())


def test_builtin_voices_are_singers_of_the_base_pack(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BASE_PACK", tiny_pack(tmp_path / "base.melisma"))
    monkeypatch.setattr(paths, "BUILTIN_VOICES", tmp_path / "voices")
    assert conv.builtin_voices() == ["alto", "bass"]
    voice = conv.load_voice("bass")
    assert voice.default_singer == "bass"
    audio = write_clip_array(0.5, 220.0)
    np.testing.assert_allclose(voice.convert(audio, SAMPLE_RATE)[0], voice.convert(audio, SAMPLE_RATE,
                                                                                   singer="bass")[0])
    with pytest.raises(MelismaError, match="built-in: alto, bass"):
        conv.load_voice("tenor")


def test_cli_converts_a_folder(tmp_path, pack, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.flac"):
        write_clip(src / name, 0.5)
    (src / "notes.txt").write_text("not audio")
    rc = main(["-q", "convert", str(src), "-v", str(pack), "-o", str(tmp_path / "out"), "--format", "flac"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.flac", "b.flac"]


def test_cli_convert_times_itself_for_evaluate(tmp_path, pack, capsys):
    import json

    src = tmp_path / "in.wav"
    write_clip(src, 1.0)
    out, timings = tmp_path / "out.wav", tmp_path / "timings.json"
    rc = main(["-q", "convert", str(src), "-v", str(pack), "-o", str(out), "-t", "3", "--timings", str(timings)])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(timings.read_text())
    assert doc["format"] == "melisma.timings" and doc["format_version"] == 1 and list(doc["clips"]) == [str(out)]
    entry = doc["clips"][str(out)]
    assert 0.0 < entry["seconds"] < 60.0 and entry["transpose"] == 3.0
    scores = tmp_path / "scores.json"
    rc = main(["-q", "evaluate", str(out), "--metrics", "speed,pitch", "--source", str(src), "--judge-pitch", "dio",
               "--rtf-json", str(timings), "--json", str(scores)])
    assert rc == 0, capsys.readouterr().err
    clip = json.loads(scores.read_text())["clips"][0]
    assert clip["rtf"] == pytest.approx(entry["seconds"] / 1.0, rel=0.02)
    assert clip["cents_error_median"] < 30  # the timings file told evaluate the melody was moved up 3 semitones
    rc = main(["-q", "evaluate", str(out), "--metrics", "pitch", "--source", str(src), "--judge-pitch", "dio",
               "--rtf-json", str(timings), "--transpose", "0", "--json", str(scores)])
    assert rc == 0 and abs(json.loads(scores.read_text())["clips"][0]["cents_error_median"] - 300) < 30


def test_evaluate_reads_the_older_plain_timings_map(tmp_path):
    import json

    from melisma.errors import MelismaError
    from melisma.evaluate.timings import read_timings

    plain = tmp_path / "t.json"
    plain.write_text(json.dumps({"a.wav": 1.5}))
    assert read_timings(plain, ["out/a.wav", "b.wav"]) == ([1.5, None], [None, None])
    plain.write_text(json.dumps({"a.wav": "slow"}))
    with pytest.raises(MelismaError, match="a.wav"):
        read_timings(plain, ["a.wav"])
