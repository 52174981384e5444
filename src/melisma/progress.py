"""Progress bars for anything longer than a few seconds; silent with ``quiet=True`` or when not a TTY in CI."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence every progress bar and status message of this process (the CLI's ``--quiet``)."""
    global _quiet
    _quiet = quiet


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` showing a progress bar with count and ETA (on stderr)."""
    console = Console(stderr=True)
    if _quiet or not console.is_terminal:  # a bar in a log file or a pipe is only noise
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, console=console) as progress:
        yield from progress.track(items, total=total, description=description)


def say(message: str) -> None:
    """One status line for the user (stderr), unless quiet."""
    if not _quiet:
        import sys

        print(message, file=sys.stderr)
