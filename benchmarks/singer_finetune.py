"""Fine-tuning speed: train one voice from the shipped base singer model on this CPU, report wall time.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/singer_finetune.py DATASET_DIR --max-minutes 20 \
        [--teacher-steps 1200 --distill-steps 600]

Target: <= 20 min from the base model on <= 10 min of one voice. Writes data/benchmarks/singer_finetune.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--run", type=Path, default=Path("data/singer-finetune/voice.melisma"))
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--teacher-steps", type=int, default=1200)
    ap.add_argument("--distill-steps", type=int, default=600)
    ap.add_argument("--out", default="data/benchmarks/singer_finetune.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.singer.voicepack import load_pack
    from melisma.training.singer import BASE_MODEL, TrainConfig, train_voice

    base = load_pack(BASE_MODEL)  # the fine-tune needs the base model and its content encoder
    cfg = replace(TrainConfig(), teacher_steps=args.teacher_steps, distill_steps=args.distill_steps,
                  max_minutes=args.max_minutes)
    t0 = time.perf_counter()
    path = train_voice([(args.dataset.name, args.dataset)], args.run, cfg, content=base.content_encoder,
                       restart=True)
    wall = time.perf_counter() - t0
    pack = load_pack(path)
    res = {"wall_minutes": wall / 60, "audio_minutes": pack.info.get("trained_seconds_of_audio", 0) / 60,
           "from_base": pack.info.get("from_base"), "pack_mb": path.stat().st_size / 1e6}
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
