"""``melisma live ARGS`` as its own process, with the converter of ``live_standin.make_converter`` (the tests'
swap point) in place of the voice's streaming engine; every other part (options, devices, stream, commands,
recording, exit codes) is the real command:

    python tests/live_runner.py -v ANY --seconds 2 --record out.wav
"""

from __future__ import annotations

import sys

from live_standin import REAL_ENGINE, make_converter

import melisma.cli.live as live_cli
from melisma.cli import main


def open_test_converter(voice: str, block_size: int, transpose: float, singer: str | None):
    converter = make_converter(block_size)
    converter.set_transpose(transpose)
    converter.set_singer(singer)
    return converter


if __name__ == "__main__":
    if not REAL_ENGINE:  # the real engine runs through the command's own open_converter
        live_cli.open_converter = open_test_converter
    sys.exit(main(["live", *sys.argv[1:]]))
