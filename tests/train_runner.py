"""A tiny ``train_voice`` run as its own process (for kill -9 and torchrun tests):

    python tests/train_runner.py DATASET OUTPUT '{"teacher_steps": 40, ...}'

Stand-in encoder and vocoder, TINY model, one thread, so a run is seconds and repeatable bit for bit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from singer_standins import TINY, StandInEncoder, StandInVocoder

from melisma.training import singer as training
from melisma.training.singer import TrainConfig, train_voice


def config(overrides: str) -> TrainConfig:
    settings = {"batch_size": 4, "segment_frames": 16, "pitch_shifts": [2.0], "log_every": 1, "val_every": 10,
                "checkpoint_every": 5, "patience": 100, "from_scratch": True, **json.loads(overrides)}
    settings["pitch_shifts"] = tuple(settings["pitch_shifts"])
    return TrainConfig(**settings, model=TINY)


def train(dataset: str | Path, output: str | Path, overrides: str) -> Path:
    torch.set_num_threads(1)
    return train_voice([("alto", Path(dataset))], output, config(overrides), content_encoder=StandInEncoder(),
                       vocoder=StandInVocoder())


def main(dataset: str, output: str, overrides: str) -> None:
    training.Trainer._audio_metrics = lambda self, *a: {}  # no speaker-similarity judge: seconds per run saved
    train(dataset, output, overrides)


if __name__ == "__main__":
    main(*sys.argv[1:4])
