"""Vocoder stage: log-mel + F0 -> waveform at 44.1 kHz.

    from melisma.vocoder import get_vocoder
    vocoder = get_vocoder()                                   # builtin weights shipped with melisma
    vocoder = get_vocoder("nsf-hifigan", path="nsf_hifigan/")  # a user's openvpi NSF-HiFiGAN folder
    audio = vocoder(mel, f0)                                  # (B, 128, T), (B, T) Hz -> (B, T * 512)
"""

from __future__ import annotations

from pathlib import Path

from melisma.errors import MelismaError
from melisma.vocoder.base import Vocoder

VOCODERS = ("builtin", "nsf-hifigan")


def get_vocoder(name: str = "builtin", path: str | Path | None = None) -> Vocoder:
    """Build a vocoder by name, in eval mode. ``path``: weights file (builtin, default the shipped one) or
    checkpoint folder (nsf-hifigan, required)."""
    if name == "builtin":
        from melisma.vocoder.builtin import load_builtin

        return load_builtin(path)
    if name == "nsf-hifigan":
        if path is None:
            raise MelismaError("the nsf-hifigan vocoder needs a checkpoint folder (config.json + model)")
        from melisma.vocoder.nsf_hifigan import load_nsf_hifigan

        return load_nsf_hifigan(path)
    raise MelismaError(f"unknown vocoder {name!r}; choose one of {', '.join(VOCODERS)}")


__all__ = ["VOCODERS", "Vocoder", "get_vocoder"]
