"""Debian ``espeak-ng``: many robotic voices; variants (``+f3``), pitch (``-p``) and speed (``-s``) vary them.

Voice spec name: ``VOICE[+VARIANT][:pPITCH][:sSPEED]``, e.g. ``en+f3`` or ``en-us+m2:p70:s150``; the language
is the voice's first part (``en``, ``it``, ``fi``, ``cs``).  One run writes the wave and prints the phonemes it
spoke (``--ipa --sep=_``: IPA, phonemes joined by ``_``, words by spaces); espeak-ng gives no timings.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.corpus.backends import Speech
from melisma.errors import MelismaError, MissingDependencyError

INSTALL = "espeak voices need espeak-ng: sudo apt-get install espeak-ng"
PHONE_SET = "espeak-ipa"


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


def language(name: str) -> str:
    """``en-gb-scotland+f3:p60`` -> ``en``: the language the voice reads."""
    return name.split(":")[0].split("+")[0].split("-")[0]


def split_phonemes(stdout: str) -> list[str]:
    """espeak-ng's ``--ipa --sep=_`` output -> its phonemes (stress marks kept; empty pieces dropped)."""
    return [p for word in stdout.split() for p in word.split("_") if p]


def synthesize(spec, text: str, rng: np.random.Generator) -> Speech:
    check_available()
    voice, pitch, speed = parse_name(spec.name)
    speed = speed if speed is not None else int(rng.integers(140, 175))
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "--ipa", "--sep=_"]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    with tempfile.TemporaryDirectory(prefix="melisma-espeak-") as tmp:
        wav = Path(tmp) / "out.wav"
        res = subprocess.run(cmd + ["-w", str(wav), text], capture_output=True, timeout=60)
        if res.returncode != 0 or not wav.exists():
            msg = res.stderr.decode(errors="replace").strip()[:120]
            raise MelismaError(f"espeak-ng failed for voice '{voice}': {msg}")
        audio, sr = sf.read(str(wav), dtype="float32")
    phones = split_phonemes(res.stdout.decode("utf-8", errors="replace"))
    return Speech(audio.reshape(len(audio), -1).mean(axis=1), int(sr), tuple(phones), None, PHONE_SET)
