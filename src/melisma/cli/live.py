"""``melisma live -v VOICE``: real-time conversion from a sound card's input to its output."""

from __future__ import annotations

import argparse

from melisma.errors import MelismaError

MIN_BLOCK_MS, MAX_BLOCK_MS = 2.0, 500.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="convert a sound card's input in real time",
                       description="Sing into a sound card's input and hear the voice on its output, block by block. "
                                   "While it runs, type: t N (transpose to N semitones), v SINGER (or a:0.6,b:0.4), "
                                   "g in|out GAIN, q (quit); Ctrl-C stops too.")
    p.add_argument("-v", "--voice", default=None, help="voice pack file or built-in voice name")
    p.add_argument("--input-device", default=None, metavar="ID|NAME", help="input device (default: the system's)")
    p.add_argument("--output-device", default=None, metavar="ID|NAME", help="output device (default: the system's)")
    p.add_argument("--block-ms", type=float, default=20.0, metavar="MS",
                   help="block length, milliseconds (default 20; shorter: less latency, more CPU load)")
    p.add_argument("--transpose", type=float, default=0.0, metavar="N", help="semitones (default 0)")
    p.add_argument("--singer", default=None, help="singer of a multi-singer voice, or a mix a:0.6,b:0.4")
    p.add_argument("--gain-in", type=float, default=1.0, help="input gain, linear (default 1)")
    p.add_argument("--gain-out", type=float, default=1.0, help="output gain, linear (default 1)")
    p.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="stop after S seconds of audio (tests, benchmarks)")
    p.add_argument("--record", default=None, metavar="OUT.wav", help="also write what was output to this file")
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and host APIs, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.live import device

    if args.list_devices:
        print(device.list_devices())
        return 0
    block_size = _check_args(args)
    inputs, outputs = device.resolve_devices(args.input_device, args.output_device)
    converter = open_converter(args.voice, block_size, args.transpose, args.singer)
    return _run_session(args, device, converter, inputs, outputs)


def _check_args(args: argparse.Namespace) -> int:
    """The stream's block size in samples, after checking the options that need no device or voice."""
    from melisma.live.device import MAX_GAIN, STREAM_RATE
    from melisma.singer.options import MAX_TRANSPOSE

    if not args.voice:
        raise MelismaError("melisma live needs a voice: -v VOICE (or --list-devices)")
    if not MIN_BLOCK_MS <= args.block_ms <= MAX_BLOCK_MS:
        raise MelismaError(f"--block-ms {args.block_ms:g} is outside {MIN_BLOCK_MS:g} .. {MAX_BLOCK_MS:g}")
    for name in ("gain_in", "gain_out"):
        if not 0.0 <= getattr(args, name) <= MAX_GAIN:
            raise MelismaError(f"--{name.replace('_', '-')} {getattr(args, name):g} is outside 0 .. {MAX_GAIN:g}")
    if not abs(args.transpose) <= MAX_TRANSPOSE:
        raise MelismaError(f"--transpose {args.transpose:g} is outside -{MAX_TRANSPOSE:g} .. {MAX_TRANSPOSE:g}")
    if args.seconds is not None and not args.seconds > 0:
        raise MelismaError(f"--seconds {args.seconds:g} must be more than 0")
    if args.record:
        from melisma.atomic import check_output_file
        from melisma.audio.io import check_output_rate

        check_output_file(args.record, "recording")
        check_output_rate(args.record, STREAM_RATE)
    return round(args.block_ms * STREAM_RATE / 1000)


def open_converter(voice: str, block_size: int, transpose: float, singer: str | None):  # -> StreamConverter
    """The streaming converter of ``voice`` for blocks of ``block_size`` samples."""
    from melisma.live.engine import open_stream_voice

    return open_stream_voice(voice).converter(block_size=block_size, transpose=transpose, singer=singer)


def _status_every(quiet: bool) -> float:
    """Seconds between status lines: twice a second on a terminal (one line, rewritten), every 5 s in a log."""
    import sys

    return 0.0 if quiet else 0.5 if sys.stderr.isatty() else 5.0


def _run_session(args: argparse.Namespace, device, converter, inputs: int, outputs: int) -> int:
    import queue
    import sys

    from melisma.progress import say

    commands: queue.Queue = queue.Queue()
    if sys.stdin is not None and not sys.stdin.closed:
        device.read_commands(sys.stdin, commands)
    say(f"melisma live: device {inputs} -> {outputs}, blocks of {converter.block_size} samples; {device.HELP}")
    summary = device.run_live(converter, inputs, outputs, converter.block_size, args.gain_in, args.gain_out,
                              _status_every(args.quiet), None, commands, seconds=args.seconds,
                              record=args.record)
    say(f"melisma live: {summary.line()}")
    if args.record:
        say(f"melisma live: wrote {args.record}")
    return 0
