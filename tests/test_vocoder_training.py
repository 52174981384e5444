"""Builtin vocoder training: a few optimiser steps on one real batch reduce the loss."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

from melisma.audio.constants import SAMPLE_RATE
from melisma.training.vocoder import load_clips, sample_batch, spectral_loss
from melisma.vocoder.builtin import BuiltinConfig, BuiltinVocoder


def _tiny_corpus(tmp_path, sine_clip):
    audio, _, true_f0 = sine_clip
    sf.write(tmp_path / "a.flac", audio, SAMPLE_RATE)
    f0 = true_f0[np.arange(len(audio) // 512 + 1) * 512].astype(np.float32)
    np.save(tmp_path / "a.npy", f0)
    (tmp_path / "corpus.json").write_text(json.dumps({"clips": [{"path": "a.flac", "f0": "a.npy", "voice": "x"}]}))
    return tmp_path


def test_overfit_reduces_loss(tmp_path, sine_clip):
    torch.manual_seed(0)
    clips = load_clips([_tiny_corpus(tmp_path, sine_clip)])
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
