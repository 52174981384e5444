"""The demo job behind ``melisma demo``: bundled song in, converted (or prepared) audio out."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from melisma.errors import MelismaError
from melisma.progress import say


def demo_dir() -> Path:
    """Folder of the bundled demo song (``song.*``, ``vocal.*`` and ``demo.json``)."""
    return Path(str(resources.files("melisma") / "assets" / "demo"))


def _find(stem: str) -> Path:
    for suffix in (".ogg", ".flac", ".wav"):
        p = demo_dir() / f"{stem}{suffix}"
        if p.exists():
            return p
    raise MelismaError(f"the bundled demo '{stem}' audio is missing from {demo_dir()}; reinstall melisma")


def run_demo(output: Path, voice: str | None = None) -> str:
    """Run the demo into ``output``; returns a one-paragraph summary of what was written."""
    output = Path(output)
    voices = _builtin_voices()
    if voices:
        return _convert_demo(output, voice or voices[0])
    say("melisma demo: no singer voice is shipped yet, so the demo runs the preparation pipeline on the "
        "bundled song (separate, slice, normalise, check quality) instead of a conversion.")
    from melisma.prepare.pipeline import prepare_dataset

    summary = prepare_dataset([_find("song")], output / "dataset")
    return json.dumps(summary, indent=2, default=str) if not isinstance(summary, str) else summary


def _builtin_voices() -> list[str]:
    try:
        from melisma.singer.voicepack import builtin_voice_names
    except ImportError:
        return []
    return list(builtin_voice_names())


def _convert_demo(output: Path, voice_name: str) -> str:
    from melisma.audio.io import load_audio, save_audio
    from melisma.singer.convert import load_voice

    voice = load_voice(voice_name)
    audio, sr = load_audio(_find("vocal"))
    converted, out_sr = voice.convert(audio, sr)
    out = save_audio(output / f"demo-{voice_name}.wav", converted, out_sr)
    return f"converted the bundled demo vocal into the built-in voice '{voice_name}': {out}"
