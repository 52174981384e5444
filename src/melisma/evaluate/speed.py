"""Conversion speed: real-time factor (seconds of compute per second of audio; < 1 is faster than real time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def timed(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> tuple[R, float]:
    """Call ``fn(*args, **kwargs)``; return ``(result, wall-clock seconds)``."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def real_time_factor(seconds: float, audio_seconds: float) -> float:
    """Compute time over audio duration; nan for an empty clip."""
    return float(seconds / audio_seconds) if audio_seconds > 0 else float("nan")
