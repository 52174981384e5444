"""The shipped commands under torchrun (two gloo processes on loopback): `melisma train` and the foundation singer,
content and vocoder recipes train data-parallel, every process ends with the same weights, rank 0 alone writes."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import recipe_runner
import torch
from corpus_standins import trainable_copy
from singer_standins import write_dataset

import melisma
from melisma.cli import main
from melisma.singer.voicepack import load_pack, read_header
from melisma.training.distributed import World

RUNNER = Path(__file__).parent / "recipe_runner.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(*args: str, cwd: Path, nproc: int = 2, script: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``melisma ARGS`` (or ``script ARGS``) as ``nproc`` processes under torchrun."""
    target = [str(script)] if script else ["-m", "melisma"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *target, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
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


def _recipe(nproc: int, folder: Path, corpus: Path, *args: str, fixed_clock: bool = False
            ) -> tuple[subprocess.CompletedProcess, set[str]]:
    """A tiny foundation recipe (tests/recipe_runner.py) as ``nproc`` processes in ``folder``; returns the run and
    the set of weight hashes its processes ended with (one per process)."""
    (folder / "hashes").mkdir(parents=True)
    done = _torchrun(str(folder / "hashes"), "foundation", *args[:1], "--corpus", str(corpus), *args[1:],
                     cwd=folder, nproc=nproc, script=RUNNER, env={"FIXED_CLOCK": "1" if fixed_clock else "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    hashes = [p.read_text() for p in sorted((folder / "hashes").iterdir())]
    assert len(hashes) == nproc
    return done, set(hashes)


@pytest.mark.slow
def test_content_recipe_under_torchrun_trains_like_one_process(tmp_path):
    corpus = trainable_copy(tmp_path / "corpus")
    rows = {}
    for n in (1, 2):
        done, hashes = _recipe(n, tmp_path / f"p{n}", corpus, "content", "-o", "c.safetensors", "--max-steps", "20",
                               "--loss-log", "loss.jsonl")  # --loss-log: torchrun takes --log for its --log-dir
        assert len(hashes) == 1  # every process ends with the same weights
        assert sorted(p.name for p in (tmp_path / f"p{n}").iterdir()) == ["c.safetensors", "hashes", "loss.jsonl"]
        figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert len(figures) == 1 and figures[0]["processes"] == n and figures[0]["steps"] == 20  # one speaks
        rows[n] = [json.loads(line) for line in (tmp_path / f"p{n}" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows[2]] == [r["step"] for r in rows[1]] == [5, 10, 15, 20]
    # the two runs see different crops: measured 3.7714 (1) vs 3.7729 (2) at step 20, 0.04 % apart; a first row
    # of 4.75 / 4.32. 10 % leaves room for the noise of 20 steps and still fails a run that does not learn alike
    assert rows[2][-1]["total"] == pytest.approx(rows[1][-1]["total"], rel=0.10)
    assert rows[2][-1]["total"] < rows[2][0]["total"]
    assert not _half_written(tmp_path)


@pytest.mark.slow
def test_vocoder_recipe_under_torchrun_trains_like_one_process(tmp_path):
    corpus = trainable_copy(tmp_path / "corpus")
    val = {}
    for n in (1, 2):
        done, hashes = _recipe(n, tmp_path / f"p{n}", corpus, "vocoder", "-o", "run", "--steps", "100",
                               "--batch-size", "4")
        assert len(hashes) == 1  # every process ends with the same weights
        run = tmp_path / f"p{n}" / "run"
        assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "history.json", "last.safetensors",
                                                         "vocoder-builtin.safetensors"]
        assert done.stderr.count("wrote ") == 1 and done.stderr.count("eval step 100") == 1  # rank 0 alone
        history = json.loads((run / "history.json").read_text())
        assert [h["step"] for h in history] == [100]
        val[n] = history[-1]["val_mel_l1"]
    # measured held-out mel L1 2.0845 (1 process) vs 2.0848 (2), 0.02 % apart; untrained about 2.4
    assert val[2] == pytest.approx(val[1], rel=0.03)
    assert not _half_written(tmp_path)


def test_content_and_vocoder_recipes_refuse_a_batch_that_does_not_split(tmp_path, capsys, monkeypatch):
    from melisma.training import content, vocoder

    monkeypatch.setattr(content, "join_world", lambda: World(0, 5))  # batch 12 over 5 processes
    monkeypatch.setattr(vocoder, "join_world", lambda: World(0, 2))
    corpus = trainable_copy(tmp_path / "corpus")
    for argv in (["foundation", "content", "--corpus", str(corpus), "-o", str(tmp_path / "c.safetensors")],
                 ["foundation", "vocoder", "--corpus", str(corpus), "-o", str(tmp_path / "voc"), "--batch-size", "3"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "does not split over" in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def _first_vocoder_step(corpus: Path, processes: int, batch: int) -> dict[str, torch.Tensor]:
    """The weights after one vocoder update of ``processes`` ranks, computed in this process: rank r draws
    ``batch / processes`` crops from its own generators (seed r), gradients averaged (what the recipe does)."""
    from melisma.corpus import trainable_clips
    from melisma.training.vocoder import clips_in_memory, sample_batch, spectral_loss
    from melisma.vocoder.builtin import BuiltinVocoder

    torch.set_num_threads(1)
    clips = clips_in_memory(trainable_clips([corpus]), str(corpus))
    torch.manual_seed(0)
    model = BuiltinVocoder(recipe_runner.TINY_VOCODER)
    states = [torch.get_rng_state()]
    for r in range(1, processes):  # each rank builds its own network (rank 0's replaces it); its noise follows
        torch.manual_seed(r)
        BuiltinVocoder(recipe_runner.TINY_VOCODER)
        states.append(torch.get_rng_state())
    grads = []
    for r, state in enumerate(states):
        torch.set_rng_state(state)
        model.zero_grad(set_to_none=True)
        mel, f0, audio = sample_batch(clips, batch // processes, 48, np.random.default_rng(r))
        spectral_loss(model(mel, f0), audio)[0].backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for p, *each in zip(model.parameters(), *grads, strict=True):
        p.grad = sum(each[1:], each[0]) / processes
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.8, 0.99), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=1, pct_start=0.03)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_first_vocoder_update_is_the_batch_split_over_the_processes(tmp_path, processes):
    """1 process: seed 0's run as it was before data parallelism (the same loop, written out here); 2 processes:
    rank 0's and rank 1's halves of the batch, gradients averaged, to the bit."""
    from safetensors.torch import load_file

    corpus = trainable_copy(tmp_path / "corpus")
    _recipe(processes, tmp_path / "p", corpus, "vocoder", "-o", "run", "--steps", "1", "--batch-size", "4")
    trained = load_file(str(tmp_path / "p" / "run" / "last.safetensors"))
    expected = _first_vocoder_step(corpus, processes, 4)
    assert sorted(trained) == sorted(k for k in expected if k != "window")
    worst = max(float((trained[k] - expected[k]).abs().max()) for k in trained)
    assert worst == 0.0, worst  # bit for bit (measured): a + b then / 2, in gloo's all-reduce as here


def _first_content_step(corpus: Path, processes: int) -> dict[str, torch.Tensor]:
    """The encoder after one content-recipe update of ``processes`` ranks with a clock that stands still,
    computed in this process the same way as ``_first_vocoder_step``."""
    import random
    from dataclasses import replace

    from melisma.corpus import trainable_clips
    from melisma.training.content import ClipBank, ContentTrainer, make_batch

    torch.set_num_threads(1)
    cfg = recipe_runner.tiny_content_config()
    share = replace(cfg, batch=cfg.batch // processes)
    bank = ClipBank(trainable_clips([corpus]), cfg.crop_frames)
    torch.manual_seed(0)
    model = ContentTrainer()
    states = [torch.get_rng_state()]
    for r in range(1, processes):
        torch.manual_seed(r)
        ContentTrainer()
        states.append(torch.get_rng_state())
    grads = []
    for r, state in enumerate(states):
        torch.set_rng_state(state)
        model.zero_grad(set_to_none=True)
        model.losses(make_batch(bank, share, random.Random(r)), share)["total"].backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for p, *each in zip(model.parameters(), *grads, strict=True):
        p.grad = sum(each[1:], each[0]) / processes
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr / 200, weight_decay=1e-4)  # warm-up step 1 of 200
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return {k: v.detach() for k, v in model.encoder.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_first_content_update_is_the_batch_split_over_the_processes(tmp_path, processes):
    """As the vocoder's: one process is seed 0's run as before data parallelism; two average their halves."""
    from safetensors.torch import load_file

    corpus = trainable_copy(tmp_path / "corpus")
    _recipe(processes, tmp_path / "p", corpus, "content", "-o", "c.safetensors", "--max-steps", "1",
            fixed_clock=True)
    trained = load_file(str(tmp_path / "p" / "c.safetensors"))
    expected = _first_content_step(corpus, processes)
    assert sorted(trained) == sorted(expected)
    worst = max(float((trained[k] - expected[k]).abs().max()) for k in trained)
    assert worst == 0.0, worst


@pytest.mark.slow
def test_rank_0s_clock_stops_both_recipes_at_the_same_step(tmp_path):
    """A time budget (not a step count) ends the run: rank 0 decides, every process stops at its step."""
    corpus = trainable_copy(tmp_path / "corpus")
    done, hashes = _recipe(2, tmp_path / "c", corpus, "content", "-o", "c.safetensors", "--minutes", "0.1")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(hashes) == 1 and 0 < figures["steps"] < 100_000  # 100 000: the --max-steps default
    done, hashes = _recipe(2, tmp_path / "v", corpus, "vocoder", "-o", "run", "--steps", "100000",
                           "--batch-size", "4", "--max-minutes", "0.1")
    history = json.loads((tmp_path / "v" / "run" / "history.json").read_text())
    assert len(hashes) == 1 and len(history) == 1 and 0 < history[0]["step"] < 100_000


def test_refuse_world_stops_a_recipe_that_is_not_data_parallel(monkeypatch):
    from melisma.errors import MelismaError
    from melisma.training.distributed import refuse_world

    refuse_world("a one-process recipe")  # one process: nothing to refuse
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets
    with pytest.raises(MelismaError, match="a one-process recipe trains on one process, not data-parallel"):
        refuse_world("a one-process recipe")


@pytest.mark.parametrize("stage", ["oneshot", "separator"])
def test_one_process_recipes_refuse_a_torchrun_launch_before_any_work(stage, monkeypatch, tmp_path, capsys):
    from corpus_standins import trainable_copy

    from melisma.cli import main

    corpus = trainable_copy(tmp_path / "corpus")
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = {"oneshot": [str(corpus), "--run", str(tmp_path / "run")],
            "separator": ["--corpus", str(corpus), "--run", str(tmp_path / "run")]}[stage]
    assert main(["foundation", stage, *argv]) == 2
    assert "not data-parallel" in capsys.readouterr().err and not (tmp_path / "run").exists()
