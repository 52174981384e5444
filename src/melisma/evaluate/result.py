"""Evaluation results: per-clip scores, aggregates, and their versioned JSON form."""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from melisma.atomic import write_text_atomic
from melisma.formats import CURRENT, check, format_name, stamp

FORMAT = format_name("evaluation")
FORMAT_VERSION = CURRENT["evaluation"]

# Which way is better for each aggregated metric: worst = min where higher is better, max otherwise.
HIGHER_IS_BETTER = {
    "target_similarity": True,
    "source_similarity": False,
    "similarity_margin": True,
    "cents_error_mean": False,
    "cents_error_median": False,
    "f0_correlation": True,
    "vuv_agreement": True,
    "dnsmos_sig": True,
    "dnsmos_bak": True,
    "dnsmos_ovrl": True,
    "mcd_db": False,
    "pesq_wb": True,
    "stoi": True,
    "rtf": False,
}


@dataclass
class ClipScores:
    """Every score of one converted clip; None where that metric was not asked for or had no input."""

    clip: str
    duration_s: float
    target_similarity: float | None = None  # cosine to the target references' centroid, [-1, 1]
    source_similarity: float | None = None  # cosine to the source clip, [-1, 1]
    similarity_margin: float | None = None  # target - source similarity (> 0: closer to the target)
    closer_to_target: bool | None = None
    cents_error_mean: float | None = None  # |output - intended F0| in cents, frames voiced in both
    cents_error_median: float | None = None
    f0_correlation: float | None = None  # Pearson r against intended F0
    vuv_agreement: float | None = None  # fraction of frames with the same voiced/unvoiced decision
    dnsmos_sig: float | None = None  # DNSMOS P.835, MOS 1-5
    dnsmos_bak: float | None = None
    dnsmos_ovrl: float | None = None
    mcd_db: float | None = None  # mel-cepstral distortion to the parallel reference after DTW, dB
    pesq_wb: float | None = None  # against the original (reconstruction mode)
    stoi: float | None = None
    conversion_seconds: float | None = None  # measured by the caller
    rtf: float | None = None  # conversion_seconds / duration_s


@dataclass
class Aggregate:
    mean: float
    median: float
    worst: float
    n: int


@dataclass
class ClipDetail:
    """What a visual report needs beyond the scores (kept in memory, never serialised)."""

    converted: Any  # the ClipInput given for the converted clip
    source: Any | None = None
    source_f0: np.ndarray | None = None  # (T,) Hz on the shared grid
    intended_f0: np.ndarray | None = None
    output_f0: np.ndarray | None = None


@dataclass
class EvaluationResult:
    clips: list[ClipScores]
    settings: dict[str, Any] = field(default_factory=dict)
    details: list[ClipDetail] = field(default_factory=list, repr=False, compare=False)

    @property
    def aggregate(self) -> dict[str, Aggregate]:
        """Mean, median and worst over clips for every metric measured on at least one clip."""
        out: dict[str, Aggregate] = {}
        for name, higher in HIGHER_IS_BETTER.items():
            vals = [v for c in self.clips if (v := getattr(c, name)) is not None and math.isfinite(v)]
            if vals:
                worst = min(vals) if higher else max(vals)
                out[name] = Aggregate(statistics.fmean(vals), statistics.median(vals), worst, len(vals))
        flags = [c.closer_to_target for c in self.clips if c.closer_to_target is not None]
        if flags:
            rate = sum(flags) / len(flags)
            out["closer_to_target_rate"] = Aggregate(rate, rate, rate, len(flags))
        return out

    def mean(self, metric: str) -> float:
        """Mean of ``metric`` over the clips that have it (nan when none): a scalar for validation curves."""
        agg = self.aggregate.get(metric)
        return agg.mean if agg is not None else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            **stamp("evaluation"),
            "settings": self.settings,
            "aggregate": {k: asdict(v) for k, v in self.aggregate.items()},
            "clips": [asdict(c) for c in self.clips],
        }

    def to_json(self) -> str:
        return json.dumps(_nan_to_none(self.to_dict()), indent=2, allow_nan=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically (a temporary file, then rename)."""
        return write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "evaluation result") -> EvaluationResult:
        """Read ``to_dict``'s form back; FormatError for another format or a newer version."""
        check(data, "evaluation", source)
        names = {f.name for f in fields(ClipScores)}
        clips = [ClipScores(**{k: v for k, v in c.items() if k in names}) for c in data["clips"]]
        return cls(clips=clips, settings=dict(data.get("settings", {})))


def _nan_to_none(obj: Any) -> Any:
    """JSON has no NaN: an undefined score becomes null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj
