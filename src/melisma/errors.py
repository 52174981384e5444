"""Errors that reach the user as one line (the CLI prints ``melisma: <message>`` and exits non-zero)."""

from __future__ import annotations


class MelismaError(Exception):
    """A problem with the user's input or environment, explained in one line. Never a bug."""

    exit_code = 2


class AudioInputError(MelismaError):
    """An input file is missing, unreadable, empty, silent, or not audio."""


class MissingDependencyError(MelismaError):
    """An optional package or model file is needed and not installed; the message says how to get it."""

    exit_code = 3
