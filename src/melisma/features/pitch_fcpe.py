"""FCPE pitch with torchfcpe's bundled weights, without importing torchaudio.

Decision: ``import torchfcpe`` runs the package ``__init__``, which imports ``torchaudio`` (only for its
resampler), and PyPI's torchaudio is a CUDA build that cannot load beside CPU torch.  We neither ship a
fake torchaudio nor vendor the network: we register a private alias package whose ``__path__`` is the
installed torchfcpe directory and import only ``<alias>.models`` from it (the network definition; it
needs einops and local-attention, not torchaudio).  The package ``__init__`` never runs.  The checkpoint
``assets/fcpe_c_v001.pt`` is read with ``torch.load(weights_only=True)`` and loaded strictly.  Resampling
to 16 kHz uses soxr and the mel front end is re-implemented here with the exact settings the checkpoint's
config names (16 kHz, n_fft = win = 1024, hop 160, 128 Slaney mel bins 0-8000 Hz, log(max(mel, 1e-5)),
pad (win - hop) // 2 reflect on each side, no centring), so the model sees what it was trained on.

Output: 100 frames/s from the network, moved onto the shared 86.13 frames/s grid by the base class.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch

from melisma.errors import MissingDependencyError
from melisma.features.pitch import PitchExtractor

INSTALL_HINT = "pip install --no-deps torchfcpe==0.0.4 && pip install einops local-attention"
ALIAS = "_melisma_torchfcpe"
CHECKPOINT = "assets/fcpe_c_v001.pt"
MODEL_SR = 16_000  # Hz, the checkpoint's mel.sr
FCPE_HOP = 160  # samples at 16 kHz: 100 frames/s


def torchfcpe_dir() -> Path:
    """Directory of the installed torchfcpe package (found without importing it)."""
    spec = importlib.util.find_spec("torchfcpe")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(f"pitch method 'fcpe' needs torchfcpe; install it: {INSTALL_HINT}")
    return Path(spec.origin).parent


def _models_module(pkg_dir: Path) -> types.ModuleType:
    """Import torchfcpe/models.py (and its relative imports) under a private alias, skipping __init__."""
    if ALIAS not in sys.modules:
        alias = types.ModuleType(ALIAS)
        alias.__path__ = [str(pkg_dir)]
        alias.__package__ = ALIAS
        sys.modules[ALIAS] = alias
    try:
        return importlib.import_module(f"{ALIAS}.models")
    except ImportError as exc:
        raise MissingDependencyError(f"pitch method 'fcpe' needs {exc.name or exc}; install: {INSTALL_HINT}") from None


@lru_cache(maxsize=1)
def load_fcpe() -> tuple[torch.nn.Module, dict[str, Any]]:
    """The bundled FCPE network in eval mode and its mel config (loaded once per process)."""
    pkg_dir = torchfcpe_dir()
    path = pkg_dir / CHECKPOINT
    if not path.is_file():
        raise MissingDependencyError(f"torchfcpe is installed without its weights ({path}); reinstall: {INSTALL_HINT}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["config_dict"]
    m = cfg["model"]
    net = _models_module(pkg_dir).CFNaiveMelPE(
        input_channels=cfg["mel"]["num_mels"], out_dims=m["out_dims"], hidden_dims=m["hidden_dims"],
        n_layers=m["n_layers"], n_heads=m["n_heads"], f0_max=m["f0_max"], f0_min=m["f0_min"],
        use_fa_norm=m["use_fa_norm"], conv_only=m.get("conv_only", False), conv_dropout=0.0, atten_dropout=0.0,
        use_harmonic_emb=m.get("use_harmonic_emb", False),
    )
    net.load_state_dict(ckpt["model"], strict=True)
    return net.eval(), dict(cfg["mel"])


@lru_cache(maxsize=2)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)).float()


def fcpe_mel(audio16k: np.ndarray, mel_cfg: dict[str, Any]) -> torch.Tensor:
    """(n,) waveform at 16 kHz in [-1, 1] -> (1, n // hop + 1, 128) natural-log mel, as FCPE was trained on."""
    n_fft, win, hop = mel_cfg["n_fft"], mel_cfg["win_size"], mel_cfg["hop_size"]
    y = torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))[None]
    left = (win - hop) // 2
    right = max((win - hop + 1) // 2, win - y.size(-1) - left)
    mode = "reflect" if right < y.size(-1) else "constant"
    y = torch.nn.functional.pad(y[:, None], (left, right), mode=mode)[:, 0]
    spec = torch.stft(y, n_fft, hop_length=hop, win_length=win, window=torch.hann_window(win), center=False,
                      return_complex=True)
    mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    basis = _mel_basis(mel_cfg["sr"], n_fft, mel_cfg["num_mels"], float(mel_cfg["fmin"]), float(mel_cfg["fmax"]))
    mel = torch.log(torch.clamp(basis @ mag, min=1e-5)).transpose(1, 2)
    n = audio16k.size // hop + 1  # the frame count torchfcpe's Wav2Mel enforces
    if mel.size(1) < n:
        mel = torch.cat([mel, mel[:, -1:].expand(-1, n - mel.size(1), -1)], dim=1)
    return mel[:, :n]


class FCPEExtractor(PitchExtractor):
    """FCPE (bundled torchfcpe checkpoint) with local-argmax decoding; ``threshold`` = voicing confidence."""

    name = "fcpe"

    def __init__(self, threshold: float = 0.006, **common: Any) -> None:
        super().__init__(**common)
        self.threshold = float(threshold)
        load_fcpe()  # fail early (MissingDependencyError) rather than on the first clip

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "threshold": self.threshold, "checkpoint": "fcpe_c_v001"}

    @torch.no_grad()
    def _estimate(self, audio, sr):
        net, mel_cfg = load_fcpe()
        x = soxr.resample(audio, sr, MODEL_SR, quality="HQ") if sr != MODEL_SR else audio
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 1.0:  # the model was trained on audio within [-1, 1]
            x = x / peak
        latent = net(fcpe_mel(x, mel_cfg))  # (1, S, 360) per-bin probabilities
        cents = net.latent2cents_local_decoder(latent, threshold=self.threshold, mask=False)[0, :, 0]
        confidence = latent.max(dim=-1).values[0]
        f0 = (10.0 * 2.0 ** (cents / 1200.0)).numpy().astype(np.float32)
        f0[(confidence <= self.threshold).numpy()] = 0.0
        times = np.arange(f0.size) * FCPE_HOP / MODEL_SR
        return f0, times, None
