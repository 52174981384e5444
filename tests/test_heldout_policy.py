"""The held-out policy is enforced: no foundation recipe trains on a held-out voice; the one corpus reader."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from corpus_standins import TINY, trainable_copy, write_clips

from melisma.corpus import FORMAT, HELD_OUT_VOICES, load_corpus, trainable_clips
from melisma.errors import MelismaError


def _content(corpus, out):
    from melisma.training.content import TrainConfig, train

    train([corpus], out / "content.safetensors", TrainConfig(minutes=0.01, max_steps=1))


def _vocoder(corpus, out):
    from melisma.training.vocoder import train_vocoder

    train_vocoder([corpus], out, steps=1, eval_every=1, log=lambda *_: None)


def _singer_base(corpus, out):
    from melisma.training.singer import TrainConfig
    from melisma.training.singer_base import train_base

    train_base(corpus, out, TrainConfig(teacher_steps=1, distill_steps=0))


def _separator(corpus, out):
    from melisma.training.separator import TrainConfig, foundation_separator

    foundation_separator([corpus], out, n_songs=16, cfg=TrainConfig(minutes=0.01))


def _oneshot(corpus, out):
    from melisma.training.oneshot import OneShotTrainConfig, train_oneshot

    train_oneshot([corpus], out, OneShotTrainConfig(teacher_steps=1, distill_steps=0))


def _stream(corpus, out):
    from melisma.training.streaming import foundation_stream

    foundation_stream([corpus], out, max_steps=1, log=lambda *_: None)


RECIPES = {"content": _content, "vocoder": _vocoder, "singer": _singer_base, "separator": _separator, "oneshot": _oneshot,
           "stream": _stream}


def _started(*_args, **_kwargs):
    raise AssertionError("training started on a corpus with a held-out voice")


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a recipe gets as far as loading audio for training."""
    import melisma.separation.data as separation_data
    import melisma.training.content as content
    import melisma.training.oneshot as oneshot
    import melisma.training.singer_base as singer_base
    import melisma.training.streaming as streaming
    import melisma.training.vocoder as vocoder

    monkeypatch.setattr(content, "ClipBank", _started)
    monkeypatch.setattr(vocoder, "clips_in_memory", _started)
    monkeypatch.setattr(singer_base, "train_voice", _started)
    monkeypatch.setattr(separation_data, "build_separation_data", _started)
    monkeypatch.setattr(oneshot, "load_data", _started)
    monkeypatch.setattr(streaming, "fit", _started)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_refuses_a_corpus_with_a_held_out_voice(recipe, tmp_path, no_training):
    out = tmp_path / "run"
    with pytest.raises(MelismaError, match="held-out voice") as err:
        RECIPES[recipe](TINY, out)
    assert "festival:kal" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("voice", [*HELD_OUT_VOICES, "kokoro:jm_kumo+jf_nezumi@0.4", "kokoro:jf_tebukuro+jf_alpha@0.3"])
def test_one_held_out_clip_among_trainable_ones_is_refused(voice, tmp_path, no_training):
    tone = (0.3 * np.sin(np.arange(22050) * 0.05)).astype(np.float32)
    corpus = write_clips(tmp_path / "c", [("espeak:en+f3", tone, None), (voice, tone, None)])
    for name, recipe in RECIPES.items():
        with pytest.raises(MelismaError, match="held-out voice"):
            recipe(corpus, tmp_path / name)


def _sub_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_the_cli_covers_every_foundation_stage(tmp_path, capsys, no_training):
    from melisma.cli import main
    from melisma.cli.foundation import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    stages = set(_sub_commands(_sub_commands(parser)["foundation"]))
    argv = {"content": ["--corpus", str(TINY), "-o", str(tmp_path / "c.safetensors")],
            "vocoder": ["--corpus", str(TINY), "-o", str(tmp_path / "voc")],
            "singer": [str(TINY), "--run", str(tmp_path / "run")],
            "separator": ["--corpus", str(TINY), "--run", str(tmp_path / "sep")],
            "oneshot": [str(TINY), "--run", str(tmp_path / "oneshot")],
            "stream": [str(TINY), "--run", str(tmp_path / "stream")]}
    assert stages == set(argv) == set(RECIPES)  # a new stage needs its row here and in RECIPES
    for stage, args in argv.items():
        assert main(["foundation", stage, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert "held-out voice" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_trainable_clips_accepts_the_corpus_without_held_out_voices(tmp_path):
    clips = trainable_clips([trainable_copy(tmp_path)])
    assert {c.voice for c in clips} == {"espeak:en+f3:p60", "festival:ked", "kokoro:jf_alpha"}
    assert all(c.audio_path.is_file() and c.f0_path.is_file() for c in clips)


# --- the one reader ----------------------------------------------------------------------------


def _manifest(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.json").write_text(json.dumps({"format": FORMAT, "format_version": 1, "clips": [], **fields}))
    return folder


@pytest.mark.parametrize(("fields", "message"), [
    ({"format_version": 3}, "newer than this melisma reads"),
    ({"format_version": "x"}, "no valid format_version"),
    ({"format": 1}, "not a melisma corpus manifest"),  # the old content fallback's own file
    ({"clips": {"a": 1}}, "no list of clips"),
    ({"clips": [{"path": "a.flac", "voice": "espeak:en"}]}, "incomplete"),
])
def test_reader_refuses_foreign_newer_and_incomplete_manifests(tmp_path, fields, message):
    with pytest.raises(MelismaError, match=message) as err:
        load_corpus(_manifest(tmp_path / "c", **fields))
    assert "\n" not in str(err.value)


def test_reader_refuses_a_bare_clip_list_and_a_missing_manifest(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps([{"path": "a.flac", "voice": "x"}]))
    with pytest.raises(MelismaError, match="not a melisma corpus manifest"):
        load_corpus(tmp_path)
    with pytest.raises(MelismaError, match="no corpus.json"):
        load_corpus(tmp_path / "nothing")
    (tmp_path / "corpus.json").write_text("{")
    with pytest.raises(MelismaError, match="unreadable"):
        load_corpus(tmp_path)


def test_written_manifests_carry_the_format_name_and_old_ones_still_read(tmp_path):
    tone = (0.3 * np.sin(np.arange(22050) * 0.05)).astype(np.float32)
    f0 = np.full(22050 // 512 + 1, 110.0, np.float32)
    folder = write_clips(tmp_path / "c", [("espeak:en+f3", tone, f0)])
    data = json.loads((folder / "corpus.json").read_text())
    assert data["format"] == FORMAT and data["format_version"] == 2
    (rec,) = load_corpus(folder)
    assert rec.has_f0 and rec.voice_dir == folder.resolve() / "audio" / "espeak-en-f3"
    assert rec.load_f0(50).shape == (50,) and rec.load_f0(50)[-1] == 0 and rec.load_f0(3).tolist() == [110.0] * 3
    assert "format" not in json.loads((TINY / "corpus.json").read_text())  # written before the name
    assert len(load_corpus(TINY)) >= 8
    assert list(folder.rglob(".*.tmp")) == []  # atomic writes leave no temporary files
