"""Small stand-ins for the content encoder and vocoder, so singer tests need no shipped weights."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.content.base import ContentEncoder
from melisma.features.mel import log_mel
from melisma.singer.model import SingerConfig, SingerNet
from melisma.singer.voicepack import SingerStats, VoicePack, save_pack
from melisma.vocoder.base import Vocoder

TINY = SingerConfig(content_dim=8, n_singers=2, hidden=16, residual_channels=16, layers=2, dilation_cycle=2,
                    prior_layers=2, harmonic_template=False)


class StandInEncoder(ContentEncoder):
    """Random fixed conv over log-mel: (B, n) -> (B, 8, n // 512 + 1)."""

    identity = "test-encoder"
    dim = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(128, 8, 3, padding=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(log_mel(audio) / 10.0))


class StandInVocoder(Vocoder):
    """A sine at f0 with the frame energy of the mel: (B, 128, T), (B, T) -> (B, T * 512)."""

    identity = "test-vocoder"

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        amp = mel.exp().mean(1).clamp(0, 1)
        amp = torch.repeat_interleave(amp, HOP_SIZE, dim=-1)
        f = torch.repeat_interleave(f0, HOP_SIZE, dim=-1)
        phase = 2 * torch.pi * torch.cumsum(f / SAMPLE_RATE, dim=-1)
        return 0.5 * amp * torch.sin(phase)


def tiny_pack(path, singers=("alto", "bass"), teacher=True):
    torch.manual_seed(0)
    net = SingerNet(TINY)
    stats = {"alto": SingerStats(330.0, 250.0, 500.0), "bass": SingerStats(110.0, 80.0, 200.0)}
    pack = VoicePack(TINY, list(singers), {k: stats[k] for k in singers}, "test-encoder", "test-vocoder",
                     net.state_dict(), net.state_dict() if teacher else None)
    return save_pack(pack, path)


def write_clip(path, seconds=2.0, f0=220.0, sr=SAMPLE_RATE):
    t = np.arange(int(seconds * sr)) / sr
    freq = f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    audio = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
    sf.write(str(path), audio, sr)
    return audio


def write_dataset(folder, n_clips: int):
    """A prepared-dataset folder of ``n_clips`` 1 s tones (200, 240, ... Hz) with its stamped manifest.json."""
    import json

    from melisma.formats import stamp

    (folder / "clips").mkdir(parents=True)
    clips = []
    for i in range(n_clips):
        write_clip(folder / "clips" / f"c{i}.flac", 1.0, 200.0 + 40 * i)
        clips.append({"path": f"clips/c{i}.flac", "duration": 1.0})
    (folder / "manifest.json").write_text(json.dumps({**stamp("dataset"), "clips": clips}))
    return folder
