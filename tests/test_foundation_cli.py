"""`melisma foundation content|singer`: the recipes that rebuild the shipped models run end to end (tiny budgets)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from melisma.cli import main

CORPUS = Path(__file__).parent / "data" / "corpus"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_foundation_singer_trains_a_base_pack_with_a_singer_per_voice(tmp_path, capsys):
    from melisma.singer.voicepack import read_header
    from melisma.training.singer import BASE_MODEL

    before = _digest(BASE_MODEL)
    rc = main(["-q", "foundation", "singer", str(CORPUS), "--run", str(tmp_path / "run"),
               "--teacher-steps", "2", "--distill-steps", "1"])
    assert rc == 0, capsys.readouterr().err
    header = read_header(tmp_path / "run" / "base.melisma")
    assert header["singers"] == sorted(p.name for p in (CORPUS / "audio").iterdir())
    assert header["content_encoder"] == "builtin"
    assert _digest(BASE_MODEL) == before  # only --ship replaces the packaged model


@pytest.mark.slow
def test_foundation_content_writes_loadable_weights(tmp_path, capsys):
    from melisma.content import get_content_encoder

    out = tmp_path / "content.safetensors"
    rc = main(["-q", "foundation", "content", "--corpus", str(CORPUS), "-o", str(out), "--minutes", "0.05"])
    assert rc == 0, capsys.readouterr().err
    enc = get_content_encoder("builtin", path=out)
    feats = enc(torch.zeros(1, 44100))
    assert feats.shape == (1, enc.dim, 44100 // 512 + 1) and torch.isfinite(feats).all()


def test_foundation_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv in (["foundation", "singer", str(tmp_path / "empty"), "--run", str(tmp_path / "run")],
                 ["foundation", "content", "--corpus", str(tmp_path / "empty"), "-o", str(tmp_path / "c.st")],
                 ["foundation", "content", "--corpus", str(CORPUS), "-o", str(tmp_path / "c.st"), "--minutes", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("melisma:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "c.st").exists() and not (tmp_path / "run").exists()
