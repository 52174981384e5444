"""Pitch extractors against the committed test corpus (synthetic singing with the imposed, true F0)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from extras import needs_fcpe

from melisma.corpus import load_corpus
from melisma.features.pitch import get_pitch_extractor
from melisma.features.postprocess import cents_error, voicing_scores

CORPUS = Path(__file__).parent / "data" / "corpus"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sung_clips():
    clips = [c for c in load_corpus(CORPUS) if c.kind == "sung" and c.f0_source == "melody"][:1]
    assert clips, "the committed test corpus has sung clips"
    return [(c.load_audio(), c.load_f0()) for c in clips]


@pytest.mark.parametrize("method", ["dio", pytest.param("fcpe", marks=needs_fcpe)])
def test_sung_clips_within_ten_cents(method, sung_clips):
    extractor = get_pitch_extractor(method)
    errors, est, ref = [], [], []
    for audio, truth in sung_clips:
        f0 = extractor.extract(audio, 44_100)
        assert f0.shape == truth.shape
        errors.append(cents_error(f0, truth))
        est.append(f0)
        ref.append(truth)
    err = np.concatenate(errors)
    assert np.median(err) < 10.0 and np.mean(err > 50) < 0.05, (np.median(err), np.mean(err > 50))
    assert voicing_scores(np.concatenate(est), np.concatenate(ref))["accuracy"] > 0.8


def test_benchmark_script_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("pitch_accuracy", REPO / "benchmarks" / "pitch_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "pitch.json"
    assert bench.main([str(CORPUS), "--methods", "dio", "--max-seconds", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["method"] == "dio" and row["clips"] >= 1 and row["median_cents"] < 10 and row["rtf"] > 0
