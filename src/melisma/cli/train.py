"""``melisma train DATASET... -o VOICE_FILE``: learn a voice pack (teacher, then one-step student)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a voice pack from one or more datasets (one singer each)",
                       description="Train a voice pack. Interrupt any time; the same command resumes.")
    p.add_argument("datasets", nargs="+", metavar="DATASET_DIR",
                   help="dataset folder (melisma prepare output or a folder of audio); NAME=DIR names the singer")
    p.add_argument("-o", "--output", required=True, metavar="VOICE_FILE", help="voice pack to write (.melisma)")
    p.add_argument("--from-scratch", action="store_true", help="do not start from the shipped base model")
    p.add_argument("--restart", action="store_true", help="discard the checkpoint of an earlier run")
    p.add_argument("--teacher-steps", type=int, default=None, help="EDM teacher updates (default 5000)")
    p.add_argument("--distill-steps", type=int, default=None, help="consistency distillation updates (default 2500)")
    p.add_argument("--batch-size", type=int, default=None, help="segments per update (default 8)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this many minutes of wall time, feature extraction included, and write the pack "
                        "(0: no limit)")
    p.add_argument("--f0", default="dio", help="pitch extractor (dio, harvest, fcpe, crepe)")
    p.add_argument("--content", default=None,
                   help="content encoder: builtin (learned, v1), phonetic (v2, phone-supervised; with "
                        "--from-scratch until a base model on it ships) or dsp-cepstral-v1 (weight-free); default: "
                        "the one the base model expects")
    p.add_argument("--no-teacher", action="store_true", help="leave the teacher out of the pack (smaller)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from melisma.errors import MelismaError
    from melisma.training.singer import TrainConfig, train_voice
    from melisma.training.singer_data import parse_dataset_arg

    cfg = replace(TrainConfig(), max_minutes=args.max_minutes, seed=args.seed, from_scratch=args.from_scratch)
    for name, field, low in (("--teacher-steps", "teacher_steps", 0), ("--distill-steps", "distill_steps", 0),
                             ("--batch-size", "batch_size", 1)):
        value = getattr(args, field)
        if value is not None:
            if value < low:
                raise MelismaError(f"{name} {value}: must be positive")
            cfg = replace(cfg, **{field: value})
    datasets = [parse_dataset_arg(d) for d in args.datasets]
    try:
        train_voice(datasets, args.output, cfg, restart=args.restart, f0_method=args.f0,
                    keep_teacher=not args.no_teacher, content=args.content)
    except KeyboardInterrupt:
        return 130
    return 0
