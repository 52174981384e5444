"""``melisma prepare SONG_OR_DIR... -o DATASET_DIR``: raw songs -> a checked, sliced training set."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="turn songs into a training set (separate, slice, check, normalise)",
        description="Decode songs (wav/flac/ogg/mp3, any rate and channel count), separate the vocal, slice it "
        "on silence into 2-30 s clips, check their quality and write DATASET_DIR/clips, rejected/, "
        "manifest.json and report.txt.",
    )
    p.add_argument("inputs", nargs="+", metavar="SONG_OR_DIR", help="audio files or folders of them")
    p.add_argument("-o", "--output", required=True, metavar="DATASET_DIR", help="dataset folder to create")
    p.add_argument("--separate", default="auto", choices=("auto", "none", "learned", "dsp", "demucs"),
                   help="vocal separation: auto = demucs if installed with weights, else the learned separator "
                        "melisma ships, else dsp; none = inputs are dry vocals (default: auto)")
    p.add_argument("--threshold-db", type=float, default=-40.0,
                   help="silence threshold in dB below a -20 dBFS loud level (default -40)")
    p.add_argument("--min-length", type=float, default=5.0, help="merge clips shorter than this, s (default 5)")
    p.add_argument("--max-length", type=float, default=30.0, help="split clips longer than this, s (default 30)")
    p.add_argument("--strict", action="store_true", help="also set aside clips flagged for leakage")
    p.add_argument("--force", action="store_true", help="replace DATASET_DIR if it exists and is not empty")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.errors import MelismaError
    from melisma.prepare.pipeline import PrepareSettings, prepare_dataset
    from melisma.prepare.slicer import SliceSettings
    from melisma.progress import say

    if not 2.0 <= args.max_length <= 600.0 or not 0.0 <= args.min_length <= args.max_length:
        raise MelismaError("--max-length must be 2-600 s and --min-length between 0 and --max-length")
    slicing = SliceSettings(threshold_db=args.threshold_db, min_length_s=args.min_length,
                            max_length_s=args.max_length)
    settings = PrepareSettings(separate=args.separate, slicing=slicing, strict=args.strict)
    ds = prepare_dataset(args.inputs, args.output, settings, force=args.force)
    for source in ds.sources:
        if source.status == "skipped":
            say(f"skipped {source.reason}")
        elif source.leakage_db is not None:
            say(f"{source.path}: estimated vocal leakage {source.leakage_db:.1f} dB (lower is cleaner)")
    t = ds.totals()
    print(f"{args.output}: {t['clips_kept']} clips, {t['usable_minutes']:.2f} usable minutes; "
          f"{t['clips_rejected']} set aside, {t['sources_skipped']} inputs skipped (see report.txt)")
    return 0
