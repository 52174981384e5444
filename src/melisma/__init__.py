"""melisma: singing voice conversion that learns a voice on a CPU.

Public API (imports are lazy so ``import melisma`` is cheap):
    melisma.load_audio(path)                   -> (audio, sr): mono float32, resampled to 44.1 kHz
    melisma.prepare_dataset(songs, out_dir)    song preparation into a training set
    melisma.evaluate_clips(converted, refs)    objective metrics of conversions
    melisma.load_voice(voice)                  -> Voice; voice.convert(audio, sr, ...) -> (audio, sr)
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {  # public name -> module that defines it
    "load_audio": "melisma.audio.io",
    "prepare_dataset": "melisma.prepare.pipeline",
    "evaluate_clips": "melisma.evaluate.api",
    "load_voice": "melisma.singer.convert",
}


def __getattr__(name: str):
    """Import public API functions on first use (PEP 562), so ``import melisma`` stays cheap."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'melisma' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
