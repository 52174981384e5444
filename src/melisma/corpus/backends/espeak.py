"""Debian ``espeak-ng``: many robotic voices; variants (``+f3``), pitch (``-p``) and speed (``-s``) vary them.

Voice spec name: ``VOICE[+VARIANT][:pPITCH][:sSPEED]``, e.g. ``en+f3`` or ``en-us+m2:p70:s150``.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

from melisma.errors import MelismaError, MissingDependencyError

INSTALL = "espeak voices need espeak-ng: sudo apt-get install espeak-ng"


def check_available() -> None:
    if shutil.which("espeak-ng") is None:
        raise MissingDependencyError(INSTALL)


def parse_name(name: str) -> tuple[str, int | None, int | None]:
    """``en+f3:p60:s150`` -> ("en+f3", 60, 150); pitch 0-99, speed in words per minute."""
    voice, *opts = name.split(":")
    pitch = speed = None
    for o in opts:
        if o[:1] == "p" and o[1:].isdigit():
            pitch = int(o[1:])
        elif o[:1] == "s" and o[1:].isdigit():
            speed = int(o[1:])
        else:
            raise ValueError(f"bad espeak option '{o}' in '{name}' (use :pPITCH and :sSPEED)")
    return voice, pitch, speed


def synthesize(spec, text: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    check_available()
    voice, pitch, speed = parse_name(spec.name)
    speed = speed if speed is not None else int(rng.integers(140, 175))
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout"]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    res = subprocess.run(cmd + [text], capture_output=True, timeout=60)
    if res.returncode != 0 or not res.stdout:
        raise MelismaError(f"espeak-ng failed for voice '{voice}': {res.stderr.decode(errors='replace').strip()[:120]}")
    audio, sr = sf.read(io.BytesIO(res.stdout), dtype="float32")
    return audio.reshape(len(audio), -1).mean(axis=1), int(sr)
