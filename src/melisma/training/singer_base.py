"""The base multi-singer model: every voice of an offline corpus becomes one singer of one pack.

Its singers are melisma's built-in voices, and ``melisma train`` fine-tunes new voices from it.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from melisma.atomic import atomic_path
from melisma.corpus import trainable_clips
from melisma.errors import MelismaError
from melisma.training.singer import BASE_MODEL, TrainConfig, train_voice


def train_base(corpus: str | Path, run_dir: str | Path, cfg: TrainConfig | None = None,
               content: str = "builtin", ship: bool = False) -> Path:
    """Train (or resume) the base pack on the voices of ``corpus`` into ``run_dir/base.melisma``; each voice's
    folder of audio (``corpus/audio/<voice slug>/``) is one singer, named after the folder.

    Raises MelismaError before training when ``corpus`` is not a corpus, holds a held-out voice or fewer than
    two voices. ``ship`` copies the result over the packaged base model (``melisma/assets/models/singer-base.melisma``).
    """
    folders = sorted({c.voice_dir for c in trainable_clips([corpus])})
    if len(folders) < 2:
        raise MelismaError(f"{corpus}: a base model needs at least two voices, found {len(folders)}")
    cfg = replace(cfg or TrainConfig(), from_scratch=True)
    base = train_voice([(p.name, p) for p in folders], Path(run_dir) / "base.melisma", cfg, content=content)
    if ship:
        with atomic_path(BASE_MODEL) as tmp:
            shutil.copyfile(base, tmp)
    return base
