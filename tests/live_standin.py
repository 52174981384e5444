"""The converter the ``melisma live`` tests run, from ONE function: ``make_converter(block_size)``.

It returns the real engine, ``open_stream_voice(VOICE).converter(block_size=...)``, so every live test
(tests/test_live.py and the process tests/live_runner.py starts) runs melisma's streaming engine.
``GainDelayConverter`` (its output is its input one block later) is kept for ``REAL_ENGINE = False``, the exact
checks of the I/O loop that only a pass-through can meet.
"""

from __future__ import annotations

import numpy as np

from melisma.singer.options import singer_mix

REAL_ENGINE = True  # the live tests run melisma's streaming engine; False: the stand-in below
VOICE = "festival-slt"  # a built-in voice: it streams through the shipped networks


def make_converter(block_size: int):  # -> melisma.live.engine.StreamConverter
    """The converter every live test uses, for blocks of ``block_size`` samples at 44.1 kHz."""
    if not REAL_ENGINE:
        return GainDelayConverter(block_size)
    from melisma.live.engine import open_stream_voice

    return open_stream_voice(VOICE).converter(block_size=block_size)


class GainDelayConverter:
    """Test stand-in for ``melisma.live.engine.StreamConverter``: output = input delayed by one block, times
    the gain of the singer ("loud": 1, "soft": 0.5, mixes weighted); transpose is recorded, not applied."""

    sample_rate = 44_100
    singers = ["loud", "soft"]
    _singer_gain = np.array([1.0, 0.5], dtype=np.float32)

    def __init__(self, block_size: int):
        self.block_size = block_size
        self.latency_samples = block_size
        self.transpose = 0.0
        self.gain = 1.0
        self._previous = np.zeros(block_size, dtype=np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """(block_size,) float32 in -> the previous block's (block_size,) float32 * gain."""
        out, self._previous = self._previous * np.float32(self.gain), np.array(block, dtype=np.float32)
        return out

    def set_transpose(self, semitones: float) -> None:
        self.transpose = float(semitones)

    def set_singer(self, spec: str | None) -> None:
        self.gain = float(singer_mix(spec, self.singers) @ self._singer_gain)
