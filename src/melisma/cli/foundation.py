"""``melisma foundation ...``: rebuild the models melisma ships (each a sub-command).

    melisma foundation vocoder --corpus data/corpus-train --heldout data/vocoder-dev/heldout -o runs/vocoder
    melisma foundation content --corpus data/content-espeak data/corpus-starter -o runs/content.safetensors
    melisma foundation singer data/corpus-starter --run runs/singer-base --max-minutes 55 --ship base.melisma
    melisma foundation separator --corpus data/corpus-hours --run runs/separator --minutes 35
    melisma foundation oneshot data/corpus-hours --run runs/oneshot --max-minutes 35 --ship oneshot.safetensors

Corpora are melisma corpora (``melisma corpus build``); every recipe refuses one holding a held-out voice
(``melisma.corpus.heldout``). Each model card in ``melisma/assets/models/`` gives the exact command and data.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("foundation", help="rebuild the shipped foundation models from a corpus (CPU)",
                       description="Rebuild a model melisma ships, from scratch, on the CPU.")
    stages = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    _register_vocoder(stages)
    _register_content(stages)
    _register_singer(stages)
    _register_separator(stages)
    _register_oneshot(stages)
    _register_stream(stages)


def _register_vocoder(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser("vocoder", help="train the builtin source-filter vocoder (log-mel + F0 -> 44.1 kHz)",
                          description="Train the builtin vocoder on corpus folders (corpus.json + FLAC + F0). "
                                      "Writes OUT/best.safetensors, OUT/last.safetensors, OUT/history.json and "
                                      "OUT/vocoder-builtin.safetensors (float16, the file melisma ships).")
    p.add_argument("--corpus", nargs="+", required=True, metavar="DIR", help="training corpus folders")
    p.add_argument("--heldout", nargs="*", default=[], metavar="DIR", help="held-out corpus folders (validation)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--steps", type=int, default=12_000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long (0: no limit)")
    p.add_argument("--init", default=None, metavar="WEIGHTS", help="start from these builtin weights (fine-tune)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=run_vocoder)


def run_vocoder(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from melisma.errors import MelismaError
    from melisma.progress import say
    from melisma.training.distributed import is_main_process
    from melisma.training.vocoder import export_shipped, train_vocoder

    if args.steps < 1 or args.batch_size < 1 or args.lr <= 0:
        raise MelismaError("--steps, --batch-size and --lr must be positive")
    torch.set_num_threads(max(1, args.threads))
    best = train_vocoder(args.corpus, args.output, steps=args.steps, heldout_dirs=args.heldout,
                         batch=args.batch_size, lr=args.lr, init=args.init,
                         max_seconds=args.max_minutes * 60 if args.max_minutes > 0 else None, log=say)
    if is_main_process():  # under torchrun rank 0 alone writes
        say(f"wrote {export_shipped(best, Path(args.output) / 'vocoder-builtin.safetensors')}")
    return 0


def _register_content(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser("content", help="train the builtin content encoder (perturbation + VQ + InfoNCE)",
                          description="Train the builtin content encoder on corpus folders (corpus.json + audio); "
                                      "`melisma corpus build --espeak 48 --spoken` makes a quick one.")
    p.add_argument("--corpus", nargs="+", required=True, metavar="DIR", help="training corpus folders")
    p.add_argument("-o", "--output", required=True, metavar="WEIGHTS", help=".safetensors file to write")
    p.add_argument("--minutes", type=float, default=100.0, help="training time budget (default 100)")
    p.add_argument("--log", "--loss-log", dest="log", default=None, metavar="JSONL",
                   help="write the losses here (one line per 50 steps); under torchrun write --loss-log (torchrun "
                        "takes --log for its --log-dir)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--phonetic", type=float, nargs="?", const=1.0, default=0.0, metavar="WEIGHT",
                   help="phone supervision: frame phone labels from the corpus clips' phone timings through a "
                        "phone head, with this weight (default 1 when given; the 'phonetic' encoder)")
    p.add_argument("--ctc", type=float, default=0.0, metavar="WEIGHT",
                   help="CTC through the phone head on whole clips without timings (default off)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--init", default=None, metavar="WEIGHTS", help="start from these encoder weights")
    p.add_argument("--max-steps", type=int, default=100_000, help="stop after this many steps")
    p.set_defaults(func=run_content)


def run_content(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from melisma.errors import MelismaError
    from melisma.training.content import TrainConfig, train
    from melisma.training.distributed import is_main_process

    if args.minutes <= 0:
        raise MelismaError("--minutes must be positive")
    torch.set_num_threads(max(1, args.threads))
    if args.init and not Path(args.init).is_file():
        raise MelismaError(f"--init {args.init}: no such weights file")
    cfg = TrainConfig(minutes=args.minutes, phone_weight=args.phonetic, ctc_weight=args.ctc,
                      max_steps=args.max_steps, lr=args.lr)
    figures = train([Path(c) for c in args.corpus], Path(args.output), cfg, Path(args.log) if args.log else None,
                    Path(args.init) if args.init else None)
    if is_main_process():  # under torchrun one process speaks
        print(json.dumps(figures))
    return 0


def _register_singer(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser("singer", help="train the base multi-singer model (its singers are the built-in voices)",
                          description="Train the base singer model: every voice of CORPUS (its audio/<voice>/ "
                                      "folder) is a singer. "
                                      "Interrupt any time; the same command resumes.")
    p.add_argument("corpus", metavar="CORPUS")
    p.add_argument("--run-dir", "--run", dest="run", required=True, metavar="DIR",
                   help="run folder (DIR/base.melisma + checkpoints); under torchrun write --run-dir (torchrun "
                        "takes --run for its own --run-path)")
    p.add_argument("--teacher-steps", type=int, default=10_000)
    p.add_argument("--distill-steps", type=int, default=3_000)
    p.add_argument("--max-minutes", type=float, default=55.0, help="stop after this long and write the pack")
    p.add_argument("--content", default="builtin", help="content encoder the model is conditioned on")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--ship", default=None, metavar="PATH",
                   help="also write the finished pack to PATH (atomically; never into the installed package)")
    p.set_defaults(func=run_singer)


def run_singer(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from melisma.progress import say
    from melisma.training.singer import TrainConfig
    from melisma.training.singer_base import train_base

    torch.set_num_threads(max(1, args.threads))
    cfg = replace(TrainConfig(), teacher_steps=args.teacher_steps, distill_steps=args.distill_steps,
                  max_minutes=args.max_minutes, val_every=200, checkpoint_every=50)
    say(f"wrote {train_base(args.corpus, args.run, cfg, args.content, ship=args.ship)}")
    return 0


def _register_separator(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser("separator", help="train the learned vocal separator on songs it renders itself",
                          description="Make RUN/data (sung corpus clips over MIDI accompaniment rendered by "
                                      "fluidsynth; needs fluidsynth + fluid-soundfont-gm) unless it exists, then "
                                      "train the band-split separator on it. Interrupt any time; the same command "
                                      "resumes. Writes RUN/best.safetensors (the file melisma ships).")
    p.add_argument("--corpus", nargs="+", required=True, metavar="DIR", help="corpus folders with sung clips")
    p.add_argument("--run", required=True, metavar="DIR", help="run folder (data, checkpoints, history)")
    p.add_argument("--songs", type=int, default=240, help="songs to generate (default 240)")
    p.add_argument("--song-seconds", type=float, default=10.0, help="length of each song (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the songs and of training")
    p.add_argument("--minutes", type=float, default=35.0, help="training time budget (default 35)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--ship", default=None, metavar="PATH", help="also copy the best weights to PATH (atomically)")
    p.set_defaults(func=run_separator)


def run_separator(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from melisma.atomic import copy_atomic
    from melisma.errors import MelismaError
    from melisma.progress import say
    from melisma.training.separator import TrainConfig, foundation_separator

    if args.songs < 16 or args.song_seconds < 3 or args.minutes <= 0:
        raise MelismaError("--songs must be at least 16, --song-seconds at least 3 and --minutes positive")
    torch.set_num_threads(max(1, args.threads))
    cfg = replace(TrainConfig(), minutes=args.minutes, seed=args.seed)
    best = foundation_separator(args.corpus, args.run, args.songs, args.song_seconds, args.seed, cfg, log=say)
    if args.ship:
        say(f"wrote {copy_atomic(best, args.ship)}")
    say(f"best weights: {best}")
    return 0


def _register_oneshot(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser("oneshot", help="train the one-shot model (VQ-CPC content, speaker encoder, CLUB MI)",
                          description="Train the one-shot model (melisma.oneshot) on every voice of the corpora. "
                                      "Writes RUN/oneshot.safetensors, RUN/log.jsonl, RUN/checkpoint.safetensors "
                                      "and the feature cache RUN/features. Interrupt any time; the same command "
                                      "resumes.")
    p.add_argument("corpus", nargs="+", metavar="CORPUS", help="corpus folders (melisma corpus build)")
    p.add_argument("--run", required=True, metavar="DIR", help="run folder")
    p.add_argument("--teacher-steps", type=int, default=6000)
    p.add_argument("--distill-steps", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, default=35.0,
                   help="stop after this long and write the model (60%% teacher, 40%% distillation; 0: no limit)")
    for pair, what in (("cs", "content-speaker"), ("cp", "content-pitch"), ("ps", "speaker-pitch")):
        p.add_argument(f"--no-{pair}mi", dest=f"use_{pair}mi", action="store_false",
                       help=f"do not minimise the {what} mutual information (use_{pair}mi off)")
    p.add_argument("--mi-weight", type=float, default=0.01)
    p.add_argument("--from-scratch", action="store_true", help="do not start the decoder from the base singer model")
    p.add_argument("--content", default="builtin", help="content encoder the model is built on")
    p.add_argument("--restart", action="store_true", help="discard the run's checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--ship", default=None, metavar="PATH",
                   help="also write the model to PATH (atomically; never into the installed package)")
    p.set_defaults(func=run_oneshot)


def run_oneshot(args: argparse.Namespace) -> int:
    import torch

    from melisma.errors import MelismaError
    from melisma.progress import say
    from melisma.singer.convert import default_component
    from melisma.training.oneshot import OneShotTrainConfig, train_oneshot

    if args.teacher_steps < 1 or args.distill_steps < 0 or args.max_minutes < 0 or args.mi_weight < 0:
        raise MelismaError("--teacher-steps must be positive; --distill-steps, --max-minutes, --mi-weight >= 0")
    torch.set_num_threads(max(1, args.threads))
    cfg = OneShotTrainConfig(teacher_steps=args.teacher_steps, distill_steps=args.distill_steps,
                             max_minutes=args.max_minutes, use_csmi=args.use_csmi, use_cpmi=args.use_cpmi,
                             use_psmi=args.use_psmi, mi_weight=args.mi_weight, from_base=not args.from_scratch,
                             seed=args.seed)
    out = train_oneshot(args.corpus, args.run, cfg, content_encoder=default_component("content", args.content),
                        restart=args.restart, ship=args.ship)
    say(f"wrote {out}")
    return 0


def _register_stream(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser("stream", help="distil the streaming (live) networks: content, vocoder, base decoder",
                          description="Distil the causal networks of the live engine from the offline ones: "
                                      "the content network (from the builtin content encoder), the vocoder "
                                      "network (from the builtin vocoder) and the decoder of the base pack's "
                                      "singers. A network already in RUN is kept (re-run to go on).")
    p.add_argument("corpus", nargs="+", metavar="CORPUS")
    p.add_argument("--run", required=True, metavar="DIR", help="run folder (stream-*.safetensors + logs)")
    p.add_argument("--minutes", type=float, default=12.0, help="training minutes of each network")
    p.add_argument("--audio-minutes", type=float, default=30.0, help="minutes of corpus audio each one sees")
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=run_stream)


def run_stream(args: argparse.Namespace) -> int:
    import torch

    from melisma.errors import MelismaError
    from melisma.progress import say
    from melisma.training.streaming import foundation_stream

    if args.minutes <= 0 or args.audio_minutes <= 0:
        raise MelismaError("--minutes and --audio-minutes must be positive")
    torch.set_num_threads(max(1, args.threads))
    files = foundation_stream(args.corpus, args.run, args.minutes, args.audio_minutes, max_steps=args.max_steps,
                              log=say)
    say("wrote " + ", ".join(str(f) for f in files.values()))
    return 0
