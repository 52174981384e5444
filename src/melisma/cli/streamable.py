"""``melisma streamable VOICE -o OUT.melisma-stream --audio CLIPS``: make a voice pack (or a one-shot reference)
streamable, by distilling its singer model into a causal decoder for the live engine."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("streamable", help="make a voice pack or a one-shot reference streamable (live, stream)",
                       description="Convert --audio clips offline with VOICE (a pack, a built-in voice, or with "
                                   "--reference a one-shot voice) and distil a causal decoder that the live "
                                   "engine runs on its streaming content and vocoder networks. Any singing or "
                                   "speech works as --audio (e.g. your dataset's clips or a melisma corpus); "
                                   "more voices and more minutes make a better student.")
    p.add_argument("voice", nargs="?", default=None, help="voice pack file or built-in voice name")
    p.add_argument("--reference", nargs="+", default=None, metavar="REF",
                   help="reference clips of a one-shot voice instead of a voice pack")
    p.add_argument("-o", "--output", required=True, help="the streamable voice file (.melisma-stream)")
    p.add_argument("--audio", nargs="+", required=True, metavar="PATH",
                   help="audio files or folders to convert as training sources")
    p.add_argument("--minutes", type=float, default=8.0, help="training time (default 8)")
    p.add_argument("--max-clips", type=int, default=400, help="use at most this many source clips")
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from melisma import paths
    from melisma.atomic import check_output_file
    from melisma.audio.constants import SAMPLE_RATE
    from melisma.audio.io import audio_files_below, load_audio
    from melisma.errors import MelismaError
    from melisma.live.weights import STREAM_SUFFIX, load_stream_net
    from melisma.progress import say
    from melisma.training.streaming import distill_voice

    out = Path(args.output)
    if out.suffix != STREAM_SUFFIX:
        raise MelismaError(f"the output must end in {STREAM_SUFFIX}: {out}")
    if (args.voice is None) == (args.reference is None):
        raise MelismaError("give a VOICE or --reference clips (one of them)")
    if args.minutes <= 0:
        raise MelismaError("--minutes must be positive")
    check_output_file(out)
    torch.set_num_threads(1)
    files: list[Path] = []
    for item in args.audio:
        p = Path(item)
        if not p.exists():
            raise MelismaError(f"--audio {p}: no such file or folder")
        files += audio_files_below(p) if p.is_dir() else [p]
    if not files:
        raise MelismaError("--audio holds no audio files")
    order = np.random.default_rng(args.seed).permutation(len(files))[: args.max_clips]
    sources = [load_audio(files[i], SAMPLE_RATE)[0][: 20 * SAMPLE_RATE] for i in order]
    from melisma.singer.convert import Voice

    voice: Voice
    source: dict[str, object]
    if args.reference:
        from melisma.oneshot import reference_voice

        voice = reference_voice(args.reference)
        source = {"reference": [Path(r).name for r in args.reference]}
    else:
        from melisma.singer.convert import load_voice

        voice = load_voice(args.voice)
        source = {"voice": str(args.voice)}
    content = load_stream_net(paths.STREAM_CONTENT_WEIGHTS, "content").net
    vocoder = load_stream_net(paths.STREAM_VOCODER_WEIGHTS, "vocoder").net
    singers = [voice.default_singer] if voice.default_singer else voice.singers  # a named singer: that one
    summary = distill_voice(voice, sources, out, content, vocoder, minutes=args.minutes, seed=args.seed,
                            max_steps=args.max_steps, source_info=source, singers=singers, log=say)
    say(f"wrote {out} ({summary['steps']} steps, validation L1 {summary['best_val_l1']:.4f})")
    return 0
