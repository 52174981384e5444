"""Model-free parts of melisma.evaluate: pitch scores, DTW, aggregation, JSON, timing."""

from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pytest
from extras import needs_matplotlib

from melisma.evaluate import ClipScores, EvaluationResult, real_time_factor, timed
from melisma.evaluate.mcd import dtw_path
from melisma.evaluate.pitch import intended_f0, pitch_scores
from melisma.formats import FormatError


def test_pitch_scores_count_cents_correlation_and_voicing():
    ref = np.array([0, 100, 200, 400, 0, 300, 0], np.float32)
    out = np.array([0, 200, 400, 800, 100, 0, 0], np.float32)  # one octave up, two voicing errors
    s = pitch_scores(out, ref)
    assert s.cents_error_mean == pytest.approx(1200.0) and s.both_voiced == 3
    assert s.f0_correlation == pytest.approx(1.0)
    assert s.vuv_agreement == pytest.approx(5 / 7)
    assert pitch_scores(out[:4], ref).both_voiced == 3  # trimmed to the shorter track
    assert math.isnan(pitch_scores(np.zeros(5), ref).cents_error_mean)


def test_intended_f0_shifts_voiced_frames_only():
    f0 = np.array([0.0, 220.0, 440.0], np.float32)
    np.testing.assert_allclose(intended_f0(f0, 12.0), [0.0, 440.0, 880.0], rtol=1e-6)
    np.testing.assert_allclose(intended_f0(f0, -3.0)[1], 220.0 * 2 ** (-0.25), rtol=1e-6)


def test_dtw_path_is_optimal_against_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    ia, ib = dtw_path(a, b)
    assert (ia[0], ib[0], ia[-1], ib[-1]) == (0, 0, 4, 3)
    assert np.all(np.diff(ia) >= 0) and np.all(np.diff(ib) >= 0) and np.all(np.diff(ia) + np.diff(ib) >= 1)
    best = _brute_force_dtw(a, b)
    assert np.linalg.norm(a[ia] - b[ib], axis=1).sum() == pytest.approx(best)


def _brute_force_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Minimum path cost over every monotone step sequence (tiny inputs only)."""
    best = math.inf
    for steps in itertools.product(((1, 0), (0, 1), (1, 1)), repeat=len(a) + len(b) - 2):
        i = j = 0
        cost = np.linalg.norm(a[0] - b[0])
        for di, dj in steps:
            i, j = i + di, j + dj
            if i >= len(a) or j >= len(b):
                break
            cost += np.linalg.norm(a[i] - b[j])
            if (i, j) == (len(a) - 1, len(b) - 1):
                best = min(best, cost)
                break
    return best


def test_aggregate_worst_follows_the_direction_of_each_metric_and_json_round_trips():
    clips = [
        ClipScores("a", 2.0, target_similarity=0.9, cents_error_mean=10.0, closer_to_target=True),
        ClipScores("b", 2.0, target_similarity=0.5, cents_error_mean=80.0, closer_to_target=False),
        ClipScores("c", 2.0, target_similarity=0.7, cents_error_mean=float("nan"), closer_to_target=True),
    ]
    r = EvaluationResult(clips=clips, settings={"judge_pitch_tracker": "harvest"})
    agg = r.aggregate
    assert agg["target_similarity"].worst == 0.5 and agg["target_similarity"].median == 0.7
    assert agg["cents_error_mean"].worst == 80.0 and agg["cents_error_mean"].n == 2
    assert agg["closer_to_target_rate"].mean == pytest.approx(2 / 3)
    assert "mcd_db" not in agg
    data = json.loads(r.to_json())
    assert data["format"] == "melisma.evaluation" and data["format_version"] == 1
    assert data["clips"][2]["cents_error_mean"] is None
    back = EvaluationResult.from_dict(data)
    assert back.clips[0] == clips[0] and back.aggregate["target_similarity"] == agg["target_similarity"]
    with pytest.raises(FormatError, match="evaluation result format version 99 is newer than this melisma reads"):
        EvaluationResult.from_dict({**data, "format_version": 99})
    legacy = {**{k: v for k, v in data.items() if k != "format_version"}, "version": 1}  # before melisma.formats
    assert EvaluationResult.from_dict(legacy).clips[0] == clips[0]


def test_timed_reports_wall_clock_and_rtf():
    result, seconds = timed(time.sleep, 0.05)
    assert result is None and 0.04 < seconds < 1.0
    assert real_time_factor(1.0, 4.0) == 0.25 and math.isnan(real_time_factor(1.0, 0.0))


@needs_matplotlib
def test_report_replaces_only_its_own_folder(tmp_path, sine_clip):
    from melisma.errors import MelismaError
    from melisma.evaluate.report import write_report
    from melisma.evaluate.result import ClipDetail

    audio, sr, f0 = sine_clip
    track = np.full(audio.size // 512 + 1, 220.0, np.float32)
    result = EvaluationResult(
        clips=[ClipScores("tone", 2.0, cents_error_mean=3.0)],
        details=[ClipDetail(converted=(audio, sr), source=(audio, sr), source_f0=track, intended_f0=track,
                            output_f0=track)],
    )
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MelismaError):
        write_report(result, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left behind
    page = write_report(result, tmp_path / "report")
    assert write_report(result, tmp_path / "report") == page  # an earlier report may be replaced
    html = page.read_text()
    assert html.count("<audio") == 2 and "cents_error_mean" in html and "3.000" in html
    assert (page.parent / "plots" / "000.png").stat().st_size > 5_000
    assert json.loads((page.parent / "scores.json").read_text())["clips"][0]["clip"] == "tone"
