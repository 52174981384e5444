"""The singer model: a condition encoder and a non-causal WaveNet denoiser over normalised mel.

Shapes: content (B, C, T), f0 (B, T) Hz (0 = unvoiced), loudness (B, T) dBFS, singer weights (B, S) summing to 1,
mel (B, N_MELS, T) normalised to about [-1, 1] (see ``normalise_mel``). T frames at FRAME_RATE (86.13 /s).

As in CoMoSVC (after Grad-TTS), the condition encoder also predicts a *prior* mel from the condition alone,
trained by regression; the diffusion then models only the residual mel - prior (``Condition``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from melisma.audio.constants import N_MELS
from melisma.singer.harmonics import harmonic_template

MEL_MIN = -12.0  # natural-log mel floor is ln(1e-5) = -11.5; a little below it
MEL_MAX = 2.0  # loudest natural-log mel values of full-scale singing


@dataclass(frozen=True)
class SingerConfig:
    """Architecture of the condition encoder and the WaveNet denoiser (stored in every voice pack)."""

    content_dim: int = 256
    n_singers: int = 1
    n_mels: int = N_MELS
    hidden: int = 128  # condition width
    residual_channels: int = 128
    layers: int = 12
    dilation_cycle: int = 4  # dilations 1, 2, 4, 8, 1, 2, ...
    kernel_size: int = 3
    prior_layers: int = 4  # dilated residual conv blocks of the encoder before its prior-mel head; 0 = no prior
    # the F0's harmonic comb in log-mel (melisma.singer.harmonics) as an input and, gated, added to the prior;
    # needs n_mels == N_MELS
    harmonic_template: bool = True
    # EDM's sigma_data, the spread of what the diffusion generates (the residual mel - prior): it sets the
    # preconditioning and the training noise of teacher and student (packs written before this field: 0.5;
    # training sets it from TrainConfig.sigma_data)
    sigma_data: float = 0.5
    # width of an utterance-level speaker embedding added (projected) beside the singer embedding; 0 = none (every
    # trained pack; the one-shot model of melisma.oneshot conditions on a reference's embedding through it)
    speaker_dim: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["speaker_dim"]:  # packs without a speaker input read the same as before the field existed
            del d["speaker_dim"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> SingerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown singer config keys: {sorted(unknown)}")
        # packs written before the prior (or the harmonic template) existed have none
        return cls(**{"prior_layers": 0, "harmonic_template": False, **data})


def normalise_mel(mel: torch.Tensor) -> torch.Tensor:
    """Natural-log mel -> about [-1, 1] (the space the diffusion runs in)."""
    return (mel - MEL_MIN) / (MEL_MAX - MEL_MIN) * 2.0 - 1.0


def denormalise_mel(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalise_mel``, clamped to the valid log-mel range."""
    return ((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * (MEL_MAX - MEL_MIN) + MEL_MIN).clamp_min(math.log(1e-5))


def f0_features(f0: torch.Tensor) -> torch.Tensor:
    """(B, T) Hz -> (B, 2, T): log2(f0 / 440) (0 where unvoiced) and the voiced flag."""
    voiced = (f0 > 0).float()
    logf = torch.log2(f0.clamp_min(1.0) / 440.0) * voiced
    return torch.stack([logf, voiced], dim=1)


@dataclass(frozen=True)
class Condition:
    """What the encoder gives the denoiser: ``hidden`` (B, H, T), and ``prior`` (B, M, T), the normalised mel
    it predicts on its own (zeros for a model without a prior head). Samplers return prior + residual."""

    hidden: torch.Tensor
    prior: torch.Tensor


def masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, M, T) ``err`` over the frames ``mask`` (B, 1, T) marks valid (all of them without a mask)."""
    if mask is None:
        return err.mean()
    return (err * mask).sum() / (mask.sum() * err.shape[1]).clamp_min(1.0)


def prior_loss(cond: Condition, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between the encoder's prior and the true normalised mel (B, M, T)."""
    return masked_mean((cond.prior - mel).abs(), mask)


class PriorBlock(nn.Module):
    """Dilated conv, SiLU, pointwise conv; residual."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, padding=2 * dilation, dilation=dilation)
        self.point = nn.Conv1d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.point(F.silu(self.conv(F.silu(h))))


class ConditionEncoder(nn.Module):
    """content + pitch + loudness, each projected to ``hidden`` and summed, plus a (mixable) singer embedding;
    with ``prior_layers`` > 0, dilated conv blocks (receptive field 1 + 4 * (2^L - 1) frames) and a prior-mel
    head. With ``harmonic_template`` the F0's log-mel comb is a fourth input, and the prior adds it with a
    per-bin, per-frame gain the encoder predicts (comb depth: how harmonic the voice is there)."""

    def __init__(self, cfg: SingerConfig):
        super().__init__()
        self.n_mels = cfg.n_mels
        self.content_proj = nn.Conv1d(cfg.content_dim, cfg.hidden, 1)
        self.pitch_proj = nn.Conv1d(2, cfg.hidden, 1)
        self.loud_proj = nn.Conv1d(1, cfg.hidden, 1)
        self.singer = nn.Embedding(cfg.n_singers, cfg.hidden)
        self.speaker_proj = nn.Linear(cfg.speaker_dim, cfg.hidden) if cfg.speaker_dim else None
        self.mix = nn.Conv1d(cfg.hidden, cfg.hidden, 3, padding=1)
        self.blocks = nn.ModuleList(PriorBlock(cfg.hidden, 2**i) for i in range(cfg.prior_layers))
        self.prior = nn.Conv1d(cfg.hidden, cfg.n_mels, 1) if cfg.prior_layers else None
        self.template_proj: nn.Conv1d | None = None
        self.comb_gain: nn.Conv1d | None = None
        if cfg.harmonic_template:
            if cfg.n_mels != N_MELS:
                raise ValueError(f"the harmonic template needs n_mels = {N_MELS}, not {cfg.n_mels}")
            self.template_proj = nn.Conv1d(cfg.n_mels, cfg.hidden, 1)
            if cfg.prior_layers:
                gain = nn.Conv1d(cfg.hidden, cfg.n_mels, 1)  # starts at half the comb's depth everywhere
                nn.init.zeros_(gain.weight)
                nn.init.constant_(gain.get_parameter("bias"), 0.5)
                self.comb_gain = gain

    def forward(self, content: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor,
                singer_weights: torch.Tensor, speaker: torch.Tensor | None = None) -> Condition:
        """``singer_weights`` (B, S) rows mix singer embeddings (one-hot = one singer); ``speaker`` (B, speaker_dim)
        is a speaker embedding, required exactly when the config has ``speaker_dim``."""
        loud = (loudness.clamp(-100.0, 0.0) / 50.0 + 1.0)[:, None]
        h = self.content_proj(content) + self.pitch_proj(f0_features(f0)) + self.loud_proj(loud)
        h = h + (singer_weights @ self.singer.weight)[:, :, None]
        if (speaker is None) != (self.speaker_proj is None):
            raise ValueError("a speaker embedding is needed exactly when the model has speaker_dim > 0")
        if self.speaker_proj is not None and speaker is not None:
            h = h + self.speaker_proj(speaker)[:, :, None]
        template = None
        if self.template_proj is not None:
            template = harmonic_template(f0) * (2.0 / (MEL_MAX - MEL_MIN))  # in the normalised mel's units
            h = h + self.template_proj(template)
        h = h + self.mix(F.silu(h))
        for block in self.blocks:
            h = block(h)
        if self.prior is None:
            return Condition(h, h.new_zeros(h.shape[0], self.n_mels, h.shape[-1]))
        act = F.silu(h)
        prior = self.prior(act)
        if self.comb_gain is not None and template is not None:
            prior = prior + self.comb_gain(act) * template
        return Condition(h, prior)


class NoiseEmbedding(nn.Module):
    """Scalar noise level c_noise (B,) -> (B, dim) through sinusoids and an MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.SiLU(), nn.Linear(dim * 4, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=c_noise.device) / half)
        angles = 100.0 * c_noise[:, None] * freqs[None]  # c_noise = ln(sigma)/4 is small: spread it
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class ResidualLayer(nn.Module):
    """Dilated non-causal conv + noise embedding + condition, gated tanh*sigmoid, residual and skip outputs."""

    def __init__(self, channels: int, hidden: int, kernel: int, dilation: int):
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, kernel, padding=dilation * (kernel - 1) // 2,
                                 dilation=dilation)
        self.noise = nn.Linear(channels, channels)
        self.cond = nn.Conv1d(hidden, 2 * channels, 1)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dilated(x + self.noise(emb)[:, :, None]) + self.cond(cond)
        gate, filt = y.chunk(2, dim=1)
        y = self.out(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class WaveNetDenoiser(nn.Module):
    """F(x, c_noise, cond): noisy normalised mel (B, M, T) -> raw network output (B, M, T)."""

    def __init__(self, cfg: SingerConfig):
        super().__init__()
        ch = cfg.residual_channels
        self.inp = nn.Conv1d(cfg.n_mels, ch, 1)
        self.emb = NoiseEmbedding(ch)
        self.layers = nn.ModuleList(
            ResidualLayer(ch, cfg.hidden, cfg.kernel_size, 2 ** (i % cfg.dilation_cycle)) for i in range(cfg.layers)
        )
        self.skip = nn.Conv1d(ch, ch, 1)
        self.head = nn.Conv1d(ch, cfg.n_mels, 1)
        for p in self.head.parameters():  # the denoiser starts out predicting zero
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp(x))
        emb = self.emb(c_noise)
        skips = torch.zeros_like(h)
        for layer in self.layers:
            h, s = layer(h, cond, emb)
            skips = skips + s
        return self.head(F.relu(self.skip(skips / math.sqrt(len(self.layers)))))


class SingerNet(nn.Module):
    """Condition encoder + WaveNet denoiser: one network, used both as EDM teacher and as consistency student."""

    def __init__(self, cfg: SingerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ConditionEncoder(cfg)
        self.denoiser = WaveNetDenoiser(cfg)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, c_noise, cond)

    def condition(self, content: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor,
                  singer_weights: torch.Tensor, speaker: torch.Tensor | None = None) -> Condition:
        return self.encoder(content, f0, loudness, singer_weights, speaker)
