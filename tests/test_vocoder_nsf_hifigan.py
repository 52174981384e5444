"""NSF-HiFiGAN loader: a tiny random generator saved in the openvpi format loads back strictly."""

from __future__ import annotations

import json

import pytest
import torch

from melisma.errors import MelismaError
from melisma.vocoder import get_vocoder
from melisma.vocoder.nsf_hifigan import NsfHifiganConfig, NsfHifiganGenerator, weight_normed_prefixes

TINY = {
    "resblock": "1", "upsample_rates": [8, 8, 8], "upsample_kernel_sizes": [16, 16, 16],
    "upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
    "num_mels": 128, "sampling_rate": 44100, "hop_size": 512, "n_fft": 2048, "win_size": 2048,
}

# Key names of the openvpi generator (DDSP-SVC / so-vits-svc nsf_hifigan/models.py), written out by hand.
OPENVPI_KEYS = {
    "m_source.l_linear.weight", "m_source.l_linear.bias",
    "conv_pre.weight_g", "conv_pre.weight_v", "conv_pre.bias",
    "ups.0.weight_g", "ups.0.weight_v", "ups.0.bias",
    "noise_convs.0.weight", "noise_convs.0.bias", "noise_convs.2.weight",
    "resblocks.0.convs1.0.weight_g", "resblocks.0.convs1.2.weight_v", "resblocks.0.convs2.1.bias",
    "resblocks.2.convs2.2.weight_g", "conv_post.weight_g", "conv_post.weight_v", "conv_post.bias",
}


def _openvpi_state(model: NsfHifiganGenerator) -> dict[str, torch.Tensor]:
    """Our fused state dict re-expressed with weight_g / weight_v pairs, as torch's weight_norm saves it."""
    state = dict(model.state_dict())
    for p in weight_normed_prefixes(model):
        w = state.pop(f"{p}.weight")
        g = w.flatten(1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))
        state[f"{p}.weight_g"], state[f"{p}.weight_v"] = g, w / g * 3.0  # v's scale must not matter
    return state


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = NsfHifiganGenerator(NsfHifiganConfig.from_json(TINY))
    folder = tmp_path / "nsf_hifigan"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    state = _openvpi_state(model)
    torch.save({"generator": state}, folder / "model")
    return folder, model, state


def test_openvpi_key_names(tiny_checkpoint):
    _, _, state = tiny_checkpoint
    assert OPENVPI_KEYS <= set(state)


def test_round_trip_shape_and_determinism(tiny_checkpoint):
    folder, original, _ = tiny_checkpoint
    vocoder = get_vocoder("nsf-hifigan", path=folder)
    mel = torch.randn(2, 128, 20) - 5
    f0 = torch.full((2, 20), 220.0)
    f0[:, :5] = 0
    out1 = vocoder(mel, f0, generator=torch.Generator().manual_seed(1))
    out2 = vocoder(mel, f0, generator=torch.Generator().manual_seed(1))
    ref = original.eval()(mel, f0, torch.Generator().manual_seed(1))[:, 0]
    assert out1.shape == (2, 20 * 512)
    assert torch.equal(out1, out2)
    torch.testing.assert_close(out1, ref, atol=1e-5, rtol=1e-4)
    assert out1.abs().max() <= 1.0 and out1.std() > 0


def test_missing_key_raises(tiny_checkpoint):
    folder, _, state = tiny_checkpoint
    del state["conv_post.bias"]
    torch.save({"generator": state}, folder / "model")
    with pytest.raises(MelismaError, match="missing.*conv_post.bias"):
        get_vocoder("nsf-hifigan", path=folder)


def test_incompatible_config_raises(tiny_checkpoint):
    folder, _, _ = tiny_checkpoint
    (folder / "config.json").write_text(json.dumps(dict(TINY, sampling_rate=22050)))
    with pytest.raises(MelismaError, match="22050 Hz"):
        get_vocoder("nsf-hifigan", path=folder)
