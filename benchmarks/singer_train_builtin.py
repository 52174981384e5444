"""Train the base multi-singer model on the offline corpus and cut the built-in voices out of it.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/singer_train_builtin.py data/corpus-starter \
        --run data/singer-run --max-minutes 35 --voices festival-slt kokoro-jm_kumo piper-joe kokoro-jf_alpha

Every folder of CORPUS/audio/ is one singer. Writes RUN/base.melisma (teacher + student, all singers),
then src/melisma/assets/models/singer-base.melisma and one student-only pack per --voices name in
src/melisma/assets/voices/. Interrupt and re-run to resume.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

import torch

ASSETS = Path(__file__).resolve().parent.parent / "src" / "melisma" / "assets"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--run", type=Path, default=Path("data/singer-run"))
    ap.add_argument("--max-minutes", type=float, default=35.0)
    ap.add_argument("--teacher-steps", type=int, default=3000)
    ap.add_argument("--distill-steps", type=int, default=1500)
    ap.add_argument("--voices", nargs="*", default=["festival-slt", "kokoro-jm_kumo", "piper-joe"])
    ap.add_argument("--content", default="builtin", help="builtin, or dsp-cepstral-v1 when none is shipped")
    ap.add_argument("--no-ship", action="store_true", help="do not copy the results into the package assets")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.singer.voicepack import load_pack, save_pack, select_singers
    from melisma.training.singer import TrainConfig, train_voice

    folders = sorted(p for p in (args.corpus / "audio").iterdir() if p.is_dir())
    cfg = replace(TrainConfig(), teacher_steps=args.teacher_steps, distill_steps=args.distill_steps,
                  max_minutes=args.max_minutes, from_scratch=True, val_every=200, checkpoint_every=50)
    base = train_voice([(p.name, p) for p in folders], args.run / "base.melisma", cfg, content=args.content)
    if args.no_ship:
        return
    (ASSETS / "models").mkdir(parents=True, exist_ok=True)
    (ASSETS / "voices").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, ASSETS / "models" / "singer-base.melisma")
    pack = load_pack(base)
    for name in args.voices:
        save_pack(select_singers(pack, [name]), ASSETS / "voices" / f"{name}.melisma")
        print(f"built-in voice {name}")


if __name__ == "__main__":
    main()
