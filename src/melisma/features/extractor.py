"""One clip's frame features, computed the same way for training and for conversion.

``FeatureExtractor`` is the only place that turns audio into what the singer model consumes (vocos'
``FeatureExtractor`` is the model: one object serves the dataset and inference). For (n,) audio at
SAMPLE_RATE and T = ``n_frames(n)`` (= n // 512 + 1, 86.13 frames/s) it gives:

- ``f0``       (T,)        float32 Hz, 0 = unvoiced (``melisma.features.pitch.model_pitch``)
- ``loudness`` (T,)        float32 dBFS per frame (flat RMS by default, ``melisma.features.loudness``)
- ``mel``      (128, T)    float32 natural-log mel (``melisma.features.mel``), the training target
- ``content``  (V, C, T)   float32 content of V input-side variants: the clip itself, then the clip resampled
                           by each of ``pitch_shifts`` semitones (pitch and formants move), back on the grid

``settings()`` names everything that changes these arrays, so ``melisma.features.cache`` can key on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr

from melisma.audio.constants import SAMPLE_RATE, n_frames
from melisma.features.pitch import PitchExtractor, fit_frames, model_pitch

if TYPE_CHECKING:  # torch is imported where content is computed: pitch and loudness alone need none of it
    import torch

FEATURE_VERSION = 2  # bump whenever extraction code changes its output: every cache entry is recomputed


@dataclass
class Features:
    """Frame features of one clip on the shared grid (shapes in the module docstring); mel / content are None
    when the extractor was asked not to compute them."""

    f0: np.ndarray
    loudness: np.ndarray
    mel: np.ndarray | None = None
    content: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.f0.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that are present, by field name."""
        return {k: v for k, v in vars(self).items() if v is not None}


class FeatureExtractor:
    """Pitch tracker + content encoder + loudness kind + content pitch-shift variants, applied to a clip.

    ``pitch``: a PitchExtractor, or a method name for ``model_pitch``; ``content_encoder``: a ContentEncoder
    (``None``: no content); ``loudness``: "rms" (what the singer model is trained on) or "A";
    ``pitch_shifts``: semitones of the extra content variants; ``mel``: compute the log-mel target.
    """

    def __init__(self, pitch: str | PitchExtractor = "dio", content_encoder: torch.nn.Module | None = None,
                 loudness: str = "rms", pitch_shifts: tuple[float, ...] = (), mel: bool = True) -> None:
        from melisma.features.loudness import check_weighting

        self.pitch = pitch if isinstance(pitch, PitchExtractor) else model_pitch(pitch)
        self.content_encoder = content_encoder
        self.loudness_kind = check_weighting(loudness)
        self.pitch_shifts = tuple(float(s) for s in pitch_shifts)
        self.with_mel = bool(mel)

    def settings(self) -> dict[str, Any]:
        """Everything besides the audio that determines the features (JSON-serialisable)."""
        enc = self.content_encoder
        return {
            "feature_version": FEATURE_VERSION, "pitch": self.pitch.settings(), "loudness": self.loudness_kind,
            "mel": self.with_mel, "content": None if enc is None else str(getattr(enc, "identity", type(enc).__name__)),
            "pitch_shifts": list(self.pitch_shifts) if enc is not None else [],
        }

    # --- one feature each: (n,) float32 audio at SAMPLE_RATE in -------------------------------------
    def f0(self, audio: np.ndarray) -> np.ndarray:
        """(n_frames(n),) float32 F0 in Hz, 0 = unvoiced."""
        return np.asarray(self.pitch.extract(audio, SAMPLE_RATE), dtype=np.float32)

    def loudness(self, audio: np.ndarray) -> np.ndarray:
        """(n_frames(n),) float32 dBFS per frame."""
        from melisma.features.loudness import frame_loudness_db

        return fit_frames(frame_loudness_db(audio, self.loudness_kind), n_frames(audio.shape[0]))

    def log_mel(self, audio: np.ndarray) -> np.ndarray:
        """(128, n_frames(n)) float32 natural-log mel."""
        from melisma.features.mel import log_mel

        return fit_frames(log_mel(audio)[0].numpy(), n_frames(audio.shape[0]))

    def content(self, audio: np.ndarray, shifts: tuple[float, ...] | None = None) -> torch.Tensor:
        """(V, C, n_frames(n)) content of the clip (variant 0) and of each shift in ``shifts`` (default: the
        extractor's ``pitch_shifts``)."""
        import torch

        if self.content_encoder is None:
            raise ValueError("this FeatureExtractor has no content encoder")
        t = n_frames(audio.shape[0])
        variants = [0.0, *(self.pitch_shifts if shifts is None else shifts)]
        with torch.no_grad():
            return torch.stack([self._shifted_content(audio, s, t) for s in variants])

    def _shifted_content(self, audio: np.ndarray, semitones: float, t: int) -> torch.Tensor:
        import torch

        assert self.content_encoder is not None
        y = audio
        if semitones:  # resampled: played back at SAMPLE_RATE, pitch and formants move by the ratio
            y = soxr.resample(audio, SAMPLE_RATE * 2.0 ** (semitones / 12.0), SAMPLE_RATE).astype(np.float32)
        c = self.content_encoder(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None])
        return torch.nn.functional.interpolate(c, size=t, mode="linear", align_corners=False)[0]

    # --- everything at once ------------------------------------------------------------------------------
    def __call__(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> Features:
        """(n,) mono waveform at ``sr`` -> Features on the grid of the same duration at SAMPLE_RATE."""
        x = np.asarray(audio, dtype=np.float32)
        if sr != SAMPLE_RATE:
            x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        return Features(
            f0=self.f0(x), loudness=self.loudness(x),
            mel=self.log_mel(x) if self.with_mel else None,
            content=self.content(x).numpy() if self.content_encoder is not None else None,
        )
