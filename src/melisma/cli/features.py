"""``melisma features``: fill a dataset's feature cache, or print / save the F0 of one file.

    melisma features DATASET_DIR [--f0 METHOD] [--content NAME] [--cache-dir DIR]   what `melisma train` reads
    melisma features pitch FILE [--f0 METHOD] [--out F0.npy|.csv]   the model's F0 of one file (stdout: time, Hz)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from melisma.errors import MelismaError

METHOD_CHOICES = ("dio", "harvest", "fcpe", "crepe", "crepe-tiny", "crepe-full")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="extract the features `melisma train` uses (cached per clip), or the F0 of one file",
        description="Fill DATASET_DIR/cache with the per-clip features `melisma train` reads (F0, loudness, "
        "log-mel and content with its pitch-shift variants, on one 86.13 fps grid), reusing entries whose "
        "audio and settings are unchanged.  'melisma features pitch FILE' prints or saves the F0 the model "
        "would be given instead.",
    )
    p.add_argument("target", nargs="+", metavar="DATASET_DIR | pitch FILE", help="a dataset folder, or 'pitch FILE'")
    p.add_argument("--f0", default="dio", choices=METHOD_CHOICES, help="pitch method (default: dio)")
    p.add_argument("--content", default=None,
                   help="content encoder, as for `melisma train` (default: the one the base model expects)")
    p.add_argument("--cache-dir", type=Path, help="where feature files go (default: DATASET_DIR/cache)")
    p.add_argument("--median", type=int, default=None, help="pitch mode: F0 median filter in frames (default 3)")
    p.add_argument("--threshold", type=float, help="pitch mode: voicing confidence threshold for fcpe / crepe")
    p.add_argument("--out", type=Path, help="pitch mode: write F0 to .npy (T,) Hz or .csv (time_s,f0_hz)")
    p.set_defaults(func=run)


def _pitch_opts(args: argparse.Namespace) -> dict:
    opts: dict = {} if args.median is None else {"median": args.median}
    if args.threshold is not None:
        if args.f0 in ("dio", "harvest"):
            raise MelismaError(f"--threshold applies to fcpe and crepe, not {args.f0}")
        opts["threshold"] = args.threshold
    return opts


def run(args: argparse.Namespace) -> int:
    if args.target[0] == "pitch":
        if len(args.target) != 2:
            raise MelismaError("usage: melisma features pitch FILE [--f0 METHOD] [--out F0.npy|.csv]")
        return _run_pitch(Path(args.target[1]), args)
    if len(args.target) != 1:
        raise MelismaError("give one DATASET_DIR (or 'pitch FILE')")
    return _run_dataset(Path(args.target[0]), args)


def _run_pitch(path: Path, args: argparse.Namespace) -> int:
    import numpy as np

    from melisma.audio.constants import FRAME_RATE
    from melisma.audio.io import load_audio
    from melisma.features.pitch import grid_times, model_pitch

    if args.out is not None and args.out.suffix.lower() not in (".npy", ".csv"):
        raise MelismaError(f"--out must end in .npy or .csv, got {args.out.name}")
    extractor = model_pitch(args.f0, **_pitch_opts(args))
    audio, sr = load_audio(path, None)
    f0 = extractor.extract(audio, sr)
    times = grid_times(f0.size)
    if args.out is None:
        print("time_s,f0_hz")
        for t, f in zip(times, f0, strict=True):
            print(f"{t:.4f},{f:.2f}")
        return 0
    _save_f0(args.out, times, f0)
    from melisma.progress import say

    voiced = f0[f0 > 0]
    median = f"median {np.median(voiced):.1f} Hz" if voiced.size else "no voiced frame"
    say(f"{args.out}: {f0.size} frames at {FRAME_RATE:.2f} fps, {100 * voiced.size / f0.size:.0f}% voiced, {median}")
    return 0


def _save_f0(out: Path, times, f0) -> None:
    """Write atomically: .npy holds the (T,) float32 Hz array, .csv two columns with a header."""
    import numpy as np

    from melisma.atomic import atomic_path

    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        if out.suffix.lower() == ".npy":
            np.save(f, f0.astype(np.float32))
        else:
            np.savetxt(f, np.stack([times, f0], 1), fmt=["%.4f", "%.2f"], delimiter=",",
                       header="time_s,f0_hz", comments="")


def _run_dataset(root: Path, args: argparse.Namespace) -> int:
    from melisma.features.cache import FeatureCache
    from melisma.progress import say
    from melisma.training.singer import training_features
    from melisma.training.singer_data import dataset_cache, dataset_features, list_clips

    if not root.is_dir():
        raise MelismaError(f"{root}: not a folder (expected a dataset folder, or 'pitch FILE')")
    if args.median is not None or args.threshold is not None or args.out is not None:
        raise MelismaError("--median, --threshold and --out apply to 'melisma features pitch FILE'")
    clips = list_clips(root)  # fails, with nothing written, when the folder holds no audio
    extractor = training_features(args.content, args.f0)
    cache = FeatureCache(args.cache_dir, extractor) if args.cache_dir else dataset_cache(root, extractor)
    for _ in dataset_features(root, cache, label=f"features ({args.f0})"):
        pass
    say(f"{len(clips)} clips: {cache.misses} computed, {cache.hits} reused; features in {cache.cache_dir}")
    return 0
