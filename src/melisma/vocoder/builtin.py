"""melisma's builtin vocoder: a frame-rate network driving a differentiable source-filter synthesiser.

Signal path (all at SAMPLE_RATE, frames at FRAME_RATE):

    f0 (B, T) --> band-limited pulse train (B, T*512) --STFT--> X_h --.
    noise      (B, T*512) ----------------------------------STFT--> X_n --+--> H_h X_h + H_n X_n --iSTFT--> audio
    mel, f0 --> ConvNeXt stack (frame rate) --> log|H_h|, log|H_n| per bin --'

The harmonic filter is made minimum phase (real cepstrum folding), like a vocal-tract filter, and the pulse
train's phase comes from the F0 itself, so pitch is exact by construction and no adversarial training is needed.
The synthesis STFT is finer than the mel's (``n_fft`` 1024, ``sub_hop`` 256 by default): filters computed at the
frame rate are interpolated linearly (in log magnitude) to the synthesis hop.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from melisma.atomic import atomic_path
from melisma.audio.constants import HOP_SIZE, N_MELS
from melisma.errors import MelismaError
from melisma.formats import check, stamp_metadata
from melisma.identity import weights_identity
from melisma.paths import VOCODER_WEIGHTS
from melisma.vocoder.base import Vocoder
from melisma.vocoder.source import harmonic_excitation

MEL_OFFSET = 5.0  # log-mel of speech spans about -11..+2; centre it near 0 for the network
MEL_SCALE = 3.0
INIT_LOG_GAIN = -3.0  # start filters at gain 0.05: unit-power excitation -> about the RMS of speech at -20 LUFS


@dataclass(frozen=True)
class BuiltinConfig:
    """Architecture of the builtin vocoder (stored in the weights file's metadata)."""

    hidden: int = 160  # channels of the frame-rate ConvNeXt stack
    n_blocks: int = 4
    kernel: int = 7  # depthwise kernel (frames), symmetric: 3 frames of look-ahead
    expansion: int = 2  # pointwise MLP width factor
    n_fft: int = 1024  # synthesis STFT size
    sub_hop: int = 256  # synthesis hop; HOP_SIZE must be a multiple

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP, residual. (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel: int, expansion: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pw1 = nn.Linear(channels, channels * expansion)
        self.pw2 = nn.Linear(channels * expansion, channels)
        self.gamma = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class FilterNet(nn.Module):
    """mel (B, N_MELS, T) log-mel, f0 (B, T) Hz -> (B, 2 * n_bins, T) log-magnitude of the harmonic and noise
    filters at the frame rate."""

    def __init__(self, cfg: BuiltinConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(N_MELS + 2, cfg.hidden, 5, padding=2)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.hidden, cfg.kernel, cfg.expansion) for _ in range(cfg.n_blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, 2 * cfg.n_bins)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.constant_(self.head.bias, INIT_LOG_GAIN)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        voiced = (f0 > 0).float()
        log_f0 = torch.log(f0.clamp_min(1.0) / 200.0) * voiced
        x = torch.cat([(mel + MEL_OFFSET) / MEL_SCALE, log_f0[:, None], voiced[:, None]], dim=1)
        x = self.conv_in(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x.transpose(1, 2))).transpose(1, 2)


def minimum_phase_log(log_mag: torch.Tensor, n_fft: int) -> torch.Tensor:
    """(..., n_fft // 2 + 1) natural-log magnitude -> complex log of the minimum-phase response with that
    magnitude (real part = log magnitude, imaginary part = unwrapped phase), by folding the real cepstrum."""
    cep = torch.fft.irfft(log_mag, n=n_fft)
    fold = torch.zeros(n_fft, device=log_mag.device)
    fold[0] = 1.0
    fold[1 : n_fft // 2] = 2.0
    fold[n_fft // 2] = 1.0
    return torch.fft.rfft(cep * fold, n=n_fft)


class BuiltinVocoder(Vocoder):
    """Source-filter vocoder. ``forward(mel (B, 128, T), f0 (B, T) Hz) -> (B, T * 512)`` at 44.1 kHz."""

    window: torch.Tensor  # Hann window of the synthesis STFT (a non-persistent buffer)

    def __init__(self, cfg: BuiltinConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BuiltinConfig()
        if HOP_SIZE % self.cfg.sub_hop:
            raise ValueError(f"sub_hop {self.cfg.sub_hop} must divide HOP_SIZE {HOP_SIZE}")
        self.net = FilterNet(self.cfg)
        self.register_buffer("window", torch.hann_window(self.cfg.n_fft), persistent=False)

    @property
    def identity(self) -> str:  # type: ignore[override]
        """``builtin@<hash12>`` of the current weights (see ``melisma.identity``)."""
        return weights_identity("builtin", self.state_dict())

    def filters(self, mel: torch.Tensor, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> harmonic (complex) and noise (real) filters, each (B, n_bins, T * HOP_SIZE / sub_hop + 1).

        The minimum-phase complex log response is computed at the frame rate and its real part (log
        magnitude) and imaginary part (unwrapped phase) are interpolated to the synthesis hop, which costs
        half the FFTs of working at the synthesis hop and keeps the interpolation free of phase wrapping.
        """
        log_mag = self.net(mel, f0).clamp(max=8.0)
        log_mag = torch.cat([log_mag, log_mag[..., -1:]], dim=-1)  # hold the last frame to the clip end
        log_h, log_n = log_mag.split(self.cfg.n_bins, dim=1)
        clog_h = minimum_phase_log(log_h.transpose(1, 2), self.cfg.n_fft).transpose(1, 2)
        stacked = torch.cat([clog_h.real, clog_h.imag, log_n], dim=1)
        n_sub = mel.shape[-1] * (HOP_SIZE // self.cfg.sub_hop) + 1
        stacked = F.interpolate(stacked, size=n_sub, mode="linear", align_corners=True)
        re, im, log_n = stacked.split(self.cfg.n_bins, dim=1)
        return torch.exp(torch.complex(re, im)), torch.exp(log_n)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, self.cfg.n_fft, self.cfg.sub_hop, window=self.window, center=True, return_complex=True)

    def _noise_spectrum(self, shape: torch.Size, device: torch.device,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """Complex Gaussian (B, n_bins, frames) with the STFT power of unit white noise under our window:
        drawn in the frequency domain directly, which saves one STFT per call."""
        scale = (self.window.pow(2).sum() / 2).sqrt()
        re, im = (torch.randn(shape, generator=generator).to(device) for _ in range(2))
        return torch.complex(re, im) * scale

    def forward(
        self, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator | None = None,
        *, noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mel (B, 128, T) natural-log mel, f0 (B, T) Hz (0 = unvoiced) -> (B, T * 512) waveform.

        ``noise`` (B, n_bins, T * 512 / sub_hop + 1) complex replaces the internal noise spectrum; else it is
        drawn from ``generator`` (the same generator state gives the same waveform) or torch's global one.
        """
        if mel.dim() != 3 or mel.shape[1] != N_MELS or f0.shape != (mel.shape[0], mel.shape[2]):
            raise ValueError(f"expected mel (B, {N_MELS}, T) and f0 (B, T), got {tuple(mel.shape)}, {tuple(f0.shape)}")
        n = mel.shape[-1] * HOP_SIZE
        h_filter, n_filter = self.filters(mel, f0)
        source = harmonic_excitation(f0, HOP_SIZE)
        if noise is None:
            noise = self._noise_spectrum(h_filter.shape, mel.device, generator)
        spec = h_filter * self._stft(source) + n_filter * noise
        audio = torch.istft(spec, self.cfg.n_fft, self.cfg.sub_hop, window=self.window, center=True, length=n)
        return audio if self.training else audio.clamp(-1.0, 1.0)


def save_builtin(
    model: BuiltinVocoder, path: str | Path, extra: dict[str, str] | None = None, half: bool = False
) -> None:
    """Write weights + config to a safetensors file (format stamp in the metadata), atomically.

    ``half`` stores float16 (for shipping: half the size, no audible change); loading casts back to float32.
    """
    from safetensors.torch import save_file

    meta = {**stamp_metadata("vocoder-weights"), "config": json.dumps(asdict(model.cfg))}
    meta.update(extra or {})
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_builtin(path: str | Path | None = None) -> BuiltinVocoder:
    """Load builtin weights strictly (default: the ones shipped in ``melisma/assets/models``)."""
    from safetensors.torch import load_file

    from melisma.formats import safetensors_metadata

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise MelismaError(f"builtin vocoder weights not found: {path}")
    meta = safetensors_metadata(path, "vocoder-weights", error=MelismaError)
    check(meta, "vocoder-weights", path)
    try:
        model = BuiltinVocoder(BuiltinConfig(**json.loads(meta["config"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise MelismaError(f"{path}: damaged vocoder weights config ({exc})") from None
    state = load_file(str(path))
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MelismaError(f"{path} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MelismaError(f"{path} has tensors of the wrong shape: {str(exc).splitlines()[-1].strip()}") from None
    return model.eval()


def default_weights_path() -> Path:
    """The shipped weights: ``melisma/assets/models/vocoder-builtin.safetensors``."""
    return VOCODER_WEIGHTS

