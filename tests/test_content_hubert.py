"""HuBERT/ContentVec loader: a tiny randomly initialised checkpoint saved locally, loaded back offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from melisma.content import get_content_encoder
from melisma.content.hubert import HubertContentEncoder, to_frame_grid
from melisma.errors import MelismaError, MissingDependencyError


@pytest.fixture
def tiny_contentvec(tmp_path, monkeypatch):
    """A 3-layer, 32-d HuBERT with an extra final_proj (like ContentVec's HF export) in a local directory."""
    from safetensors.torch import load_file, save_file
    from transformers import HubertConfig, HubertModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    cfg = HubertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    HubertModel(cfg).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["final_proj.weight"], state["final_proj.bias"] = torch.randn(8, 32), torch.randn(8)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    return tmp_path


def test_tiny_hubert_round_trip_on_frame_grid(tiny_contentvec, sine_clip):
    audio, _, _ = sine_clip
    n = len(audio) - 123  # an odd length: the grid is n // 512 + 1 whatever n is
    enc = get_content_encoder("hubert", checkpoint=str(tiny_contentvec), output_layer=2)
    out = enc(torch.from_numpy(audio[:n]))
    assert out.shape == (1, 32, n // 512 + 1)
    assert torch.isfinite(out).all() and out.std() > 0
    again = HubertContentEncoder(tiny_contentvec, output_layer=3)(torch.from_numpy(audio[:n]))
    assert not torch.allclose(out, again)  # a different layer is really used


def test_final_proj_is_applied(tiny_contentvec, sine_clip):
    audio = torch.from_numpy(sine_clip[0][:22050])
    enc = HubertContentEncoder(tiny_contentvec, output_layer=2, final_proj=True)
    assert enc.dim == 8 and enc(audio).shape == (1, 8, 22050 // 512 + 1)


def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingDependencyError, match="local Hugging Face cache"):
        get_content_encoder("contentvec", checkpoint="nobody/no-such-contentvec")
    with pytest.raises(MelismaError, match="not a ContentVec"):
        (tmp_path / "x").mkdir()
        from melisma.content.hubert import load_final_proj

        load_final_proj(tmp_path / "x", 32)


def test_frame_interpolation_follows_time():
    # a feature that equals its own 50 fps frame time must read the 86.13 fps frame time after interpolation
    t_ssl = (np.arange(100) * 320 + 200) / 16000
    feats = torch.tensor(t_ssl, dtype=torch.float32)[None, :, None]
    n = 44100  # 1 s
    out = to_frame_grid(feats, n)[0, 0].numpy()
    t_grid = np.arange(n // 512 + 1) * 512 / 44100
    inside = (t_grid >= t_ssl[0]) & (t_grid <= t_ssl[-1])
    assert np.allclose(out[inside], t_grid[inside], atol=1e-5)
