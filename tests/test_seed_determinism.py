"""--seed makes preparation, training and conversion repeat exactly on the CPU (and another seed changes them)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from singer_standins import TINY, StandInEncoder, StandInVocoder, tiny_pack, write_clip

from melisma.singer.voicepack import load_pack
from melisma.training.singer import TrainConfig, train_voice


def _digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_prepare_twice_writes_the_same_dataset(tmp_path):
    from melisma.prepare.pipeline import PrepareSettings, prepare_dataset

    src = tmp_path / "song.wav"
    write_clip(src, 6.0)
    for name in ("a", "b"):
        prepare_dataset([src], tmp_path / name, PrepareSettings(separate="dsp"))
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    manifest = [json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("a", "b")]
    assert {k: v for k, v in a.items() if k != "manifest.json"} == {k: v for k, v in b.items() if k != "manifest.json"}
    assert manifest[0]["clips"] == manifest[1]["clips"]


def _train(tmp_path, data, name, seed):
    torch.set_num_threads(1)
    cfg = TrainConfig(teacher_steps=4, distill_steps=3, batch_size=2, segment_frames=16, pitch_shifts=(2.0,),
                      val_every=1000, from_scratch=True, seed=seed, model=TINY)
    return load_pack(train_voice([("alto", data)], tmp_path / name, cfg, content_encoder=StandInEncoder(),
                                 vocoder=StandInVocoder()))


@pytest.mark.slow
def test_training_with_a_seed_repeats_exactly(tmp_path):
    data = tmp_path / "alto"
    data.mkdir()
    for i in range(3):
        write_clip(data / f"c{i}.wav", 1.0, 200.0 + 30 * i)
    a, b, c = (_train(tmp_path, data, n, s) for n, s in (("a.melisma", 3), ("b.melisma", 3), ("c.melisma", 4)))
    key = "denoiser.head.weight"
    assert all(torch.equal(v, b.student[k]) for k, v in a.student.items())
    assert not torch.equal(a.student[key], c.student[key]) and a.info["seed"] == 3


def test_conversion_with_a_seed_repeats_exactly(tmp_path):
    from melisma.singer.convert import load_voice

    voice = load_voice(tiny_pack(tmp_path / "v.melisma"), content_encoder=StandInEncoder(), vocoder=StandInVocoder())
    audio = write_clip(tmp_path / "in.wav", 1.0)
    runs = [voice.convert(audio, 44100, singer="alto", seed=s)[0] for s in (5, 5, 6)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
