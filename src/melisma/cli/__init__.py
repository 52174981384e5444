"""The ``melisma`` command line: parses arguments and calls the library, nothing else.

Each subcommand lives in its own module here with a ``register(subparsers)`` function; heavy imports
happen inside the command's handler so ``melisma --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from melisma import __version__
from melisma.errors import MelismaError

# Subcommand modules, in the order --help lists them.
COMMANDS = ("demo", "prepare", "corpus", "features", "evaluate", "train", "convert", "cover", "foundation",
            "serve", "ui", "voices", "export", "stream", "streamable", "live")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="melisma", description="Singing voice conversion that learns a voice on a CPU."
    )
    parser.add_argument("--version", action="version", version=f"melisma {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"melisma.cli.{name}").register(sub)
    _accept_quiet_everywhere(sub)
    return parser


def _accept_quiet_everywhere(sub: argparse._SubParsersAction) -> None:
    """``-q`` works after the command too (``melisma prepare ... -q``), at every level of subcommands."""
    for command in sub.choices.values():
        if not any("-q" in a.option_strings for a in command._actions):
            command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                                 help="no progress bars or status lines")
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_quiet_everywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from melisma.progress import set_quiet

    set_quiet(args.quiet)
    try:
        return int(args.func(args) or 0)
    except MelismaError as exc:
        print(f"melisma: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("melisma: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("MELISMA_DEBUG"):
            raise
        print(f"melisma: internal error: {type(exc).__name__}: {exc} (set MELISMA_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
