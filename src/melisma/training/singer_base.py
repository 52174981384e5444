"""The base multi-singer model: every voice of an offline corpus becomes one singer of one pack.

Its singers are melisma's built-in voices, and ``melisma train`` fine-tunes new voices from it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from melisma.atomic import copy_atomic
from melisma.corpus import trainable_clips
from melisma.errors import MelismaError
from melisma.paths import ASSETS
from melisma.training.distributed import is_main_process
from melisma.training.singer import TrainConfig, train_voice


def train_base(corpus: str | Path, run_dir: str | Path, cfg: TrainConfig | None = None,
               content: str = "builtin", ship: str | Path | None = None) -> Path:
    """Train (or resume) the base pack on the voices of ``corpus`` into ``run_dir/base.melisma``; each voice's
    folder of audio (``corpus/audio/<voice slug>/``) is one singer, named after the folder.

    Raises MelismaError before training when ``corpus`` is not a corpus, holds a held-out voice or fewer than
    two voices. ``ship``: also write the pack to this path, atomically (never into the installed package: a
    release replaces ``melisma/assets/models/singer-base.melisma`` in the source tree by hand, see its model card).
    """
    if ship is not None:
        check_ship_path(ship)
    folders = sorted({c.voice_dir for c in trainable_clips([corpus])})
    if len(folders) < 2:
        raise MelismaError(f"{corpus}: a base model needs at least two voices, found {len(folders)}")
    cfg = replace(cfg or TrainConfig(), from_scratch=True)
    # the features are cached in the run folder: a recipe writes nothing into its corpus
    base = train_voice([(p.name, p) for p in folders], Path(run_dir) / "base.melisma", cfg, content=content,
                       feature_cache=Path(run_dir) / "features")
    if ship is not None and is_main_process():  # under torchrun, rank 0 alone wrote the pack and ships it
        copy_atomic(base, ship)
    return base


def check_ship_path(path: str | Path) -> None:
    """MelismaError when ``path`` lies inside the installed package's assets (no command writes there)."""
    if Path(path).resolve().is_relative_to(ASSETS.resolve()):
        raise MelismaError(f"{path}: inside the installed melisma package; name a path outside it")
