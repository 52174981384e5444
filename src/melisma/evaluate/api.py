"""One call that scores converted clips: ``evaluate_clips(converted, target_refs, ...) -> EvaluationResult``.

Clips are file paths or ``(audio, sr)`` pairs (mono float arrays), so training can score in-memory
audio without writing files.  Per-clip inputs (sources, reference F0, parallel references, originals,
conversion times) are sequences with one entry per converted clip, or a single entry shared by all.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from melisma import __version__
from melisma.audio.constants import SAMPLE_RATE
from melisma.audio.io import load_audio
from melisma.errors import AudioInputError, MelismaError
from melisma.evaluate.pitch import DEFAULT_JUDGE, extract_f0, intended_f0, pitch_scores
from melisma.evaluate.result import ClipDetail, ClipScores, EvaluationResult
from melisma.evaluate.speed import real_time_factor
from melisma.progress import track

ClipInput = str | os.PathLike | tuple[np.ndarray, int]
F0Input = str | os.PathLike | np.ndarray
T = TypeVar("T")

METRICS = ("similarity", "pitch", "dnsmos", "mcd", "intrusive", "speed")


def load_clip(clip: ClipInput) -> np.ndarray:
    """A path or an ``(audio, sr)`` pair -> (n,) float32 mono at SAMPLE_RATE."""
    if isinstance(clip, tuple):
        audio, sr = clip
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sr != SAMPLE_RATE:
            import soxr

            x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        return x
    return load_audio(clip, SAMPLE_RATE)[0]


def clip_name(clip: ClipInput, index: int) -> str:
    return str(clip) if not isinstance(clip, tuple) else f"clip{index:03d}"


def load_f0(f0: F0Input) -> np.ndarray:
    """A (T,) array or a .npy file of F0 in Hz on the shared grid (0 = unvoiced)."""
    if isinstance(f0, np.ndarray):
        return f0.astype(np.float32).reshape(-1)
    try:
        arr = np.load(Path(f0), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MelismaError(f"{f0}: not a readable .npy F0 file ({exc})") from None
    if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any():
        raise MelismaError(f"{f0}: expected a 1-D array of F0 in Hz (0 = unvoiced), got shape {arr.shape}")
    return arr.astype(np.float32)


def _per_clip(items: Sequence[T] | None, n: int, what: str) -> list[T | None]:
    """Broadcast one shared entry to every clip, or check there is exactly one per clip."""
    if items is None or len(items) == 0:
        return [None] * n
    if len(items) == 1:
        return [items[0]] * n
    if len(items) != n:
        raise MelismaError(f"got {len(items)} {what} for {n} converted clips (give one, or one per clip)")
    return list(items)


def evaluate_clips(
    converted: Sequence[ClipInput],
    target_refs: Sequence[ClipInput] = (),
    *,
    sources: Sequence[ClipInput] | None = None,
    reference_f0: Sequence[F0Input] | None = None,
    parallel_refs: Sequence[ClipInput] | None = None,
    originals: Sequence[ClipInput] | None = None,
    transpose: float | Sequence[float] = 0.0,
    judge_tracker: str = DEFAULT_JUDGE,
    conversion_seconds: Sequence[float | None] | None = None,
    metrics: Collection[str] = METRICS,
    keep_details: bool = False,
    target_embedding: np.ndarray | None = None,
) -> EvaluationResult:
    """Score every converted clip with every metric whose inputs were given.

    - similarity: needs ``target_refs`` (source similarity too when ``sources`` are given);
    - pitch: intended F0 = ``reference_f0`` if given, else the source F0 times 2**(transpose/12)
      (``transpose``: semitones, one for all clips or one per clip), both F0 tracks from ``judge_tracker``;
    - dnsmos: always (no reference);  mcd: needs ``parallel_refs``;
    - intrusive (PESQ-wb, STOI): needs ``originals`` (reconstruction);  speed: ``conversion_seconds``.
    ``keep_details`` keeps F0 tracks for a visual report.  ``target_embedding`` ((256,) unit-norm, from
    ``target_embedding_of``) replaces ``target_refs``, so a training loop embeds its references once.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise MelismaError(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}")
    if not converted:
        raise MelismaError("no converted clips to evaluate")
    n = len(converted)
    shifts = [float(transpose)] if isinstance(transpose, (int, float)) else [float(t) for t in transpose]
    per: dict[str, list[Any]] = {
        "source": _per_clip(sources, n, "sources"),
        "f0": _per_clip(reference_f0, n, "reference F0 files"),
        "parallel": _per_clip(parallel_refs, n, "parallel references"),
        "original": _per_clip(originals, n, "originals"),
        "seconds": _per_clip(conversion_seconds, n, "conversion times"),
        "transpose": _per_clip(shifts, n, "transpositions"),
    }
    if "pitch" in metrics and (sources or reference_f0):
        from melisma.evaluate.pitch import judge

        judge(judge_tracker)  # an unknown tracker fails here, before any slow work
    target = target_embedding
    if target is None and "similarity" in metrics and target_refs:
        target = target_embedding_of(target_refs)
    clips, details = [], []
    memo = _Memo(judge_tracker)
    for i in track(range(n), "evaluating", total=n):
        inputs = {k: v[i] for k, v in per.items()}
        scores, detail = _evaluate_one(converted[i], i, target, inputs, inputs["transpose"], memo, metrics)
        clips.append(scores)
        if keep_details:
            details.append(detail)
    settings = {
        "judge_pitch_tracker": judge_tracker,
        "transpose_semitones": shifts[0] if isinstance(transpose, (int, float)) else shifts,
        "metrics": [m for m in METRICS if m in metrics],
        "target_refs": [clip_name(c, i) for i, c in enumerate(target_refs)],
        "melisma_version": __version__,
    }
    return EvaluationResult(clips=clips, settings=settings, details=details)


class _Memo:
    """Source embeddings and F0 computed once when several converted clips share a source (audio is not
    kept: a batch of long songs would not fit in memory)."""

    def __init__(self, judge: str) -> None:
        self.judge = judge
        self._store: dict[tuple[str, Any], Any] = {}

    def _get(self, kind: str, clip: ClipInput, make: Any) -> Any:
        key = (kind, id(clip[0]) if isinstance(clip, tuple) else str(clip))
        if key not in self._store:
            self._store[key] = make()
        return self._store[key]

    def embedding(self, clip: ClipInput) -> np.ndarray:
        from melisma.evaluate.similarity import speaker_embedding

        return self._get("emb", clip, lambda: speaker_embedding(load_clip(clip), SAMPLE_RATE))

    def f0(self, clip: ClipInput) -> np.ndarray:
        return self._get("f0", clip, lambda: extract_f0(load_clip(clip), SAMPLE_RATE, self.judge))


def target_embedding_of(target_refs: Sequence[ClipInput]) -> np.ndarray:
    """(256,) unit-norm centroid of the Resemblyzer embeddings of the target voice's reference clips."""
    from melisma.evaluate.similarity import centroid, speaker_embedding

    embs = [speaker_embedding(load_clip(r), SAMPLE_RATE) for r in target_refs]
    for ref, emb in zip(target_refs, embs, strict=True):
        if np.isnan(emb).any():
            raise AudioInputError(f"{clip_name(ref, 0)}: target reference is silent")
    return centroid(embs)


def _evaluate_one(
    clip: ClipInput,
    index: int,
    target: np.ndarray | None,
    inputs: dict[str, Any],
    transpose: float,
    memo: _Memo,
    metrics: Collection[str],
) -> tuple[ClipScores, ClipDetail]:
    audio = load_clip(clip)
    scores = ClipScores(clip=clip_name(clip, index), duration_s=audio.size / SAMPLE_RATE)
    source = inputs["source"]
    detail = ClipDetail(converted=clip, source=source)
    if "similarity" in metrics and target is not None:
        _score_similarity(scores, audio, target, memo.embedding(source) if source is not None else None)
    if "pitch" in metrics and (source is not None or inputs["f0"] is not None):
        src_f0 = memo.f0(source) if source is not None else None
        _score_pitch(scores, detail, audio, src_f0, inputs["f0"], transpose, memo.judge)
    if "dnsmos" in metrics:
        from melisma.evaluate.naturalness import dnsmos

        d = dnsmos(audio, SAMPLE_RATE)
        scores.dnsmos_sig, scores.dnsmos_bak, scores.dnsmos_ovrl = d.sig, d.bak, d.ovrl
    if "mcd" in metrics and inputs["parallel"] is not None:
        from melisma.evaluate.mcd import mcd

        scores.mcd_db = mcd(audio, load_clip(inputs["parallel"]), SAMPLE_RATE)
    if "intrusive" in metrics and inputs["original"] is not None:
        from melisma.evaluate.intrusive import intrusive_scores

        r = intrusive_scores(audio, load_clip(inputs["original"]), SAMPLE_RATE)
        scores.pesq_wb, scores.stoi = r.pesq_wb, r.stoi
    if "speed" in metrics and inputs["seconds"] is not None:
        scores.conversion_seconds = float(inputs["seconds"])
        scores.rtf = real_time_factor(scores.conversion_seconds, scores.duration_s)
    return scores, detail


def _score_similarity(
    scores: ClipScores, audio: np.ndarray, target: np.ndarray, source_emb: np.ndarray | None
) -> None:
    from melisma.evaluate.similarity import cosine, speaker_embedding

    emb = speaker_embedding(audio, SAMPLE_RATE)
    scores.target_similarity = cosine(emb, target)
    if source_emb is not None:
        scores.source_similarity = cosine(emb, source_emb)
        scores.similarity_margin = scores.target_similarity - scores.source_similarity
        scores.closer_to_target = scores.similarity_margin > 0


def _score_pitch(
    scores: ClipScores,
    detail: ClipDetail,
    audio: np.ndarray,
    src_f0: np.ndarray | None,
    f0_input: F0Input | None,
    transpose: float,
    judge: str,
) -> None:
    out_f0 = extract_f0(audio, SAMPLE_RATE, judge)
    want = load_f0(f0_input) if f0_input is not None else intended_f0(src_f0, transpose)  # type: ignore[arg-type]
    p = pitch_scores(out_f0, want)
    scores.cents_error_mean, scores.cents_error_median = p.cents_error_mean, p.cents_error_median
    scores.f0_correlation, scores.vuv_agreement = p.f0_correlation, p.vuv_agreement
    detail.source_f0, detail.intended_f0, detail.output_f0 = src_f0, want, out_f0
