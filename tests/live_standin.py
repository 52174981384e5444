"""The converter the ``melisma live`` tests run, from ONE function: ``make_converter(block_size)``.

SWAP POINT: until ``melisma.live.engine`` exists on this branch, ``make_converter`` returns ``GainDelayConverter``,
a stand-in with the StreamConverter interface (its output is its input one block later). When the real engine is
merged, make ``make_converter`` return ``open_stream_voice(<a shipped voice>).converter(block_size=block_size)``
and set ``REAL_ENGINE = True``; every live test (tests/test_live.py and the process tests/live_runner.py starts)
then runs the real engine, and the assertions that only the stand-in can meet are skipped.
"""

from __future__ import annotations

import numpy as np

from melisma.singer.options import singer_mix

REAL_ENGINE = False  # SWAP: True once make_converter returns the real engine


def make_converter(block_size: int):  # -> melisma.live.engine.StreamConverter
    """SWAP: the converter every live test uses, for blocks of ``block_size`` samples at 44.1 kHz."""
    return GainDelayConverter(block_size)


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
