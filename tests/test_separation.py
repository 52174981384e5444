"""The learned vocal separator: its data generator, model file, windowed inference and CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from corpus_standins import TINY, trainable_copy

from melisma.audio.constants import SAMPLE_RATE
from melisma.cli import main
from melisma.errors import MelismaError
from melisma.paths import DEMO, SEPARATOR_WEIGHTS
from melisma.separation.metrics import si_sdr_db
from melisma.separation.midi import Note, Part, midi_bytes
from melisma.separation.model import (
    BandSplitMasker,
    SeparatorConfig,
    WindowedSeparator,
    load_separator,
    save_separator,
)

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
TINY_CFG = SeparatorConfig(dim=8, dilations=(1, 2))


def test_midi_bytes_are_a_format0_file_with_every_note():
    notes = tuple(Note(0, 60 + i, i * 0.5, 0.5, 90) for i in range(5))
    data = midi_bytes([Part(0, 24, 100, 20, 0, notes)], 120.0, 4.0)
    assert data[:4] == b"MThd" and data[8:10] == b"\x00\x00" and data[14:18] == b"MTrk"
    assert data.count(bytes([0x90, 64, 90])) == 1 and data.endswith(b"\xff\x2f\x00")
    assert int.from_bytes(data[18:22], "big") == len(data) - 22


@pytest.mark.slow
@needs_fluidsynth
def test_generator_is_deterministic_and_its_stems_sum_to_the_mix(tmp_path):
    from melisma.corpus import load_corpus
    from melisma.separation.data import build_separation_data, load_separation_data

    clips = load_corpus(trainable_copy(tmp_path / "corpus"))
    a = build_separation_data(tmp_path / "a", clips, 2, seed=3, duration_s=3.0)
    b = build_separation_data(tmp_path / "b", clips, 2, seed=3, duration_s=3.0)
    songs = load_separation_data(a)
    assert len(songs) == 2 and (a / "data.json").read_text() == (b / "data.json").read_text()
    for song in songs:
        for stem in ("vocal", "accompaniment", "mix"):
            assert song.stem_path(stem).read_bytes() == (b / song.stem_path(stem).name).read_bytes()
        vocal, acc, mix = song.load("vocal"), song.load("accompaniment"), song.load("mix")
        assert mix.size == 3 * SAMPLE_RATE and np.abs(vocal + acc - mix).max() < 1e-6
        assert np.abs(vocal).max() > 0.01 and np.abs(acc).max() > 0.01  # a voice and a band, both there
        ratio = 10 * np.log10((vocal.astype(np.float64) ** 2).sum() / (acc.astype(np.float64) ** 2).sum())
        assert abs(ratio - song.ratio_db) < 0.05 and -10 <= song.ratio_db <= 6


def test_separator_file_loads_strictly(tmp_path):
    torch.manual_seed(0)
    model = BandSplitMasker(TINY_CFG)
    path = save_separator(model, tmp_path / "sep.safetensors")
    again = load_separator(path)
    x = torch.randn(1, 1025, 20)
    assert torch.equal(model.eval()(x), again(x))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(MelismaError, match="not a melisma separator weights file") as err:
        load_separator(bad)
    assert "\n" not in str(err.value)
    from safetensors.torch import load_file, save_file

    from melisma.formats import safetensors_metadata

    meta = safetensors_metadata(path, "separator-weights")
    meta["config"] = SeparatorConfig(dim=9, dilations=(1, 2)).to_json()
    save_file(load_file(str(path)), str(bad), metadata=meta)
    with pytest.raises(MelismaError, match="do not match their config") as err:
        load_separator(bad)
    assert "\n" not in str(err.value)


def test_windows_join_into_the_whole_song_result():
    torch.manual_seed(1)
    model = BandSplitMasker(TINY_CFG).eval()
    rng = np.random.default_rng(0)
    t = np.arange(7 * SAMPLE_RATE) / SAMPLE_RATE
    mix = (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t)) + 0.05 * rng.standard_normal(t.size))
    windowed = WindowedSeparator(model, window_s=2.0, context_s=1.0, fade_s=0.2)
    whole = windowed.separate_window(mix.astype(np.float32))
    parts = windowed.separate(mix.astype(np.float32))
    assert parts.shape == whole.shape == mix.shape
    assert np.abs(parts - whole).max() < 1e-4 * np.abs(whole).max() + 1e-6
    with pytest.raises(MelismaError, match="context"):
        WindowedSeparator(BandSplitMasker(SeparatorConfig()), context_s=0.3)


@pytest.mark.skipif(not SEPARATOR_WEIGHTS.is_file() or not (DEMO / "demo-song.ogg").is_file(),
                    reason="needs the shipped separator weights and the demo song")
def test_shipped_separator_cleans_a_held_out_song():
    from melisma.audio.io import load_audio
    from melisma.prepare.separate import LeakageMeter, get_separator

    a, b = 20 * SAMPLE_RATE, 26 * SAMPLE_RATE  # 6 s of the demo song (a held-out voice over its backing)
    mix, vocal = load_audio(DEMO / "demo-song.ogg")[0][a:b], load_audio(DEMO / "demo-vocal.ogg")[0][a:b]
    sep = get_separator("learned")
    est = sep.separate(mix)
    assert est.shape == mix.shape
    assert si_sdr_db(est, vocal) > si_sdr_db(mix, vocal) + 6.0
    assert si_sdr_db(mix - est, mix - vocal) > si_sdr_db(mix, mix - vocal) + 3.0
    clean, raw = LeakageMeter(), LeakageMeter()
    clean.add(mix, est)
    raw.add(mix, 0.5 * mix)
    assert clean.db < raw.db  # an even split of the mix is the most ambiguous separation there is


def test_leakage_is_minus_infinity_for_silence_and_low_for_disjoint_stems():
    from melisma.prepare.separate import LeakageMeter

    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    vocal, band = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 3000 * t)
    disjoint, silent = LeakageMeter(), LeakageMeter()
    disjoint.add((vocal + band).astype(np.float32), vocal.astype(np.float32))
    silent.add((vocal + band).astype(np.float32), np.zeros_like(vocal, dtype=np.float32))
    assert disjoint.db < -30 and silent.db == float("-inf")


class EchoVoice:
    """A stand-in voice: 'converts' by halving the vocal (the cover path is what is under test)."""

    def convert(self, audio, sr, **options):
        return 0.5 * np.asarray(audio, np.float32), sr


@pytest.mark.skipif(not SEPARATOR_WEIGHTS.is_file(), reason="needs the shipped separator weights")
def test_cover_keeps_the_learned_stems(tmp_path):
    from melisma.singer.cover import make_cover

    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    song = tmp_path / "song.wav"
    sf.write(str(song), 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 55 * t), SAMPLE_RATE,
             subtype="FLOAT")
    out = make_cover(song, tmp_path / "cover.wav", EchoVoice(), separate="learned", keep_stems=True)
    vocal, _ = sf.read(str(tmp_path / "cover.vocal.wav"))
    acc, _ = sf.read(str(tmp_path / "cover.accompaniment.wav"))
    mix, _ = sf.read(str(song))
    assert out.is_file() and vocal.shape == acc.shape == mix.shape
    assert np.abs(vocal + acc - mix).max() < 1e-3 and np.abs(vocal).max() > 0.0
    assert (tmp_path / "cover.converted.wav").is_file()


def test_separator_recipe_errors_are_one_line(tmp_path, capsys):
    rc = main(["foundation", "separator", "--corpus", str(TINY), "--run", str(tmp_path / "run"), "--songs", "3"])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "--songs" in err
    rc = main(["foundation", "separator", "--corpus", str(TINY), "--run", str(tmp_path / "run"), "--songs", "16"])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "held-out voice" in err
    assert not (tmp_path / "run" / "data").exists()


def test_training_refuses_held_out_voices_in_separation_data():
    from melisma.separation.data import SongRecord
    from melisma.training.separator import refuse_held_out_songs

    song = SongRecord("s", "kokoro:jf_tebukuro", [], 120.0, "C major", {}, 0.0, 10.0)
    with pytest.raises(MelismaError, match="held-out"):
        refuse_held_out_songs([song], "data")


@pytest.mark.parametrize("method", ["dsp", "learned"])
def test_prepare_reports_each_songs_estimated_leakage(tmp_path, capsys, method):
    from melisma.prepare.synthetic import synthetic_song

    if method == "learned" and not SEPARATOR_WEIGHTS.is_file():
        pytest.skip("needs the shipped separator weights")
    song = tmp_path / "song.wav"
    sf.write(str(song), synthetic_song((5.0, 5.0), pause=1.0).mix, SAMPLE_RATE, subtype="FLOAT")
    rc = main(["prepare", str(song), "-o", str(tmp_path / "ds"), "--separate", method, "--min-length", "2"])
    err = capsys.readouterr().err
    assert rc == 0, err
    source = json.loads((tmp_path / "ds" / "manifest.json").read_text())["sources"][0]
    assert isinstance(source["leakage_db"], float) and -60.0 < source["leakage_db"] < 10.0
    assert f"estimated vocal leakage {source['leakage_db']:.1f} dB" in (tmp_path / "ds" / "report.txt").read_text()
    assert "estimated vocal leakage" in err


def _fake_separation_data(folder, n_songs: int, seconds: float = 2.0):
    """A separation-data folder of numpy stems (a vibrato tone over a low drone), without fluidsynth."""
    from melisma.formats import stamp

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    songs = []
    for i in range(n_songs):
        f0 = 200 + 40 * i
        vocal = 0.1 * np.sin(2 * np.pi * f0 * t + 0.5 * np.sin(2 * np.pi * 5 * t))
        acc = 0.1 * np.sin(2 * np.pi * 55 * t) + 0.01 * rng.standard_normal(t.size)
        for stem, audio in (("vocal", vocal), ("accompaniment", acc), ("mix", vocal + acc)):
            sf.write(str(folder / f"s{i}.{stem}.flac"), audio, SAMPLE_RATE, subtype="PCM_24")
        songs.append({"id": f"s{i}", "voice": "espeak:en+f3:p60", "clips": [], "bpm": 120.0, "key": "C major",
                      "roles": {}, "ratio_db": 0.0, "seconds": seconds})
    (folder / "data.json").write_text(json.dumps({**stamp("separation-data"), "songs": songs}))
    return folder


@pytest.mark.slow
def test_training_writes_best_and_last_and_resumes(tmp_path):
    from dataclasses import replace

    from melisma.formats import safetensors_metadata
    from melisma.training.separator import TrainConfig, train_separator

    data = _fake_separation_data(tmp_path / "data", 3)
    cfg = TrainConfig(minutes=0.02, batch=2, crop_s=1.0, val_songs=1, val_every=1000, model=TINY_CFG)
    best = train_separator([data], tmp_path / "run", cfg, log=lambda *_: None)
    first = int(json.loads(safetensors_metadata(tmp_path / "run" / "last.safetensors", "separator-weights")["card"])
                ["step"])
    assert best.is_file() and first > 0
    train_separator([data], tmp_path / "run", replace(cfg, minutes=0.04), log=lambda *_: None)
    again = json.loads(safetensors_metadata(tmp_path / "run" / "last.safetensors", "separator-weights")["card"])
    assert again["step"] > first and again["elapsed_s"] >= 0.04 * 60
    with pytest.raises(MelismaError, match="another model config"):
        train_separator([data], tmp_path / "run", replace(cfg, model=SeparatorConfig(dim=6, dilations=(1,))))
