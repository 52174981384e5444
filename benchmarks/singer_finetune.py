"""Fine-tuning speed: train one voice from the shipped base singer model on this CPU, report wall time.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/singer_finetune.py DATASET_DIR --max-minutes 20 \
        [--teacher-steps 5000 --distill-steps 2500] [--avoid-texts-of data/corpus-heldout]

DATASET_DIR is a dataset folder or a melisma corpus; with --avoid-texts-of, the corpus clips whose text also
occurs in that (held-out) corpus are left out, so the benchmark's references are unseen text and melody.

Target: <= 20 min from the base model on <= 10 min of one voice. Writes data/benchmarks/singer_finetune.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from melisma.atomic import write_text_atomic
from melisma.corpus import load_corpus


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--run", type=Path, default=Path("data/singer-finetune/voice.melisma"))
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--teacher-steps", type=int, default=None, help="default: TrainConfig's (5000)")
    ap.add_argument("--distill-steps", type=int, default=None, help="default: TrainConfig's (2500)")
    ap.add_argument("--out", default="data/benchmarks/singer_finetune.json")
    ap.add_argument("--pitch-shifts", type=float, nargs="*", default=None,
                    help="semitones of the input-side content variants (default: TrainConfig's)")
    ap.add_argument("--one-step-weight", type=float, default=None,
                    help="weight of the student's one-step L1 to the true mel (default: TrainConfig's)")
    ap.add_argument("--teacher-lr", type=float, default=None, help="teacher learning rate (default: TrainConfig's)")
    ap.add_argument("--teacher-ema", type=float, default=None,
                    help="decay of the teacher's weight average that is shipped (default: TrainConfig's)")
    ap.add_argument("--sigma-data", type=float, default=None,
                    help="EDM sigma_data of the fine-tune (default: TrainConfig's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--f0", default="dio", help="pitch extractor of the training features (default dio)")
    ap.add_argument("--avoid-texts-of", type=Path, help="held-out corpus whose texts the training must not see")
    args = ap.parse_args()
    dataset = _without_texts_of(args.dataset, args.avoid_texts_of, args.run.parent) if args.avoid_texts_of \
        else args.dataset
    torch.set_num_threads(args.threads)
    from melisma.singer.voicepack import load_pack
    from melisma.training.singer import BASE_MODEL, TrainConfig, train_voice

    base = load_pack(BASE_MODEL)  # the fine-tune needs the base model and its content encoder
    # command-line option -> TrainConfig field; options left out keep TrainConfig's defaults
    fields = {"teacher_steps": "teacher_steps", "distill_steps": "distill_steps",
              "one_step_weight": "one_step_weight", "teacher_lr": "teacher_lr", "teacher_ema": "teacher_ema_decay",
              "sigma_data": "sigma_data", "pitch_shifts": "pitch_shifts"}
    given = {field: getattr(args, opt) for opt, field in fields.items() if getattr(args, opt) is not None}
    if "pitch_shifts" in given:
        given["pitch_shifts"] = tuple(given["pitch_shifts"])
    cfg = replace(TrainConfig(), max_minutes=args.max_minutes, **given)
    t0 = time.perf_counter()
    path = train_voice([(args.dataset.name, dataset)], args.run, cfg, content=base.content_encoder,
                       restart=True, f0_method=args.f0)
    wall = time.perf_counter() - t0
    pack = load_pack(path)
    res = {"wall_minutes": wall / 60, "audio_minutes": pack.info.get("trained_seconds_of_audio", 0) / 60,
           "from_base": pack.info.get("from_base"), "pack_mb": path.stat().st_size / 1e6,
           "teacher_steps": cfg.teacher_steps, "distill_steps": cfg.distill_steps,
           "pitch_shifts": list(cfg.pitch_shifts), "one_step_weight": cfg.one_step_weight,
           "sigma_data": pack.config.sigma_data, "teacher_lr": cfg.teacher_lr, "teacher_ema_decay": cfg.teacher_ema_decay,
           "threads": args.threads, "f0": args.f0, "last_log": _last_steps(path)}
    print(json.dumps(res, indent=1))
    write_text_atomic(args.out, json.dumps(res, indent=1))


def _last_steps(pack: Path) -> dict:
    """The phase and step of the last log line of each phase (how far each got within the time limit)."""
    log = pack.with_name(pack.name + ".work") / "log.jsonl"
    last: dict = {}
    for line in log.read_text().splitlines() if log.is_file() else []:
        row = json.loads(line)
        last[row["phase"]] = row["step"]
    return last


def _without_texts_of(corpus: Path, heldout: Path, work: Path) -> Path:
    """A folder of links to the clips of ``corpus`` whose text is not in ``heldout``."""
    seen = {c.text for c in load_corpus(heldout)}
    clips = [c for c in load_corpus(corpus) if c.text not in seen]
    folder = work / f"{corpus.name}-unseen-texts"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_symlink():  # the links of an earlier run; its feature cache (folder/cache) stays
            old.unlink()
    for c in clips:
        (folder / c.audio_path.name).symlink_to(c.audio_path)
    print(f"{len(clips)} clips of {corpus} with texts not in {heldout}: "
          f"{sum(c.duration for c in clips) / 60:.2f} min")
    return folder


if __name__ == "__main__":
    main()
