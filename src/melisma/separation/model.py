"""The learned vocal separator: a band-split mask network on the mix's STFT (inference only; training lives in
``melisma.training.separator``).

Like BSRNN / BS-RoFormer it splits the 1025-bin spectrum (N_FFT 2048 at 44.1 kHz) into ``K`` bands, narrow where
voice harmonics are dense (100 Hz below 1 kHz) and wide above; each band's log-magnitudes are projected to a
``dim``-vector.  Residual blocks then mix along time (a depthwise dilated convolution and a per-band MLP, as in
ConvNeXt / TCN) and across bands (a learned K x K mixing).  Every layer is causal-free but local: the receptive
field is ``receptive_frames`` frames each side, so a window processed with that much context gives the same
result as the whole song (``separate`` relies on this to bound memory).  Each band's head predicts a sigmoid mask
for its bins; the vocal is mask x mix (complex STFT), the accompaniment the rest.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from melisma.audio.constants import HOP_SIZE, N_FFT, SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.formats import FormatError, safetensors_metadata, stamp_metadata

N_BINS = N_FFT // 2 + 1  # 1025 STFT bins, 21.5 Hz apart
LOG_FLOOR = 1e-5  # added to |X| before the log: ~-100 dB below a full-scale sine's bin


def default_band_edges_hz() -> tuple[float, ...]:
    """Band edges in Hz: 100 Hz steps to 1 kHz, 250 Hz to 4 kHz, 500 Hz to 8 kHz, 2 kHz to 16 kHz, then Nyquist."""
    steps = ((0, 1000, 100), (1000, 4000, 250), (4000, 8000, 500), (8000, 16001, 2000))
    edges = [float(e) for lo, hi, step in steps for e in range(lo, hi, step)]
    return (*edges, SAMPLE_RATE / 2)


@dataclass(frozen=True)
class SeparatorConfig:
    band_edges_hz: tuple[float, ...] = default_band_edges_hz()
    dim: int = 48  # features per band
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)  # one residual block each
    kernel: int = 5  # time taps of each block's depthwise convolution

    def band_bins(self) -> list[tuple[int, int]]:
        """[(first bin, end bin), ...] covering all N_BINS bins, each band at least one bin wide."""
        hz_per_bin = SAMPLE_RATE / N_FFT
        cuts = sorted({min(N_BINS, int(round(e / hz_per_bin))) for e in self.band_edges_hz} | {0, N_BINS})
        return list(zip(cuts[:-1], cuts[1:], strict=True))

    @property
    def receptive_frames(self) -> int:
        """STFT frames of context each block stack sees on each side."""
        return sum(d * (self.kernel - 1) // 2 for d in self.dilations)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SeparatorConfig:
        raw = json.loads(text)
        return cls(tuple(raw["band_edges_hz"]), int(raw["dim"]), tuple(raw["dilations"]), int(raw["kernel"]))


class Block(nn.Module):
    """(B, K, T, D) -> same: time mixing (depthwise dilated conv + MLP), then band mixing (K x K linear)."""

    def __init__(self, dim: int, n_bands: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.time_norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.band_norm = nn.LayerNorm(dim)
        self.band_mix = nn.Linear(n_bands, n_bands)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, k, t, d = h.shape
        y = self.time_norm(h).reshape(b * k, t, d).transpose(1, 2)
        y = self.conv(y).transpose(1, 2).reshape(b, k, t, d)
        h = h + self.mlp(y)
        z = self.band_norm(h).permute(0, 2, 3, 1)  # (B, T, D, K)
        return h + self.band_mix(z).permute(0, 3, 1, 2)


class BandSplitMasker(nn.Module):
    """(B, N_BINS, T) log-magnitude of the mix -> (B, N_BINS, T) vocal mask in [0, 1]; T at 86.1 frames/s."""

    def __init__(self, cfg: SeparatorConfig = SeparatorConfig()) -> None:
        super().__init__()
        self.cfg, self.bands = cfg, cfg.band_bins()
        d = cfg.dim
        self.split = nn.ModuleList([nn.Linear(hi - lo, d) for lo, hi in self.bands])
        self.in_norm = nn.LayerNorm(d)
        self.blocks = nn.ModuleList([Block(d, len(self.bands), cfg.kernel, k) for k in cfg.dilations])
        self.out_norm = nn.LayerNorm(d)
        self.heads = nn.ModuleList([nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, hi - lo))
                                    for lo, hi in self.bands])

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        x = logmag.transpose(1, 2)  # (B, T, F)
        h = torch.stack([proj(x[..., lo:hi]) for proj, (lo, hi) in zip(self.split, self.bands, strict=True)], 1)
        h = self.in_norm(h)
        for block in self.blocks:
            h = block(h)
        h = self.out_norm(h)
        masks = [head(h[:, i]) for i, head in enumerate(self.heads)]  # each (B, T, width)
        return torch.sigmoid(torch.cat(masks, dim=-1)).transpose(1, 2)


def stft(audio: torch.Tensor) -> torch.Tensor:
    """(B, n) float at SAMPLE_RATE -> (B, N_BINS, n // HOP_SIZE + 1) complex STFT (Hann, centred)."""
    window = torch.hann_window(N_FFT, device=audio.device)
    return torch.stft(audio, N_FFT, HOP_SIZE, window=window, center=True, return_complex=True)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of ``stft``: (B, N_BINS, T) complex -> (B, length) float."""
    window = torch.hann_window(N_FFT, device=spec.device)
    return torch.istft(spec, N_FFT, HOP_SIZE, window=window, center=True, length=length)


def log_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """(B, F, T) complex -> (B, F, T) natural log of |X| + LOG_FLOOR (the network's input)."""
    return torch.log(spec.abs() + LOG_FLOOR)


def split_spec(model: BandSplitMasker, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, F, T) complex mix STFT -> (vocal, accompaniment) complex STFTs that sum to it."""
    vocal = model(log_magnitude(spec)) * spec
    return vocal, spec - vocal


def save_separator(model: BandSplitMasker, path: str | os.PathLike, card: dict | None = None) -> Path:
    """Write ``model`` as float32 safetensors with its stamped config (and ``card`` figures) in the metadata."""
    from safetensors.torch import save_file

    from melisma.atomic import atomic_path

    meta = {**stamp_metadata("separator-weights"), "config": model.cfg.to_json(), "card": json.dumps(card or {})}
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def load_separator(path: str | os.PathLike) -> BandSplitMasker:
    """The separator in ``path``, loaded strictly (a foreign, truncated or mismatched file: one-line error)."""
    from safetensors.torch import load_file

    meta = safetensors_metadata(path, "separator-weights")
    try:
        cfg = SeparatorConfig.from_json(meta["config"])
        model = BandSplitMasker(cfg)
        model.load_state_dict(load_file(str(path)), strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise FormatError(f"{path}: separator weights do not match their config ({str(exc).splitlines()[0][:100]})") \
            from None
    return model.eval()


class WindowedSeparator:
    """Runs a ``BandSplitMasker`` over a song of any length in windows of ``window_s`` seconds.

    Each window is separated with ``context_s`` seconds of the mix on each side (more than the receptive field
    plus an STFT frame, so the cores match whole-song processing; both rounded to whole hops so that windows
    share the song's frame grid), and neighbours are joined by a linear
    crossfade of ``fade_s`` seconds centred on their boundary.  Memory is that of one window.
    """

    def __init__(self, model: BandSplitMasker, window_s: float = 20.0, context_s: float = 2.0,
                 fade_s: float = 0.5) -> None:
        need = (model.cfg.receptive_frames + 2) * HOP_SIZE / SAMPLE_RATE + fade_s / 2
        if context_s < need:
            raise MelismaError(f"separator context {context_s} s is shorter than it needs ({need:.2f} s)")
        self.model = model
        # whole hops, so every window's frames fall on the song's own frame grid
        self.window = max(1, round(window_s * SAMPLE_RATE / HOP_SIZE)) * HOP_SIZE
        self.context = round(context_s * SAMPLE_RATE / HOP_SIZE) * HOP_SIZE
        self.half_fade = int(fade_s * SAMPLE_RATE / 2)

    def separate_window(self, mix: np.ndarray) -> np.ndarray:
        """(n,) float32 mix -> (n,) vocal estimate, the whole array at once."""
        if mix.size < N_FFT:
            return np.zeros_like(mix, dtype=np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(mix, dtype=np.float32))[None]
            vocal, _ = split_spec(self.model, stft(x))
            return istft(vocal, x.shape[-1])[0].numpy().astype(np.float32)

    def separate(self, mix: np.ndarray) -> np.ndarray:
        """(n,) float32 mix at SAMPLE_RATE -> (n,) vocal estimate, window by window."""
        x = np.asarray(mix, dtype=np.float32)
        n = x.size
        if n <= self.window + 2 * self.context:
            return self.separate_window(x)
        out = np.zeros(n, np.float32)
        for a in range(0, n, self.window):
            b = min(n, a + self.window)
            lo, hi = max(0, a - self.context), min(n, b + self.context)
            y = self.separate_window(x[lo:hi])
            s, e = max(0, a - self.half_fade), min(n, b + self.half_fade)
            out[s:e] += y[s - lo: e - lo] * self._weights(s, e, a, b, n)
        return out

    def _weights(self, s: int, e: int, a: int, b: int, n: int) -> np.ndarray:
        """Crossfade weights over samples [s, e) of the window whose core is [a, b): neighbours' weights sum to 1."""
        t = np.arange(s, e, dtype=np.float64)
        w = np.ones(e - s)
        h = max(self.half_fade, 1)
        if a > 0:
            w = np.minimum(w, np.clip((t - (a - h)) / (2 * h), 0.0, 1.0))
        if b < n:
            w = np.minimum(w, np.clip(((b + h) - t) / (2 * h), 0.0, 1.0))
        return w.astype(np.float32)
