"""`melisma foundation content|singer`: the recipes that rebuild the shipped models run end to end (tiny budgets)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from corpus_standins import TINY, trainable_copy

from melisma.cli import main


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_foundation_singer_trains_a_base_pack_with_a_singer_per_voice(tmp_path, capsys):
    from melisma.content import get_content_encoder
    from melisma.singer.voicepack import read_header
    from melisma.training.singer import BASE_MODEL

    before = _digest(BASE_MODEL)
    corpus = trainable_copy(tmp_path / "corpus")
    rc = main(["-q", "foundation", "singer", str(corpus), "--run", str(tmp_path / "run"),
               "--teacher-steps", "2", "--distill-steps", "1"])
    assert rc == 0, capsys.readouterr().err
    header = read_header(tmp_path / "run" / "base.melisma")
    assert header["singers"] == sorted(p.name for p in (corpus / "audio").iterdir())
    assert len(header["singers"]) == 3
    assert header["content_encoder"] == get_content_encoder("builtin").identity  # builtin@<hash of the weights>
    assert header["content_encoder"].startswith("builtin@") and len(header["content_encoder"]) == len("builtin@") + 12
    assert _digest(BASE_MODEL) == before  # nothing writes into the installed package
    assert not list(corpus.rglob("*.safetensors")) and list((tmp_path / "run" / "features").rglob("*.safetensors"))


def test_foundation_singer_ships_to_the_path_it_is_given_and_never_into_the_package(tmp_path, capsys):
    from melisma.paths import BASE_PACK

    before = _digest(BASE_PACK)
    corpus = trainable_copy(tmp_path / "corpus")
    argv = ["-q", "foundation", "singer", str(corpus), "--run", str(tmp_path / "run"), "--teacher-steps", "2",
            "--distill-steps", "1"]
    assert main(argv + ["--ship", str(BASE_PACK)]) == 2
    err = capsys.readouterr().err.strip()
    assert "inside the installed melisma package" in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # refused before any training
    shipped = tmp_path / "release" / "base.melisma"
    assert main(argv + ["--ship", str(shipped)]) == 0, capsys.readouterr().err
    assert _digest(shipped) == _digest(tmp_path / "run" / "base.melisma")
    assert sorted(p.name for p in shipped.parent.iterdir()) == ["base.melisma"]  # no temporary left behind
    assert _digest(BASE_PACK) == before


@pytest.mark.slow
def test_foundation_content_writes_loadable_weights(tmp_path, capsys):
    from melisma.content import get_content_encoder

    out = tmp_path / "content.safetensors"
    corpus = trainable_copy(tmp_path / "corpus")
    rc = main(["-q", "foundation", "content", "--corpus", str(corpus), "-o", str(out), "--minutes", "0.05"])
    assert rc == 0, capsys.readouterr().err
    enc = get_content_encoder("builtin", path=out)
    feats = enc(torch.zeros(1, 44100))
    assert feats.shape == (1, enc.dim, 44100 // 512 + 1) and torch.isfinite(feats).all()


def test_foundation_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv in (["foundation", "singer", str(tmp_path / "empty"), "--run", str(tmp_path / "run")],
                 ["foundation", "content", "--corpus", str(tmp_path / "empty"), "-o", str(tmp_path / "c.st")],
                 ["foundation", "content", "--corpus", str(TINY), "-o", str(tmp_path / "c.st"), "--minutes", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("melisma:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "c.st").exists() and not (tmp_path / "run").exists()
