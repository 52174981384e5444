"""Builtin vocoder: shipped weights load strictly, output has the interface's shape, pitch follows F0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.features.mel import log_mel
from melisma.vocoder import get_vocoder
from melisma.vocoder.builtin import (
    BuiltinConfig,
    BuiltinVocoder,
    default_weights_path,
    load_builtin,
    save_builtin,
)
from melisma.vocoder.source import fill_unvoiced, pulse_train


def test_shipped_weights_load_and_shape():
    vocoder = get_vocoder("builtin")
    assert default_weights_path().stat().st_size < 8_000_000
    mel = torch.randn(2, 128, 30) - 5
    f0 = torch.full((2, 30), 180.0)
    f0[1, 10:20] = 0
    with torch.inference_mode():
        out = vocoder(mel, f0)
    assert out.shape == (2, 30 * HOP_SIZE)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0 and out.std() > 1e-4


def test_noise_comes_from_the_given_generator():
    vocoder = get_vocoder("builtin")
    mel, f0 = torch.randn(1, 128, 20) - 5, torch.full((1, 20), 200.0)
    f0[0, :8] = 0  # unvoiced frames are mostly noise

    def render(seed: int) -> torch.Tensor:
        torch.manual_seed(seed + 100)  # the global generator must not matter
        with torch.inference_mode():
            return vocoder(mel, f0, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(render(1), render(1))
    assert (render(1) - render(2)).abs().max() > 1e-3


def test_pitch_follows_vibrato(sine_clip):
    from melisma.features.pitch import world_f0

    audio, sr, true_f0 = sine_clip
    mel = log_mel(audio)
    frames = mel.shape[-1]
    f0 = torch.from_numpy(true_f0[np.arange(frames) * HOP_SIZE].astype(np.float32))[None]
    torch.manual_seed(0)
    with torch.inference_mode():
        out = get_vocoder("builtin")(mel, f0)[0].double().numpy()
    est, _ = world_f0(out, SAMPLE_RATE, "harvest", refine=False, f0_min=80, f0_max=600)
    n = min(len(est), frames) - 5
    ref = f0[0, 5:n].double().numpy()
    voiced = est[5:n] > 0
    assert voiced.mean() > 0.9
    cents = np.abs(1200 * np.log2(est[5:n][voiced] / ref[voiced]))
    assert np.median(cents) < 10.0


def test_pulse_train_spectrum_is_harmonic():
    f0 = torch.full((1, SAMPLE_RATE), 441.0)
    x = pulse_train(f0)[0].numpy()
    spec = np.abs(np.fft.rfft(x))  # 1 Hz bins
    harmonics = spec[441 * np.arange(1, 50)]
    assert harmonics.min() > 0.3 * harmonics.max()
    off = np.delete(spec[300:22000], np.arange(141, 21700, 441)[:, None] + np.arange(-2, 3))
    assert off.max() < 0.01 * harmonics.max()


def test_fill_unvoiced_holds_neighbours():
    f0 = torch.tensor([[0.0, 0.0, 200.0, 0.0, 0.0, 300.0, 0.0]])
    assert fill_unvoiced(f0).tolist() == [[200.0, 200.0, 200.0, 200.0, 200.0, 300.0, 300.0]]


def test_save_load_round_trip_and_strictness(tmp_path):
    cfg = BuiltinConfig(hidden=16, n_blocks=1)
    model = BuiltinVocoder(cfg)
    save_builtin(model, tmp_path / "v.safetensors")
    loaded = load_builtin(tmp_path / "v.safetensors")
    assert loaded.cfg == cfg
    torch.testing.assert_close(loaded.state_dict()["net.head.weight"], model.state_dict()["net.head.weight"])
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = load_file(tmp_path / "v.safetensors")
    with safe_open(str(tmp_path / "v.safetensors"), "pt") as fh:
        meta = fh.metadata()
    del state["net.head.bias"]
    save_file(state, tmp_path / "bad.safetensors", metadata=meta)
    with pytest.raises(MelismaError, match="missing.*net.head.bias"):
        load_builtin(tmp_path / "bad.safetensors")
    with pytest.raises(MelismaError):
        load_builtin(tmp_path / "missing.safetensors")
