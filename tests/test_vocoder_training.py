"""Builtin vocoder training: a few optimiser steps on one real batch reduce the loss."""

from __future__ import annotations

import json

import numpy as np
import torch
from corpus_standins import write_clips

from melisma.training.vocoder import load_clips, sample_batch, spectral_loss
from melisma.vocoder.builtin import BuiltinConfig, BuiltinVocoder


def _tiny_corpus(tmp_path, sine_clip):
    audio, _, true_f0 = sine_clip
    f0 = true_f0[np.arange(len(audio) // 512 + 1) * 512].astype(np.float32)
    return write_clips(tmp_path, [("espeak:en+f3", audio, f0)])


def test_overfit_reduces_loss(tmp_path, sine_clip):
    torch.manual_seed(0)
    clips = load_clips([_tiny_corpus(tmp_path, sine_clip)])
    assert torch.allclose(clips[0].f0[:10], torch.from_numpy(sine_clip[2][np.arange(10) * 512]).float())  # true F0 used
    assert clips[0].mel.shape == (128, len(clips[0].audio) // 512 + 1) == (128, clips[0].f0.shape[0])
    mel, f0, audio = sample_batch(clips, 1, 16, np.random.default_rng(0))
    assert mel.shape == (1, 128, 16) and f0.shape == (1, 16) and audio.shape == (1, 16 * 512)
    model = BuiltinVocoder(BuiltinConfig(hidden=32, n_blocks=1)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        torch.manual_seed(1)  # same noise each step: the loss change is the model's
        loss, _ = spectral_loss(model(mel, f0), audio)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_foundation_cli_bad_corpus_writes_nothing(tmp_path, capsys):
    from melisma.cli import main

    out = tmp_path / "run"
    assert main(["foundation", "vocoder", "--corpus", str(tmp_path / "nowhere"), "-o", str(out)]) != 0
    assert "no corpus.json" in capsys.readouterr().err
    assert not out.exists()


def test_train_vocoder_writes_its_history_and_weights(tmp_path):
    from corpus_standins import trainable_copy

    from melisma.training.vocoder import train_vocoder

    corpus = trainable_copy(tmp_path / "corpus")
    best = train_vocoder([corpus], tmp_path / "run", steps=2, batch=2, frames=16, eval_every=1,
                         cfg=BuiltinConfig(hidden=32, n_blocks=1), log=lambda *_: None)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2] and all(np.isfinite(h["val_mel_l1"]) for h in history)
    assert best.is_file() and (tmp_path / "run" / "last.safetensors").is_file()
    assert list((tmp_path / "run").glob(".*.tmp")) == []
