"""``melisma foundation ...``: rebuild the models melisma ships (each a sub-command).

    melisma foundation vocoder --corpus data/corpus-train --heldout data/corpus-heldout -o runs/vocoder
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("foundation", help="rebuild the shipped foundation models from a corpus (CPU)",
                       description="Rebuild a model melisma ships, from scratch, on the CPU.")
    stages = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    _register_vocoder(stages)


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
    import torch

    from melisma.errors import MelismaError
    from melisma.progress import say
    from melisma.training.vocoder import train_vocoder
    from melisma.vocoder.builtin import load_builtin, save_builtin

    if args.steps < 1 or args.batch_size < 1 or args.lr <= 0:
        raise MelismaError("--steps, --batch-size and --lr must be positive")
    torch.set_num_threads(max(1, args.threads))
    best = train_vocoder(args.corpus, args.output, steps=args.steps, heldout_dirs=args.heldout,
                         batch=args.batch_size, lr=args.lr, init=args.init,
                         max_seconds=args.max_minutes * 60 if args.max_minutes > 0 else None, log=say)
    from pathlib import Path

    from safetensors import safe_open

    with safe_open(str(best), framework="pt") as fh:
        meta = {k: v for k, v in (fh.metadata() or {}).items() if k in ("steps", "train_seconds", "val_mel_l1")}
    shipped = Path(args.output) / "vocoder-builtin.safetensors"
    save_builtin(load_builtin(best), shipped, meta, half=True)
    say(f"wrote {shipped}")
    return 0
