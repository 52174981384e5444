"""``melisma stream INPUT -v VOICE -o OUTPUT --block-ms N [--realtime]``: the live engine over a file, block by
block exactly as live, with its latency and per-block compute reported."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="convert a file block by block with the live engine and report its timing",
                       description="Run the streaming engine over INPUT as it would run live: blocks of "
                                   "--block-ms, each converted with only what came before it (and the fixed "
                                   "look-ahead); prints the algorithmic latency, per-block compute (median, p99, "
                                   "max) and the blocks that missed their deadline.")
    p.add_argument("input", help="audio file (any rate; converted at 44.1 kHz)")
    p.add_argument("-v", "--voice", required=True,
                   help="a built-in voice name or a .melisma-stream file (see melisma streamable)")
    p.add_argument("-o", "--output", required=True, help="output audio file (44.1 kHz)")
    p.add_argument("--block-ms", type=float, default=20.0, help="block length in milliseconds (default 20)")
    p.add_argument("--realtime", action="store_true", help="hand blocks over at the pace of a sound card")
    p.add_argument("--transpose", type=float, default=0.0, help="semitones")
    p.add_argument("--singer", default=None, help="a singer of the voice or a mix a:0.6,b:0.4")
    p.add_argument("--keep-latency", action="store_true",
                   help="write the output as a listener hears it, delayed by the engine (default: aligned)")
    p.add_argument("--report", default=None, metavar="JSON", help="also write the figures as JSON")
    p.set_defaults(func=run)


def block_samples(block_ms: float, sample_rate: int) -> int:
    """--block-ms -> samples; MelismaError outside 1 .. 1000 ms."""
    from melisma.errors import MelismaError

    if not 1.0 <= block_ms <= 1000.0:
        raise MelismaError(f"--block-ms must be 1 .. 1000, not {block_ms:g}")
    return max(1, round(block_ms * sample_rate / 1000.0))


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from melisma.atomic import check_output_file, write_text_atomic
    from melisma.audio.constants import SAMPLE_RATE
    from melisma.audio.io import check_output_rate, load_audio, save_audio
    from melisma.live.engine import open_stream_voice
    from melisma.live.simulate import run_stream
    from melisma.progress import say

    torch.set_num_threads(1)  # a live engine has one core of its own, not the machine
    check_output_file(args.output)
    check_output_rate(args.output, SAMPLE_RATE)
    if args.report:
        check_output_file(args.report, "report")
    voice = open_stream_voice(args.voice)
    conv = voice.converter(block_samples(args.block_ms, SAMPLE_RATE), args.transpose, args.singer)
    audio, _ = load_audio(args.input, SAMPLE_RATE)
    out, report = run_stream(conv, audio, realtime=args.realtime, align=not args.keep_latency)
    save_audio(args.output, out, SAMPLE_RATE)
    if args.report:
        write_text_atomic(args.report, json.dumps({"input": str(args.input), "voice": str(args.voice),
                                                   **report.to_dict()}, indent=1))
    for line in report.lines():
        say(line)
    return 0
