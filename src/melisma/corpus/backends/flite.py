"""Debian ``flite``: CMU ARCTIC speakers awb (Scottish male), rms (US male), slt (US female) and the kal16
diphone voice (US male, the speaker of festival's kal).

``flite -psdur`` prints each segment with its end time ("pau:0.253 dh:0.283 ..."), CMU phones.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.corpus.backends import Speech, clip_ends
from melisma.errors import MelismaError, MissingDependencyError

# name -> register; all English, 16 kHz
VOICES = {"awb": "male", "rms": "male", "slt": "female", "kal16": "male"}
PHONE_SET = "flite-cmu"
INSTALL = "flite voices need: sudo apt-get install flite"


def check_available() -> None:
    if shutil.which("flite") is None:
        raise MissingDependencyError(INSTALL)


def parse_segments(stdout: str) -> tuple[list[str], list[float]]:
    """"pau:0.253 dh:0.283 ..." -> (phones, end times in seconds)."""
    phones: list[str] = []
    ends: list[float] = []
    for token in stdout.split():
        name, sep, end = token.rpartition(":")
        try:
            t = float(end)
        except ValueError:
            continue
        if sep and name:
            phones.append(name)
            ends.append(t)
    return phones, ends


def synthesize(spec, text: str, rng: np.random.Generator) -> Speech:
    """Speak English ``text`` with flite voice ``spec.name``: audio, CMU phones and their end times."""
    check_available()
    if spec.name not in VOICES:
        raise ValueError(f"unknown flite voice '{spec.name}' (choose from {', '.join(VOICES)})")
    with tempfile.TemporaryDirectory(prefix="melisma-flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        res = subprocess.run(["flite", "-voice", spec.name, "-psdur", "-t", text, "-o", str(wav)],
                             capture_output=True, timeout=60)
        if res.returncode != 0 or not wav.exists():
            msg = res.stderr.decode(errors="replace").strip()[:120]
            raise MelismaError(f"flite failed for voice '{spec.name}': {msg or 'no output'}")
        audio, sr = sf.read(str(wav), dtype="float32")
    audio = audio.reshape(len(audio), -1).mean(axis=1)
    phones, ends = parse_segments(res.stdout.decode(errors="replace"))
    return Speech(audio, int(sr), tuple(phones), clip_ends(ends, len(audio) / sr), PHONE_SET)
