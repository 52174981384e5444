"""``melisma demo``: the main job on built-in defaults, with nothing to download.

Converts the bundled demo song's vocal into a built-in voice and writes a wav.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="convert a bundled clip into a bundled voice (nothing to download)")
    p.add_argument("-o", "--output", type=Path, default=Path("melisma-demo"), help="output folder")
    p.add_argument("-v", "--voice", default=None, help="built-in voice name (default: piper-joe)")
    p.add_argument("-t", "--transpose", type=float, default=None,
                   help="semitones (default: match the voice's range automatically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.demo import run_demo

    result = run_demo(args.output, voice=args.voice, transpose=args.transpose)
    print(result)
    return 0
