"""Objective evaluation of conversions: speaker similarity, pitch fidelity, naturalness, MCD, PESQ/STOI, speed.

Public API::

    from melisma.evaluate import evaluate_clips, timed
    result = evaluate_clips(["out.wav"], ["target1.wav", "target2.wav"], sources=["in.wav"], transpose=2)
    result.aggregate["target_similarity"].mean;  result.save("scores.json")

    # in a training loop: embed the target once, score in-memory audio, track one scalar
    target = target_embedding_of(["ref1.wav", "ref2.wav"])
    val = evaluate_clips([(audio, 44100)], target_embedding=target, sources=[(src, 44100)],
                         metrics=("similarity", "pitch"), judge_tracker="dio")
    val.mean("target_similarity"), val.mean("cents_error_mean")
"""

from melisma.evaluate.api import METRICS, evaluate_clips, load_clip, target_embedding_of
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
    "target_embedding_of",
    "timed",
]
