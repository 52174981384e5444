"""The demo job behind ``melisma demo``: the bundled demo vocal converted into a built-in voice."""

from __future__ import annotations

from pathlib import Path

from melisma.errors import MelismaError
from melisma.paths import DEMO
from melisma.progress import say

DEFAULT_VOICE = "piper-joe"  # best naturalness of the built-in voices on the demo (benchmarks/builtin_voices.py)


def demo_dir() -> Path:
    """Folder of the bundled demo song (``demo-song``, ``demo-vocal``, ``demo-accompaniment``, ``demo.json``)."""
    return DEMO


def demo_clip(name: str) -> Path:
    """Path of the bundled ``demo-<name>`` audio (``song``, ``vocal`` or ``accompaniment``)."""
    for suffix in (".ogg", ".flac", ".wav"):
        p = demo_dir() / f"demo-{name}{suffix}"
        if p.exists():
            return p
    raise MelismaError(f"the bundled demo '{name}' audio is missing from {demo_dir()}; reinstall melisma")


def run_demo(output: Path, voice: str | None = None, transpose: float | None = None) -> str:
    """Convert the bundled demo vocal into ``voice`` (default: DEFAULT_VOICE) under ``output``.

    Without ``transpose`` the singer's range is matched automatically. Returns a one-line summary.
    """
    from melisma.audio.io import load_audio, save_audio
    from melisma.evaluate.speed import real_time_factor, timed
    from melisma.singer.convert import builtin_voices, load_voice

    names = builtin_voices()
    if not names:
        raise MelismaError("no built-in voice is installed; reinstall melisma")
    name = voice or (DEFAULT_VOICE if DEFAULT_VOICE in names else names[0])
    loaded = load_voice(name)
    say(f"melisma demo: converting the bundled demo vocal into the built-in voice '{name}'")
    audio, sr = load_audio(demo_clip("vocal"))
    (converted, out_sr), took = timed(loaded.convert, audio, sr, transpose=transpose or 0.0,
                                      auto_transpose=transpose is None)
    out = save_audio(Path(output) / f"demo-{name}.wav", converted, out_sr)
    seconds = len(audio) / sr
    return (f"wrote {out} ({seconds:.1f} s of audio converted in {took:.1f} s, "
            f"real-time factor {real_time_factor(took, seconds):.3f})")
