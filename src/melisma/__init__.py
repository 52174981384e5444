"""melisma: singing voice conversion that learns a voice on a CPU.

Public API (imports are lazy so ``import melisma`` is cheap):
    melisma.load_audio(path, sr)      -> (audio, sr)
    melisma.prepare(...)              song preparation into a dataset
    melisma.evaluate(...)             objective metrics of conversions
"""

from __future__ import annotations

__version__ = "0.1.0"
