"""Debian ``festival`` voices through ``text2wave``: slt (US female, HTS), kal and ked (US male diphone).

The diphone voices also sing: ``text2wave -mode singing`` reads an XML score (see ``sing``).  Quirk of
festival's singing mode (measured here): a note named C5 sounds as C4 (MIDI 60), so names are written one
octave up; its timing follows the diphone durations only roughly, so the sung F0 must be measured (harvest).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.atomic import write_text_atomic
from melisma.errors import MelismaError, MissingDependencyError

VOICES = {
    "slt": "voice_cmu_us_slt_arctic_hts",
    "kal": "voice_kal_diphone",
    "ked": "voice_ked_diphone",
}
SINGING_VOICES = ("kal", "ked")
INSTALL = ("festival voices need: sudo apt-get install festival festvox-us-slt-hts "
           "festvox-kallpc16k festvox-kdlpc16k")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def check_available() -> None:
    if shutil.which("text2wave") is None:
        raise MissingDependencyError(INSTALL)


def _voice_cmd(name: str) -> str:
    if name not in VOICES:
        raise ValueError(f"unknown festival voice '{name}' (choose from {', '.join(VOICES)})")
    return f"({VOICES[name]})"


def _run(args: list[str], payload: str, suffix: str) -> tuple[np.ndarray, int]:
    check_available()
    with tempfile.TemporaryDirectory(prefix="melisma-fest-") as tmp:
        src = Path(tmp) / f"in{suffix}"
        out = Path(tmp) / "out.wav"
        write_text_atomic(src, payload)
        res = subprocess.run(["text2wave", *args, "-o", str(out), str(src)], capture_output=True, timeout=120)
        if res.returncode != 0 or not out.exists():
            msg = res.stderr.decode(errors="replace").strip().splitlines()
            raise MelismaError(f"text2wave failed: {msg[-1][:120] if msg else 'no output'}")
        audio, sr = sf.read(str(out), dtype="float32")
    return audio.reshape(len(audio), -1).mean(axis=1), int(sr)


def synthesize(spec, text: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Speak English ``text`` with festival voice ``spec.name``."""
    return _run(["-eval", _voice_cmd(spec.name)], text, ".txt")


def festival_note_name(midi: int) -> str:
    """Name festival's singing mode expects for MIDI note ``midi`` (it reads names one octave high)."""
    octave = midi // 12  # scientific octave is midi // 12 - 1; festival sounds one octave below the name
    return f"{NOTE_NAMES[midi % 12]}{octave}"


def singing_xml(words: list[str], notes: list[tuple[int, float]], bpm: float) -> str:
    """Score for festival's singing mode: one word per (midi, beats) note, tempo ``bpm``."""
    lines = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" "Singing.v0_1.dtd" []>',
        f'<SINGING BPM="{bpm:.1f}">',
    ]
    for word, (midi, beats) in zip(words, notes, strict=True):
        lines.append(f'<PITCH NOTE="{festival_note_name(midi)}"><DURATION BEATS="{beats:.3f}">'
                     f"{word}</DURATION></PITCH>")
    lines.append("</SINGING>")
    return "\n".join(lines) + "\n"


def sing(name: str, words: list[str], notes: list[tuple[int, float]], bpm: float) -> tuple[np.ndarray, int]:
    """Festival's own singing mode (diphone voices only): one word per note -> (audio, sr)."""
    if name not in SINGING_VOICES:
        raise ValueError(f"festival sings only with {', '.join(SINGING_VOICES)}, not '{name}'")
    return _run(["-mode", "singing", "-eval", _voice_cmd(name)], singing_xml(words, notes, bpm), ".xml")
