"""The base multi-singer model: every voice folder of an offline corpus becomes one singer of one pack.

Its singers are melisma's built-in voices, and ``melisma train`` fine-tunes new voices from it.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from melisma.errors import MelismaError
from melisma.training.singer import BASE_MODEL, TrainConfig, train_voice


def train_base(corpus: str | Path, run_dir: str | Path, cfg: TrainConfig | None = None,
               content: str = "builtin", ship: bool = False) -> Path:
    """Train (or resume) the base pack on ``corpus/audio/<voice>/`` folders into ``run_dir/base.melisma``.

    ``ship`` copies the result over the packaged base model (``melisma/assets/models/singer-base.melisma``).
    """
    audio = Path(corpus) / "audio"
    if not audio.is_dir():
        raise MelismaError(f"{corpus}: not a melisma corpus (no audio/ folder of voices)")
    folders = sorted(p for p in audio.iterdir() if p.is_dir())
    if len(folders) < 2:
        raise MelismaError(f"{corpus}: a base model needs at least two voices, found {len(folders)}")
    cfg = replace(cfg or TrainConfig(), from_scratch=True)
    base = train_voice([(p.name, p) for p in folders], Path(run_dir) / "base.melisma", cfg, content=content)
    if ship:
        BASE_MODEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base, BASE_MODEL)
    return base
