"""Covers: separate a song into vocal + accompaniment, convert the vocal, remix at the original vocal loudness."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from melisma.audio.constants import SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.singer.convert import Voice, resample

PEAK_CEILING = 0.98  # the remix is scaled down, never clipped, when it would peak above this


def match_loudness(audio: np.ndarray, reference: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Scale ``audio`` to the integrated loudness (BS.1770 LUFS) of ``reference``; silence is left as is."""
    from melisma.audio.loudness import integrated_lufs

    have, want = integrated_lufs(audio, sr), integrated_lufs(reference, sr)
    if not (math.isfinite(have) and math.isfinite(want)):
        return np.asarray(audio, dtype=np.float32)
    return (audio * 10.0 ** ((want - have) / 20.0)).astype(np.float32)


def remix(vocal: np.ndarray, accompaniment: np.ndarray) -> np.ndarray:
    """Sum of the two stems, scaled down if it would peak above PEAK_CEILING."""
    n = min(vocal.size, accompaniment.size)
    mix = vocal[:n] + accompaniment[:n]
    peak = float(np.abs(mix).max()) if n else 0.0
    return (mix * (PEAK_CEILING / peak) if peak > PEAK_CEILING else mix).astype(np.float32)


def make_cover(song: str | os.PathLike, output: str | os.PathLike, voice: Voice, separate: str = "auto",
               keep_stems: bool = False, output_sr: int | None = None, **convert_options) -> Path:
    """Write the cover of ``song`` sung by ``voice`` to ``output`` (atomic); stems next to it on request."""
    from melisma.audio.io import load_audio, save_audio
    from melisma.progress import say

    out = Path(output)
    if out.exists() and out.resolve() == Path(song).resolve():
        raise MelismaError(f"{out}: output would overwrite the input")
    mix, _ = load_audio(song, SAMPLE_RATE)
    vocal, accompaniment = separate_song(mix, separate)
    say("converting the vocal")
    converted, _ = voice.convert(vocal, SAMPLE_RATE, **convert_options)
    converted = match_loudness(converted, vocal)
    result = remix(converted, accompaniment)
    sr = int(output_sr or SAMPLE_RATE)
    if keep_stems:
        for name, stem in (("vocal", vocal), ("accompaniment", accompaniment), ("converted", converted)):
            save_audio(out.with_name(f"{out.stem}.{name}.wav"), resample(stem, SAMPLE_RATE, sr), sr)
    save_audio(out, resample(result, SAMPLE_RATE, sr), sr)
    say(f"wrote {out}")
    return out


def separate_song(mix: np.ndarray, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Mono mix (n,) -> (vocal, accompaniment), each (n,); ``none`` treats the input as a dry vocal."""
    if method == "none":
        return mix, np.zeros_like(mix)
    from melisma.prepare.separate import get_separator

    vocal = np.asarray(get_separator(method).separate(mix), dtype=np.float32)[: mix.size]
    vocal = np.pad(vocal, (0, mix.size - vocal.size))
    return vocal, (mix - vocal).astype(np.float32)
