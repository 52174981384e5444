"""Objective evaluation of conversions: speaker similarity, pitch fidelity, naturalness, MCD, PESQ/STOI, speed.

Public API::

    from melisma.evaluate import evaluate_clips, timed
    result = evaluate_clips(["out.wav"], ["target1.wav", "target2.wav"], sources=["in.wav"], transpose=2)
    result.aggregate["target_similarity"].mean;  result.save("scores.json")
"""

from melisma.evaluate.api import METRICS, evaluate_clips, load_clip
from melisma.evaluate.result import Aggregate, ClipScores, EvaluationResult
from melisma.evaluate.speed import real_time_factor, timed

__all__ = [
    "METRICS",
    "Aggregate",
    "ClipScores",
    "EvaluationResult",
    "evaluate_clips",
    "load_clip",
    "real_time_factor",
    "timed",
]
