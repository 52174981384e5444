"""A foundation recipe (``melisma foundation content|vocoder ...``) as its own process, tiny and one thread, for
the torchrun tests:

    python tests/recipe_runner.py HASH_DIR foundation vocoder --corpus C -o OUT --steps 40 --batch-size 4

Runs the CLI with smaller networks (vocoder hidden 32 x 1 block; content crops of 48 frames, batch 4) and writes
HASH_DIR/rank<RANK>.sha256: the hash of the weights this process ends with (every process, not only rank 0).
With FIXED_CLOCK=1 in the environment the content recipe's clock stands still (its learning rate then depends
on the step alone, so a run can be recomputed exactly)."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch

from melisma.cli import main
from melisma.training import content, vocoder
from melisma.vocoder.builtin import BuiltinConfig

TINY_VOCODER = BuiltinConfig(hidden=32, n_blocks=1)
TINY_CONTENT = {"batch": 4, "crop_frames": 48, "nce_frames": 64, "log_every": 5}
CONTENT_CONFIG = content.TrainConfig
TRAINED: list[torch.nn.Module] = []  # the network each recipe built in this process


class TinyVocoder(vocoder.BuiltinVocoder):
    def __init__(self, cfg: BuiltinConfig | None = None) -> None:
        super().__init__(cfg or TINY_VOCODER)
        TRAINED.append(self)


class RecordedContentTrainer(content.ContentTrainer):
    def __init__(self, enc_cfg: content.BuiltinConfig | None = None) -> None:
        super().__init__(enc_cfg)
        TRAINED.append(self.encoder)


def tiny_content_config(**settings: object) -> content.TrainConfig:
    return replace(CONTENT_CONFIG(), **{**TINY_CONTENT, **settings})  # type: ignore[arg-type]


def weights_hash(net: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        digest.update(name.encode() + t.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run(hash_dir: str, argv: list[str]) -> int:
    torch.set_num_threads(1)
    vocoder.BuiltinVocoder = TinyVocoder  # type: ignore[misc]
    content.ContentTrainer = RecordedContentTrainer  # type: ignore[misc]
    content.TrainConfig = tiny_content_config  # type: ignore[misc,assignment]
    if os.environ.get("FIXED_CLOCK") == "1":
        content.time = SimpleNamespace(time=lambda: 0.0)  # type: ignore[assignment]
    code = main(argv)
    if TRAINED:
        rank = os.environ.get("RANK", "0")
        (Path(hash_dir) / f"rank{rank}.sha256").write_text(weights_hash(TRAINED[-1]))
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
