"""HuBERT / ContentVec content features from a Hugging Face checkpoint (local directory or hub id).

The two feature types so-vits-svc made standard:
  ``vec768l12``  hidden states after transformer layer 12, 768-d (so-vits-svc 4.1, CoMoSVC, LHQ-SVC);
  ``vec256l9``   layer 9 through ContentVec's ``final_proj`` linear layer, 256-d (so-vits-svc 4.0).
Audio is resampled 44.1 -> 16 kHz, and the 50 frames/s output (frame i centred at (320 i + 200) / 16000 s)
is linearly interpolated onto melisma's 86.13 frames/s grid (frame j at 512 j / 44100 s).

Nothing is downloaded here: a hub id resolves only from the local Hugging Face cache (as with
``HF_HUB_OFFLINE=1``); fetch it yourself first (``huggingface-cli download ID``) on a machine with network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.content.base import ContentEncoder
from melisma.errors import MelismaError, MissingDependencyError
from melisma.identity import weights_identity

SSL_RATE = 16_000  # Hz, HuBERT's input rate
SSL_HOP = 320  # samples at 16 kHz between HuBERT frames (50 frames/s)
SSL_CENTER = 200  # samples: centre of the first frame's 400-sample receptive field
PRESETS = {"vec768l12": (12, False), "vec256l9": (9, True)}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "HuBERT/ContentVec features need 'transformers': pip install 'melisma[ssl]'") from None
    return transformers


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """Local directory, or a hub id found in the local Hugging Face cache -> directory. Never downloads."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except Exception:  # any failure means "not available offline"
        raise MissingDependencyError(
            f"HuBERT checkpoint '{name_or_path}' is neither a directory nor in the local Hugging Face cache; "
            f"download it first (huggingface-cli download {name_or_path})") from None


def _read_tensors(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
    """Tensors whose names start with ``prefix`` from the checkpoint files in ``folder`` (prefix stripped)."""
    found: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(f), framework="pt") as sf:
            found.update({k[len(prefix):]: sf.get_tensor(k) for k in sf.keys() if k.startswith(prefix)})
    for f in sorted(folder.glob("pytorch_model*.bin")):
        state = torch.load(f, map_location="cpu", weights_only=True)
        found.update({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return found


def load_final_proj(folder: Path, in_dim: int) -> torch.nn.Linear:
    """ContentVec's ``final_proj`` (in_dim -> 256) from the checkpoint; MelismaError when it is absent."""
    tensors = _read_tensors(folder, "final_proj.")
    if set(tensors) != {"weight", "bias"} or tensors["weight"].shape[1] != in_dim:
        raise MelismaError(f"{folder} has no final_proj layer of input width {in_dim} (not a ContentVec checkpoint?)")
    proj = torch.nn.Linear(in_dim, tensors["weight"].shape[0])
    proj.load_state_dict(tensors, strict=True)
    return proj


def to_frame_grid(feats: torch.Tensor, n_samples: int) -> torch.Tensor:
    """(B, T_ssl, C) at 50 frames/s -> (B, C, n_samples // 512 + 1) at 86.13 frames/s (linear interpolation)."""
    t_out = torch.arange(n_samples // HOP_SIZE + 1, dtype=torch.float64) * HOP_SIZE / SAMPLE_RATE
    pos = ((t_out * SSL_RATE - SSL_CENTER) / SSL_HOP).clamp(0, feats.shape[1] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=feats.shape[1] - 1)
    w = (pos - lo).to(feats.dtype)[None, :, None]
    return (feats[:, lo] * (1 - w) + feats[:, hi] * w).transpose(1, 2)


class HubertContentEncoder(ContentEncoder):
    """audio (B, n) at 44.1 kHz -> HuBERT/ContentVec features (B, dim, n // 512 + 1)."""

    def __init__(self, checkpoint: str | Path, output_layer: int = 12, final_proj: bool = False,
                 identity: str | None = None) -> None:
        super().__init__()
        transformers = _transformers()
        folder = resolve_checkpoint(checkpoint)
        try:
            model, info = transformers.HubertModel.from_pretrained(str(folder), output_loading_info=True)
        except (OSError, ValueError) as err:
            raise MelismaError(f"cannot load HuBERT from {folder}: {str(err).splitlines()[0]}") from None
        if info["missing_keys"]:
            raise MelismaError(f"{folder}: checkpoint lacks {len(info['missing_keys'])} HuBERT weights, e.g. "
                               f"{info['missing_keys'][0]}; refusing to run with random weights")
        if not 1 <= output_layer <= model.config.num_hidden_layers:
            raise MelismaError(f"output_layer {output_layer} outside 1..{model.config.num_hidden_layers}")
        self.model = model.eval()
        self.output_layer = output_layer
        self.proj = load_final_proj(folder, model.config.hidden_size) if final_proj else None
        self.dim = self.proj.out_features if self.proj is not None else model.config.hidden_size
        name = identity or f"hubert:{Path(str(checkpoint)).name}:l{output_layer}{'p' if final_proj else ''}"
        self.identity = weights_identity(name, self.state_dict())  # frozen weights: hashed once

    @classmethod
    def preset(cls, checkpoint: str | Path, kind: str = "vec768l12") -> HubertContentEncoder:
        """``vec768l12`` (layer 12, 768-d) or ``vec256l9`` (layer 9 + final_proj, 256-d), as so-vits-svc."""
        if kind not in PRESETS:
            raise MelismaError(f"unknown ContentVec preset '{kind}' (choose from {', '.join(PRESETS)})")
        layer, proj = PRESETS[kind]
        return cls(checkpoint, output_layer=layer, final_proj=proj, identity=f"contentvec:{kind}")

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, n) or (n,) float at 44.1 kHz -> (B, dim, n // 512 + 1)."""
        import soxr

        x = torch.as_tensor(audio, dtype=torch.float32)
        x = x[None] if x.dim() == 1 else x
        rows16 = np.stack([soxr.resample(row, SAMPLE_RATE, SSL_RATE) for row in x.cpu().numpy()])
        wav16 = torch.from_numpy(rows16.astype(np.float32)).to(next(self.model.parameters()).device)
        out = self.model(wav16, output_hidden_states=True)
        feats = out.hidden_states[self.output_layer]
        if self.proj is not None:
            feats = self.proj(feats)
        return to_frame_grid(feats, x.shape[-1]).to(x.device)
