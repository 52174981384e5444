"""Loader for NSF-HiFiGAN checkpoints in the openvpi format (the vocoder so-vits-svc and DDSP-SVC use).

A checkpoint is a folder with ``config.json`` (HiFi-GAN hyper-parameters: resblock, upsample_rates,
upsample_kernel_sizes, upsample_initial_channel, resblock_kernel_sizes, resblock_dilation_sizes, num_mels,
sampling_rate, hop_size, ...) and a torch file ``model`` or ``model.ckpt`` holding ``{"generator": state_dict}``.
Weight-normed layers are stored as ``weight_g`` / ``weight_v`` pairs; they are fused into plain weights on load.

The generator is written here from the published architecture: a harmonic source (fundamental + 8 overtones
from the upsampled F0, merged by ``m_source.l_linear``), ``conv_pre``, transposed-conv upsampling (``ups``) with
the source injected at each scale by ``noise_convs``, multi-receptive-field residual blocks (``resblocks``) and
``conv_post``. Loading is strict: a missing or unexpected key raises ``MelismaError``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from melisma.audio.constants import HOP_SIZE, N_MELS, SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.identity import weights_identity
from melisma.vocoder.base import Vocoder

LRELU_SLOPE = 0.1
N_OVERTONES = 8  # the openvpi generator always builds its source with 8 overtones above F0
SINE_AMP = 0.1
NOISE_STD = 0.003
CHECKPOINT_NAMES = ("model", "model.ckpt", "model.pt")


@dataclass(frozen=True)
class NsfHifiganConfig:
    """The fields of an openvpi ``config.json`` that shape the generator."""

    resblock: str
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    num_mels: int = N_MELS
    sampling_rate: int = SAMPLE_RATE
    hop_size: int = HOP_SIZE

    @classmethod
    def from_json(cls, data: dict) -> NsfHifiganConfig:
        try:
            return cls(
                resblock=str(data["resblock"]),
                upsample_rates=tuple(int(u) for u in data["upsample_rates"]),
                upsample_kernel_sizes=tuple(int(k) for k in data["upsample_kernel_sizes"]),
                upsample_initial_channel=int(data["upsample_initial_channel"]),
                resblock_kernel_sizes=tuple(int(k) for k in data["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in data["resblock_dilation_sizes"]),
                num_mels=int(data.get("num_mels", N_MELS)),
                sampling_rate=int(data.get("sampling_rate", SAMPLE_RATE)),
                hop_size=int(data.get("hop_size", HOP_SIZE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MelismaError(f"NSF-HiFiGAN config.json is missing or has a bad field: {exc}") from None

    def check_compatible(self) -> None:
        """Raise MelismaError unless the checkpoint consumes melisma's mel (44.1 kHz, hop 512, 128 bins)."""
        if (self.sampling_rate, self.hop_size, self.num_mels) != (SAMPLE_RATE, HOP_SIZE, N_MELS):
            raise MelismaError(
                f"NSF-HiFiGAN checkpoint is {self.sampling_rate} Hz / hop {self.hop_size} / {self.num_mels} mels; "
                f"melisma needs {SAMPLE_RATE} Hz / hop {HOP_SIZE} / {N_MELS} mels"
            )
        if math.prod(self.upsample_rates) != self.hop_size:
            raise MelismaError(f"NSF-HiFiGAN upsample_rates {self.upsample_rates} do not multiply to {self.hop_size}")
        if self.resblock not in ("1", "2"):
            raise MelismaError(f"NSF-HiFiGAN resblock must be '1' or '2', got {self.resblock!r}")


def _padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Three dilated convs, each followed by a plain conv, residual. (B, C, n) -> (B, C, n)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=_padding(kernel, 1)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Dilated convs, residual each. (B, C, n) -> (B, C, n)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d)) for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HarmonicSource(nn.Module):
    """F0 at the sample rate (B, n) Hz -> (B, 1, n) merged sine source (``m_source`` in the checkpoint)."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.l_linear = nn.Linear(N_OVERTONES + 1, 1)

    def forward(self, f0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        harmonics = torch.arange(1, N_OVERTONES + 2, device=f0.device, dtype=torch.float64)
        cycles = f0.double()[..., None] * harmonics / self.sample_rate  # (B, n, H) cycles per sample
        start = torch.rand(f0.shape[0], 1, N_OVERTONES + 1, generator=generator, dtype=torch.float64)
        start[..., 0] = 0.0  # the fundamental starts at phase 0, overtones at random phases
        phase = torch.remainder(torch.cumsum(cycles, dim=1) + start.to(f0.device), 1.0)
        sines = torch.sin(2 * math.pi * phase).float() * SINE_AMP
        voiced = (f0 > 0).float()[..., None]
        noise_amp = voiced * NOISE_STD + (1 - voiced) * SINE_AMP / 3
        noise = torch.randn(sines.shape, generator=generator, device=f0.device) * noise_amp
        return torch.tanh(self.l_linear(sines * voiced + noise)).transpose(1, 2)


class NsfHifiganGenerator(nn.Module):
    """mel (B, num_mels, T) natural-log mel, f0 (B, T) Hz -> (B, 1, T * hop_size) waveform in [-1, 1]."""

    def __init__(self, cfg: NsfHifiganConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.m_source = HarmonicSource(cfg.sampling_rate)
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch0, 7, padding=3)
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        n_up = len(cfg.upsample_rates)
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            ch = ch0 // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(ch0 // 2**i, ch, k, u, padding=(k - u) // 2))
            if i + 1 < n_up:
                stride = math.prod(cfg.upsample_rates[i + 1 :])
                self.noise_convs.append(nn.Conv1d(1, ch, stride * 2, stride=stride, padding=stride // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, ch, 1))
            for kernel, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, kernel, dilations))
        self.conv_post = nn.Conv1d(ch0 // 2**n_up, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        f0_samples = f0.repeat_interleave(self.cfg.hop_size, dim=-1)  # nearest-neighbour, as the original
        source = self.m_source(f0_samples, generator)
        x = self.conv_pre(mel)
        n_kernels = len(self.cfg.resblock_kernel_sizes)
        for i, (up, noise_conv) in enumerate(zip(self.ups, self.noise_convs, strict=True)):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = x + noise_conv(source)
            blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
            x = sum(b(x) for b in blocks) / n_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def weight_normed_prefixes(model: NsfHifiganGenerator) -> list[str]:
    """Module names whose weights the openvpi checkpoint stores as weight_g / weight_v."""
    names = ["conv_pre", "conv_post"] + [f"ups.{i}" for i in range(len(model.ups))]
    for name, module in model.resblocks.named_modules():
        if isinstance(module, nn.Conv1d):
            names.append(f"resblocks.{name}")
    return names


def fuse_weight_norm(state: dict[str, torch.Tensor], prefixes: list[str]) -> dict[str, torch.Tensor]:
    """Replace ``p.weight_g`` / ``p.weight_v`` pairs by ``p.weight = g * v / ||v||`` (norm over all but dim 0,
    torch's weight_norm default for Conv1d and ConvTranspose1d). Fused checkpoints pass through unchanged."""
    out = dict(state)
    for p in prefixes:
        if f"{p}.weight_g" in out and f"{p}.weight_v" in out:
            g, v = out.pop(f"{p}.weight_g"), out.pop(f"{p}.weight_v")
            norm = v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))
            out[f"{p}.weight"] = g * v / norm
    return out


class NsfHifiganVocoder(Vocoder):
    """A user's NSF-HiFiGAN checkpoint behind the Vocoder interface: (B, 128, T), (B, T) -> (B, T * 512)."""

    identity = "nsf-hifigan"

    def __init__(self, generator: NsfHifiganGenerator, identity: str = "nsf-hifigan") -> None:
        super().__init__()
        self.generator = generator
        self.identity = identity

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != N_MELS or f0.shape != (mel.shape[0], mel.shape[2]):
            raise ValueError(f"expected mel (B, {N_MELS}, T) and f0 (B, T), got {tuple(mel.shape)}, {tuple(f0.shape)}")
        return self.generator(mel, f0, generator)[:, 0]


def _checkpoint_file(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise MelismaError(f"no NSF-HiFiGAN weights ({' / '.join(CHECKPOINT_NAMES)}) in {folder}")


def load_nsf_hifigan(path: str | Path) -> NsfHifiganVocoder:
    """Load an openvpi NSF-HiFiGAN folder (or its weights file, config.json beside it) strictly."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise MelismaError(f"no config.json for the NSF-HiFiGAN checkpoint in {folder}")
    try:
        cfg = NsfHifiganConfig.from_json(json.loads(config_path.read_text()))
    except json.JSONDecodeError as exc:
        raise MelismaError(f"{config_path} is not valid JSON: {exc}") from None
    cfg.check_compatible()
    weights = path if path.is_file() else _checkpoint_file(folder)
    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors have many types; the user needs one line
        raise MelismaError(f"cannot read NSF-HiFiGAN weights {weights}: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or "generator" not in ckpt:
        raise MelismaError(f"{weights} has no 'generator' state dict (not an openvpi NSF-HiFiGAN checkpoint)")
    model = NsfHifiganGenerator(cfg)
    state = fuse_weight_norm(ckpt["generator"], weight_normed_prefixes(model))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise MelismaError(
            f"NSF-HiFiGAN weights {weights} do not match config.json: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MelismaError(f"NSF-HiFiGAN weights {weights} have wrong shapes: {str(exc).splitlines()[-1]}") from None
    return NsfHifiganVocoder(model.eval(), identity=weights_identity("nsf-hifigan", model.state_dict()))
