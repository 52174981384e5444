"""Live conversion: causal streaming models, the block-by-block engine (``StreamConverter``) and sound-card I/O.

The streaming path runs on its own grid, ``STREAM_HOP`` = 256 samples (5.8 ms), with causal analysis windows and
causal networks distilled from the offline ones (``melisma.training.streaming``); see docs/architecture.md.
"""
