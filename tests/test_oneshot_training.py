"""The one-shot recipe end to end on the tiny corpus: a loadable model, VQMIVC's log, MI switches, resume rules."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from corpus_standins import trainable_copy
from test_oneshot import TINY

from melisma.errors import MelismaError

pytestmark = pytest.mark.slow


def tiny_config(**kw):
    from melisma.training.oneshot import OneShotTrainConfig

    base = OneShotTrainConfig(teacher_steps=3, distill_steps=2, batch_size=2, segment_frames=32, ref_frames=32,
                              mi_frames=16, pitch_shifts=(3.0,), from_base=False, log_every=1, max_minutes=0,
                              model=TINY)
    return replace(base, **kw)


def test_recipe_trains_logs_and_writes_a_model_conversion_can_load(tmp_path):
    from melisma.oneshot import load_oneshot_model
    from melisma.training.oneshot import train_oneshot

    corpus = trainable_copy(tmp_path / "corpus")
    out = train_oneshot([corpus], tmp_path / "run", tiny_config(use_cpmi=False))
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    teacher = [r for r in rows if r["phase"] == "teacher" and "loss" in r]
    assert len(teacher) == 3 and len([r for r in rows if r["phase"] == "distill" and "loss" in r]) == 2
    for key in ("recon", "edm", "cpc", "vq", "perplexity", "lld_cs", "lld_cp", "lld_ps", "mi_cs", "mi_cp", "mi_ps"):
        assert key in teacher[0]
    assert any("val_prior_l1" in r for r in rows) and any("val_mel_l1" in r for r in rows)
    model = load_oneshot_model(out)
    assert model.weights.info["steps"] == 2 and model.weights.info["config"]["use_cpmi"] is False
    assert model.weights.info["voices"] == 3
    with pytest.raises(MelismaError, match="other settings"):
        train_oneshot([corpus], tmp_path / "run", tiny_config(mi_weight=0.5))
    again = train_oneshot([corpus], tmp_path / "run", tiny_config(use_cpmi=False))  # finished: rewrites the same
    assert load_oneshot_model(again).identity == model.identity
