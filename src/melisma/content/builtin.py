"""melisma's own content encoder: log-mel -> small limited-lookahead ConvNeXt -> cosine VQ -> (B, 256, T).

Trained by ``melisma.training.content`` without labels or SSL pretraining: information perturbation of
the input, a vector-quantised bottleneck, mel reconstruction through a speaker- and F0-conditioned decoder,
and frame-level InfoNCE between two perturbed views. Each block sees ``lookahead`` future frames at most,
so chunked (realtime) inference needs ``receptive_future`` frames of look-ahead and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from melisma.atomic import atomic_path
from melisma.content.base import ContentEncoder
from melisma.errors import MelismaError
from melisma.features.mel import log_mel
from melisma.formats import check, stamp_metadata
from melisma.identity import weights_identity
from melisma.paths import CONTENT_WEIGHTS, PHONETIC_CONTENT_WEIGHTS

MEL_CENTER, MEL_SCALE = -6.0, 2.5  # rough mean/std of natural-log mel of normalised clips


@dataclass(frozen=True)
class BuiltinConfig:
    """Architecture of the builtin encoder (stored in the weights file)."""

    n_mels: int = 128
    channels: int = 192
    n_blocks: int = 5
    kernel: int = 5
    lookahead: int = 1  # future frames each conv may see
    code_dim: int = 32  # factorised VQ: codes live on the unit sphere in this many dims
    n_codes: int = 512
    dim: int = 256  # output width
    n_phones: int = 0  # > 0: a linear phone head over the content (CTC blank + SHARED_PHONES); 0 in builtin-v1


class LimitedConv(nn.Module):
    """Conv1d padded so each output frame sees ``kernel - 1 - lookahead`` past and ``lookahead`` future frames."""

    def __init__(self, c_in: int, c_out: int, kernel: int, lookahead: int, groups: int = 1) -> None:
        super().__init__()
        self.pad = (kernel - 1 - lookahead, lookahead)
        self.conv = nn.Conv1d(c_in, c_out, kernel, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode="replicate"))


class Block(nn.Module):
    """ConvNeXt block on (B, C, T): depthwise limited conv, per-frame LayerNorm, MLP, scaled residual."""

    def __init__(self, channels: int, kernel: int, lookahead: int) -> None:
        super().__init__()
        self.dw = LimitedConv(channels, channels, kernel, lookahead, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.gamma = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.dw(x).transpose(1, 2)))
        return x + (self.gamma * y).transpose(1, 2)


class CosineVQ(nn.Module):
    """Nearest unit-norm code by cosine similarity; straight-through gradients (ViT-VQGAN style)."""

    def __init__(self, n_codes: int, code_dim: int) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(n_codes, code_dim))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, T, D) unit-norm -> (quantised (B, T, D), indices (B, T), commitment+codebook loss)."""
        codes = F.normalize(self.codebook, dim=-1)
        idx = (z @ codes.T).argmax(-1)
        q = codes[idx]
        loss = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        return z + (q - z).detach(), idx, loss


class BuiltinNet(nn.Module):
    """log-mel (B, n_mels, T) -> pre-quantisation unit vectors, codes and the (B, dim, T) content."""

    def __init__(self, cfg: BuiltinConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = LimitedConv(cfg.n_mels, cfg.channels, 3, cfg.lookahead)
        self.blocks = nn.Sequential(*[Block(cfg.channels, cfg.kernel, cfg.lookahead if i < 2 else 0)
                                      for i in range(cfg.n_blocks)])
        self.norm = nn.LayerNorm(cfg.channels)
        self.to_code = nn.Linear(cfg.channels, cfg.code_dim)
        self.vq = CosineVQ(cfg.n_codes, cfg.code_dim)
        self.out = nn.Linear(cfg.code_dim, cfg.dim)
        self.phone_head = nn.Linear(cfg.dim, cfg.n_phones) if cfg.n_phones else None

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """mel (B, n_mels, T) -> (z (B, T, code_dim) unit-norm, content (B, dim, T), codes (B, T), vq loss)."""
        h = self.blocks(self.inp((mel - MEL_CENTER) / MEL_SCALE))
        z = F.normalize(self.to_code(self.norm(h.transpose(1, 2))), dim=-1)
        q, idx, vq_loss = self.vq(z)
        return z, self.out(q).transpose(1, 2), idx, vq_loss

    def phone_logits(self, content: torch.Tensor) -> torch.Tensor:
        """content (B, dim, T) -> (B, T, n_phones) logits: index 0 is the CTC blank, index i > 0 is
        ``SHARED_PHONES[i - 1]`` (``melisma.corpus.phones``). MelismaError for weights without a phone head."""
        if self.phone_head is None:
            raise MelismaError("these content-encoder weights have no phone head (builtin-v1)")
        return self.phone_head(content.transpose(1, 2))

    @property
    def receptive_future(self) -> int:
        """Future frames one output frame depends on (the look-ahead chunked inference must wait for)."""
        return self.cfg.lookahead * 3


def default_weights_path(name: str = "builtin") -> Path:
    """Path of the shipped weights of ``name`` (``builtin`` or ``phonetic``) inside the package."""
    return PHONETIC_CONTENT_WEIGHTS if name == "phonetic" else CONTENT_WEIGHTS


class BuiltinContentEncoder(ContentEncoder):
    """audio (B, n) at 44.1 kHz -> content (B, 256, n // 512 + 1); the shipped weights unless ``path`` is given."""

    def __init__(self, net: BuiltinNet, name: str = "builtin") -> None:
        super().__init__()
        self.net = net.eval()
        self.dim = net.cfg.dim
        self.name = name

    @property
    def identity(self) -> str:  # type: ignore[override]
        """``<name>@<hash12>`` of the current weights (see ``melisma.identity``)."""
        return weights_identity(self.name, self.state_dict())

    @classmethod
    def load(cls, path: str | Path | None = None, name: str = "builtin") -> BuiltinContentEncoder:
        """Load weights strictly (every key present, none extra, shapes equal); MelismaError otherwise.

        ``name``: the registry name of the identity, ``builtin`` (v1, the default weights) or ``phonetic``
        (v2, trained with a phone head; its shipped weights when ``path`` is None)."""
        from safetensors import safe_open

        from melisma.formats import safetensors_metadata

        path = Path(path) if path is not None else default_weights_path(name)
        if not path.is_file():
            raise MelismaError(f"content encoder weights not found: {path}")
        meta = safetensors_metadata(path, "content-weights", error=MelismaError)
        check(_legacy_stamp(meta), "content-weights", path)
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
        try:
            net = BuiltinNet(BuiltinConfig(**json.loads(meta["config"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise MelismaError(f"{path}: damaged content encoder config ({exc})") from None
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise MelismaError(f"{path}: weights do not match the architecture ({str(err).splitlines()[0]})") from None
        return cls(net, name)

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, n) or (n,) float at 44.1 kHz -> (B, dim, n // 512 + 1) content at 86.13 frames/s."""
        return self.net.encode(log_mel(audio))[1]

    @torch.no_grad()
    def phone_posteriors(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, n) at 44.1 kHz -> (B, n_phones, n // 512 + 1) phone probabilities per frame (a
        posteriorgram: blank first, then ``SHARED_PHONES``); only weights trained with a phone head have one."""
        return self.net.phone_logits(self.net.encode(log_mel(audio))[1]).softmax(-1).transpose(1, 2)

    @torch.no_grad()
    def codes(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, n) -> (B, n // 512 + 1) VQ code indices (discrete content units)."""
        return self.net.encode(log_mel(audio))[2]


def _legacy_stamp(meta: dict[str, str]) -> dict[str, str]:
    """Weights written before ``melisma.formats`` said ``{"format": "1", "kind": "melisma-content-builtin"}``."""
    if meta.get("kind") == "melisma-content-builtin":
        return {"format": "melisma.content-weights", "format_version": meta.get("format", "")}
    return meta


def save_builtin(net: BuiltinNet, path: str | Path, extra: dict | None = None) -> None:
    """Write ``net`` as safetensors with its config and format stamp in the metadata (atomic).

    No identity is stored: a loaded encoder's identity is the hash of its weights."""
    from safetensors.torch import save_file

    meta = {**stamp_metadata("content-weights"), "config": json.dumps(asdict(net.cfg))}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    with atomic_path(Path(path)) as tmp:
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)
