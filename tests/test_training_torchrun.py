"""The shipped commands under torchrun (two gloo processes on loopback): `melisma train` and the foundation singer
recipe train data-parallel, rank 0 alone writes; the content and vocoder recipes refuse a multi-process launch."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_standins import trainable_copy
from singer_standins import write_dataset

import melisma
from melisma.cli import main
from melisma.singer.voicepack import load_pack, read_header


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "melisma", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=cwd, env=env)


def _half_written(root: Path) -> list[Path]:
    """Temporaries an atomic write leaves behind when interrupted (``.NAME.tmp`` and the like)."""
    return [p for p in root.rglob("*") if p.name.startswith(".") or ".tmp" in p.name or p.name.endswith("~")]


@pytest.mark.slow
def test_melisma_train_under_torchrun_writes_one_pack_from_rank_0(tmp_path):
    dataset = write_dataset(tmp_path / "alto", 4)
    done = _torchrun("train", str(dataset), "-o", "alto.melisma", "--teacher-steps", "2", "--distill-steps", "1",
                     "--from-scratch", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "alto.melisma"
    assert sorted(tmp_path.glob("*.melisma")) == [out]
    assert done.stderr.count("wrote ") == 1 and done.stderr.count("features of ") == 1  # one process speaks
    voice = melisma.load_voice(out)
    info = load_pack(out).info
    assert info["processes"] == 2 and info["teacher_steps"] == 2 and info["distill_steps"] == 1
    assert voice is not None
    # rank 0 filled the cache once (one entry per clip, nothing written twice), the other read it
    assert len(list((dataset / "cache").glob("*.safetensors"))) == 4
    assert not _half_written(tmp_path)


@pytest.mark.slow
def test_foundation_singer_under_torchrun_writes_and_ships_one_base_pack(tmp_path):
    corpus = trainable_copy(tmp_path / "corpus")
    shipped = tmp_path / "release" / "base.melisma"
    # --run-dir: torchrun's own parser would take --run for its --run-path
    done = _torchrun("foundation", "singer", str(corpus), "--run-dir", "run", "--teacher-steps", "2",
                     "--distill-steps", "1", "--ship", str(shipped), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    base = tmp_path / "run" / "base.melisma"
    assert sorted(p.name for p in (tmp_path / "run").glob("*.melisma")) == ["base.melisma"]
    header = read_header(base)
    assert header["singers"] == sorted(p.name for p in (corpus / "audio").iterdir())
    info = load_pack(base).info
    assert info["processes"] == 2 and info["teacher_steps"] == 2
    assert hashlib.sha256(shipped.read_bytes()).digest() == hashlib.sha256(base.read_bytes()).digest()
    assert sorted(p.name for p in shipped.parent.iterdir()) == ["base.melisma"]
    assert not list(corpus.rglob("*.safetensors"))  # features cached in the run folder, not the corpus
    assert not _half_written(tmp_path)


def test_content_and_vocoder_recipes_refuse_a_multi_process_launch(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; these recipes are not data-parallel
    corpus = tmp_path / "corpus"
    for argv in (["foundation", "content", "--corpus", str(corpus), "-o", str(tmp_path / "c.safetensors")],
                 ["foundation", "vocoder", "--corpus", str(corpus), "-o", str(tmp_path / "voc")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "not data-parallel" in err and "without torchrun" in err and "\n" not in err, err
    assert not list(tmp_path.iterdir())
