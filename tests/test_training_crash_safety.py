"""Crash-safe training: kill -9 at a random moment and the same command ends with the same weights; checkpoints
on a time schedule; a full disk is a one-line error that keeps the last good checkpoint."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from singer_standins import TINY, StandInEncoder, StandInVocoder, write_dataset

from melisma.errors import MelismaError
from melisma.singer.voicepack import load_pack
from melisma.training import singer as training
from melisma.training.singer import TrainConfig, read_checkpoint_meta, train_voice

RUNNER = Path(__file__).with_name("train_runner.py")
RUN = {"teacher_steps": 40, "distill_steps": 30}


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "alto", 4)


def _train(dataset, out, **overrides):
    cmd = [sys.executable, str(RUNNER), str(dataset), str(out), json.dumps({**RUN, **overrides})]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _last_vals(work: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    return {r["phase"]: r["val_mel_l1"] for r in rows if "val_mel_l1" in r}


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_the_same_command_ends_with_the_same_pack(tmp_path, dataset, monkeypatch):
    import train_runner

    monkeypatch.setattr(training.Trainer, "_audio_metrics", lambda self, *a: {})
    reference = tmp_path / "ref.melisma"  # uninterrupted, in this process: the same settings, one thread
    train_runner.train(dataset, reference, json.dumps(RUN))
    out = tmp_path / "v.melisma"
    work = tmp_path / "v.melisma.work"
    ckpt = work / "checkpoint.safetensors"
    rng = random.Random(os.getpid())
    kills = []
    for _ in range(1):  # one kill at a random moment after the run has a checkpoint, well before its end
        proc = _train(dataset, out)
        target = rng.randint(8, RUN["teacher_steps"] + RUN["distill_steps"] // 2)  # updates done when killed
        deadline = time.monotonic() + 60
        while (not ckpt.exists() or _updates_logged(work) < target) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        meta = read_checkpoint_meta(ckpt)
        rows = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
        kills.append((meta["state"]["phase"], meta["state"]["step"], rows[-1]["phase"], rows[-1]["step"]))
    assert kills and not out.exists()
    proc = _train(dataset, out)
    assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    a, b = load_pack(reference), load_pack(out)
    for k, v in a.student.items():
        assert torch.equal(v, b.student[k]), k
    assert b.info["teacher_steps"] == RUN["teacher_steps"] and b.info["distill_steps"] == RUN["distill_steps"]
    assert _last_vals(work) == _last_vals(tmp_path / "ref.melisma.work")
    logged = [(r["phase"], r["step"], *sorted(r)) for r in map(json.loads, (work / "log.jsonl").read_text().splitlines())]
    assert len(logged) == len(set(logged))  # the rows the kill lost are logged once, by the resumed run
    print("kills (checkpoint phase, step, last logged phase, step):", kills, "final val", _last_vals(work))


def _updates_logged(work: Path) -> int:
    """Teacher + distillation updates the run has logged so far (the runner logs every update)."""
    try:
        rows = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    except (OSError, ValueError):  # not written yet, or caught between its atomic replacements
        return 0
    done = [r["step"] + (RUN["teacher_steps"] if r["phase"] == "distill" else 0) for r in rows if "step" in r and "phase" in r]
    return max(done, default=0)


def _cfg(**kw):
    base = dict(teacher_steps=8, distill_steps=0, batch_size=2, segment_frames=16, pitch_shifts=(), val_every=1000,
                checkpoint_every=1000, log_every=1000, from_scratch=True, model=TINY)
    return TrainConfig(**{**base, **kw})


def _kwargs():
    return {"content_encoder": StandInEncoder(), "vocoder": StandInVocoder()}


def test_checkpoints_follow_the_clock_as_well_as_the_step_count(tmp_path, dataset, monkeypatch):
    """A fake clock that advances one second per update: with checkpoint_minutes = 3 s and a step schedule that
    never fires, a checkpoint is written every 3 updates (and once at the end)."""
    torch.set_num_threads(1)
    clock = [0.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: clock[0])
    real_step, real_save = training.Trainer.train_step, training.Trainer.save_checkpoint
    saved = []

    def one_second(self):
        clock[0] += 1.0
        return real_step(self)

    monkeypatch.setattr(training.Trainer, "train_step", one_second)
    monkeypatch.setattr(training.Trainer, "save_checkpoint",
                        lambda self, path: saved.append(self.state.step) or real_save(self, path))
    train_voice([("alto", dataset)], tmp_path / "v.melisma", _cfg(checkpoint_minutes=3 / 60), **_kwargs())
    assert saved[:2] == [3, 6]


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, dataset, monkeypatch):
    """The second checkpoint write fills the disk: half a file is written, then ENOSPC."""
    import safetensors.torch

    torch.set_num_threads(1)
    real = safetensors.torch.save_file
    calls = []

    def full_disk(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            Path(filename).write_bytes(b"\x00" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    out = tmp_path / "v.melisma"
    with pytest.raises(MelismaError, match="No space left on device.*previous checkpoint is kept") as err:
        train_voice([("alto", dataset)], out, _cfg(checkpoint_every=3), **_kwargs())
    assert "\n" not in str(err.value) and not out.exists()
    work = tmp_path / "v.melisma.work"
    assert read_checkpoint_meta(work / "checkpoint.safetensors")["state"]["step"] == 3
    assert not list(work.glob(".*.tmp"))
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    train_voice([("alto", dataset)], out, _cfg(checkpoint_every=3), **_kwargs())  # the same command resumes
    assert load_pack(out).info["teacher_steps"] == 8


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vals(work: Path) -> list[tuple[str, int, float]]:
    rows = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    return [(r["phase"], r["step"], r["val_mel_l1"]) for r in rows if "val_mel_l1" in r]


@pytest.mark.slow
def test_two_gloo_processes_under_torchrun_train_like_one(tmp_path, dataset, monkeypatch):
    """The same run as one process and as two torchrun processes on loopback (gloo), each drawing half of the
    batch: the validation curves agree within 2 %, and the pack says two processes trained it."""
    import train_runner

    monkeypatch.setattr(training.Trainer, "_audio_metrics", lambda self, *a: {})
    single = tmp_path / "one.melisma"
    train_runner.train(dataset, single, json.dumps(RUN))
    ddp = tmp_path / "two.melisma"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(RUNNER), str(dataset), str(ddp),
           json.dumps(RUN)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[:4000] + "\n...\n" + done.stderr[-1500:]
    a, b = _vals(tmp_path / "one.melisma.work"), _vals(tmp_path / "two.melisma.work")
    assert [x[:2] for x in a] == [x[:2] for x in b]
    for (phase, step, one), (_, _, two) in zip(a, b, strict=True):
        assert two == pytest.approx(one, rel=0.02), (phase, step)
    pack = load_pack(ddp)
    assert pack.info["processes"] == 2 and pack.info["teacher_steps"] == RUN["teacher_steps"]
    print("validation one process:", a, "two processes:", b)
