"""What a conversion is asked for, checked and resolved without torch: the options' bounds, singer mixes,
auto-transposition and the project-rate input. Shared by the torch engine (``melisma.singer.convert``) and the
onnxruntime engine (``melisma.onnx.runtime``), which must not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE
from melisma.errors import MelismaError

MAX_TRANSPOSE = 36.0


@dataclass(frozen=True)
class Conversion:
    """What a conversion returns (``Voice.convert_detailed``, ``OnnxVoice.convert_detailed``): the (n,) waveform
    at ``sr`` and the transposition it applied (``transpose`` plus the auto-transpose shift, semitones), which is
    what an evaluation must be told."""

    audio: np.ndarray
    sr: int
    transpose: float


def singer_mix(spec: str | Mapping | None, singers: list[str]) -> np.ndarray:
    """Singer choice -> (S,) float32 weights summing to 1: a name, ``"a:0.7,b:0.3"``, a {name: weight} dict, or
    None (the first singer). Unknown names, bad or non-positive weights raise MelismaError."""
    if spec is None or spec == "":
        if len(singers) > 1:
            spec = singers[0]
        else:
            return np.ones(1, dtype=np.float32)
    if isinstance(spec, str):
        spec = _parse_mix(spec)
    weights = np.zeros(len(singers), dtype=np.float32)
    for name, w in spec.items():
        if name not in singers:
            raise MelismaError(f"singer {name!r} is not in this voice pack (singers: {', '.join(singers)})")
        if not math.isfinite(float(w)) or float(w) < 0:
            raise MelismaError(f"singer {name!r}: weight {w} must be a finite number >= 0")
        weights[singers.index(name)] += np.float32(w)
    if float(weights.sum()) <= 0:
        raise MelismaError("singer mix: the weights sum to zero")
    return weights / weights.sum()


def _parse_mix(spec: str) -> dict[str, float]:
    items: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, weight = part.strip().rpartition(":")
        if not sep:
            name, weight = weight, "1"
        try:
            items[name.strip()] = items.get(name.strip(), 0.0) + float(weight)
        except ValueError:
            raise MelismaError(f"singer mix {spec!r}: weight {weight!r} is not a number") from None
    return items


def auto_transpose_semitones(f0: np.ndarray, medians: Mapping[str, float], singers: list[str],
                             weights: np.ndarray) -> float:
    """Whole semitones that move the median voiced F0 of ``f0`` (Hz) to the (weighted) singers' median
    (``medians``: singer -> median F0 Hz, 0 or absent = unknown)."""
    voiced = f0[f0 > 0]
    targets = [(float(w), float(medians[s])) for s, w in zip(singers, np.asarray(weights).tolist(), strict=True)
               if w > 0 and medians.get(s, 0.0) > 0]
    if voiced.size == 0 or not targets:
        return 0.0
    target_log = sum(w * math.log2(m) for w, m in targets) / sum(w for w, _ in targets)
    return float(round(12.0 * (target_log - math.log2(float(np.median(voiced))))))


def check_convert_options(transpose: float, steps: int, sampler: str, max_chunk_s: float) -> None:
    """One-line MelismaError for options no conversion can honour (the CLI checks them before loading)."""
    if not math.isfinite(transpose) or abs(transpose) > MAX_TRANSPOSE:
        raise MelismaError(f"transpose {transpose}: must be within +-{MAX_TRANSPOSE:g} semitones")
    if int(steps) != steps or steps < 1 or steps > 200:
        raise MelismaError(f"steps {steps}: must be a whole number from 1 to 200")
    if sampler not in ("consistency", "teacher"):
        raise MelismaError(f"sampler {sampler!r}: use consistency or teacher")
    if not max_chunk_s >= 2.0:
        raise MelismaError(f"chunk length {max_chunk_s} s: must be at least 2 s")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """(n,) float32 at ``sr_in`` -> float32 at ``sr_out`` (soxr); the same array when the rates are equal."""
    if sr_in == sr_out:
        return x
    import soxr

    return soxr.resample(x, sr_in, sr_out).astype(np.float32)


def to_project_rate(audio: np.ndarray, sr: int) -> np.ndarray:
    """A mono (n,) or multichannel waveform at ``sr`` -> checked (m,) float32 mono at SAMPLE_RATE."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= 8 and x.shape[0] < x.shape[1] else 1)
    if x.ndim != 1 or x.size < HOP_SIZE:
        raise MelismaError(f"audio of shape {np.shape(audio)}: expected a mono waveform of at least "
                           f"{HOP_SIZE} samples")
    if not np.isfinite(x).all():
        raise MelismaError("audio contains NaN or infinite samples")
    if int(sr) < 8000:
        raise MelismaError(f"sample rate {sr} Hz: must be at least 8000 Hz")
    return resample(x, int(sr), SAMPLE_RATE)
