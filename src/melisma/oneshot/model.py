"""The one-shot model's parts (VQMIVC, Wang et al. 2021, adapted to singing on melisma's 44.1 kHz frame grid).

Shapes: content (B, C, T) from a ``ContentEncoder`` (C = its ``dim``), codes (B, D, T), log-F0 (B, T), speaker
embedding (B, S) unit-norm, mel (B, 128, T) natural-log; T frames at FRAME_RATE (86.13 /s).

- ``VQCPCHead``: content -> vector-quantised codes, trained with contrastive predictive coding (VQ-CPC): a GRU
  reads the codes and predicts the codes 1..K frames ahead against the other frames of the same segment.
- ``PitchEncoder``: utterance-normalised log-F0 + voiced flag -> (B, P, T) (VQMIVC's explicit pitch input).
- ``SpeakerEncoder``: log-mel of a reference -> (B, S) utterance embedding (masked mean + std pooling).
- ``CLUB``: the sampled contrastive log-ratio upper bound of mutual information (Cheng et al. 2020), one per
  pair (content-speaker, content-pitch, speaker-pitch), each switchable in training.
- the decoder is melisma's singer model (``melisma.singer.model.SingerNet`` with ``speaker_dim``): content codes
  and pitch embedding as its content input, the absolute F0 it must sing, loudness, and the speaker embedding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from melisma.content.builtin import CosineVQ  # the content encoder's VQ: one implementation
from melisma.singer.model import SingerConfig, SingerNet

MEL_CENTER, MEL_SCALE = -6.0, 2.5  # rough mean/std of natural-log mel of loudness-normalised clips
SILENCE_LOG_ENERGY = -9.0  # frames whose mean natural-log mel is below this are silence to the speaker encoder


@dataclass(frozen=True)
class OneShotConfig:
    """Architecture of the one-shot model (stored in its weights file)."""

    content_dim: int = 256  # width of the content encoder's output
    head_channels: int = 192
    code_dim: int = 64
    n_codes: int = 256
    cpc_steps: int = 6  # frames ahead the CPC context predicts
    cpc_hidden: int = 128
    pitch_dim: int = 32
    speaker_dim: int = 128
    speaker_channels: int = 192
    # the decoder: content input = codes + pitch embedding (64 + 32), the shipped singer model's sizes otherwise
    singer: SingerConfig = field(default_factory=lambda: SingerConfig(content_dim=96, speaker_dim=128))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["singer"] = self.singer.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> OneShotConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown one-shot config keys: {sorted(unknown)}")
        singer = SingerConfig.from_dict(dict(data.get("singer", {})))
        return cls(**{**data, "singer": singer})


@dataclass
class Codes:
    """What ``VQCPCHead`` gives: z (B, T, D) before quantisation, q (B, D, T) quantised, idx (B, T), vq loss."""

    z: torch.Tensor
    q: torch.Tensor
    idx: torch.Tensor
    vq_loss: torch.Tensor


class VQCPCHead(nn.Module):
    """content (B, C, T) -> vector-quantised codes (B, D, T); ``cpc_loss`` is its contrastive training signal."""

    def __init__(self, cfg: OneShotConfig) -> None:
        super().__init__()
        ch = cfg.head_channels
        # instance norm over time: the content's shared offset (and any utterance-level colour) is removed
        # before the codes are chosen
        self.net = nn.Sequential(nn.InstanceNorm1d(cfg.content_dim), nn.Conv1d(cfg.content_dim, ch, 3, padding=1),
                                 nn.GELU(),
                                 nn.Conv1d(ch, ch, 3, padding=1), nn.GELU(), nn.Conv1d(ch, cfg.code_dim, 1))
        self.vq = CosineVQ(cfg.n_codes, cfg.code_dim)
        self.context = nn.GRU(cfg.code_dim, cfg.cpc_hidden, batch_first=True)
        self.predict = nn.ModuleList(nn.Linear(cfg.cpc_hidden, cfg.code_dim) for _ in range(cfg.cpc_steps))

    def forward(self, content: torch.Tensor) -> Codes:
        z = F.normalize(self.net(content).transpose(1, 2), dim=-1)
        q, idx, vq_loss = self.vq(z)
        return Codes(z, q.transpose(1, 2), idx, vq_loss)

    def cpc_loss(self, codes: Codes, n_frames: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE of predicting the quantised code k = 1..K frames ahead from the GRU context, the other frames
        of the same segment as negatives -> (loss, accuracy of the positive). Needs T > K + n_frames."""
        q = codes.q.transpose(1, 2)  # (B, T, D)
        c, _ = self.context(q)
        b, t, _ = q.shape
        k_max = len(self.predict)
        starts = torch.randperm(t - k_max)[:n_frames]
        losses, hits = [], []
        for k, proj in enumerate(self.predict, start=1):
            pred = F.normalize(proj(c[:, starts]), dim=-1)  # (B, N, D)
            logits = pred @ q.transpose(1, 2)  # (B, N, T): every frame of the segment a candidate
            target = (starts + k).expand(b, -1)
            losses.append(F.cross_entropy(logits.reshape(-1, t) / 0.1, target.reshape(-1)))
            hits.append((logits.argmax(-1) == target).float().mean())
        return torch.stack(losses).mean(), torch.stack(hits).mean()


def normalised_log_f0(f0: torch.Tensor) -> torch.Tensor:
    """(B, T) Hz -> (B, 2, T): log-F0 normalised over each row's voiced frames (zero mean, unit spread; 0 where
    unvoiced), and the voiced flag. Shift-invariant: a transposed melody gives the same contour."""
    voiced = (f0 > 0).float()
    lf = torch.log(f0.clamp_min(1.0))
    n = voiced.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (lf * voiced).sum(-1, keepdim=True) / n
    var = (((lf - mean) * voiced) ** 2).sum(-1, keepdim=True) / n
    norm = (lf - mean) / (var.sqrt() + 0.05) * voiced
    return torch.stack([norm, voiced], dim=1)


class PitchEncoder(nn.Module):
    """(B, T) Hz -> (B, P, T) embedding of the normalised log-F0 contour."""

    def __init__(self, cfg: OneShotConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(2, cfg.pitch_dim, 5, padding=2), nn.GELU(),
                                 nn.Conv1d(cfg.pitch_dim, cfg.pitch_dim, 5, padding=2))

    def forward(self, f0: torch.Tensor) -> torch.Tensor:
        return self.net(normalised_log_f0(f0))


def speech_mask(mel: torch.Tensor) -> torch.Tensor:
    """(B, M, T) natural-log mel -> (B, 1, T) float mask of the frames that are not silence."""
    return (mel.mean(1, keepdim=True) > SILENCE_LOG_ENERGY).float()


class SpeakerEncoder(nn.Module):
    """log-mel (B, 128, T) [+ mask (B, 1, T) of frames to pool] -> (B, S) unit-norm utterance embedding."""

    def __init__(self, cfg: OneShotConfig) -> None:
        super().__init__()
        ch = cfg.speaker_channels
        self.inp = nn.Conv1d(cfg.singer.n_mels, ch, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Conv1d(ch, ch, 5, padding=2 * d, dilation=d) for d in (1, 2, 4))
        self.out = nn.Linear(2 * ch, cfg.speaker_dim)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp((mel - MEL_CENTER) / MEL_SCALE)
        for conv in self.blocks:
            h = h + conv(F.gelu(h))
        h = F.gelu(h)
        m = speech_mask(mel) if mask is None else mask
        n = m.sum(-1).clamp_min(1.0)
        mean = (h * m).sum(-1) / n
        std = ((((h - mean[:, :, None]) * m) ** 2).sum(-1) / n + 1e-5).sqrt()
        return F.normalize(self.out(torch.cat([mean, std], 1)), dim=-1)


class CLUB(nn.Module):
    """Sampled CLUB upper bound of I(x; y) with a diagonal Gaussian q(y | x); x (N, Dx), y (N, Dy) paired rows.

    ``learning_loss`` (the negative log-likelihood, VQMIVC's "lld") trains q on detached inputs; ``mi`` is the
    bound the model minimises: log q(y_i | x_i) - log q(y_j | x_i) for shuffled j. Both sum over y's dimensions
    and average over rows, as VQMIVC's estimators do (so its MI weight carries over)."""

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim), nn.Tanh())

    def learning_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.mu(x), self.logvar(x)
        return (((mu - y) ** 2) / logvar.exp() + logvar).sum(-1).mean()

    def mi(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.mu(x), self.logvar(x)
        perm = torch.randperm(y.shape[0], device=y.device)
        positive = -((mu - y) ** 2) / logvar.exp()
        negative = -((mu - y[perm]) ** 2) / logvar.exp()
        return 0.5 * (positive - negative).sum(-1).mean()


def frames_of(x: torch.Tensor, n: int | None = None, pick: torch.Tensor | None = None) -> torch.Tensor:
    """(B, D, T) frame features -> (B * T, D) rows, or (B, D) per-utterance vectors repeated over ``n`` frames;
    ``pick`` keeps those rows only."""
    rows = x.transpose(1, 2).reshape(-1, x.shape[1]) if x.dim() == 3 else x.repeat_interleave(n or 1, dim=0)
    return rows if pick is None else rows[pick]


class OneShotNet(nn.Module):
    """Content head, pitch encoder, speaker encoder and decoder (a singer model with a speaker input)."""

    def __init__(self, cfg: OneShotConfig) -> None:
        super().__init__()
        if cfg.singer.speaker_dim != cfg.speaker_dim:
            raise ValueError("the decoder's speaker_dim must equal the speaker embedding's width")
        if cfg.singer.content_dim != cfg.code_dim + cfg.pitch_dim:
            raise ValueError("the decoder's content_dim must be code_dim + pitch_dim")
        self.cfg = cfg
        self.head = VQCPCHead(cfg)
        self.pitch = PitchEncoder(cfg)
        self.speaker = SpeakerEncoder(cfg)
        self.decoder = SingerNet(cfg.singer)

    def decoder_input(self, codes: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
        """codes (B, D, T) + pitch embedding (B, P, T) -> the decoder's content input (B, D + P, T)."""
        return torch.cat([codes, pitch], 1)
