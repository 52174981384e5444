"""Debian ``festival`` voices: English slt (US female, HTS), kal and ked (US male diphone), and the festvox
voices of other languages: Italian lp/pc, Finnish lj/mv, Czech dita/machac.

Speech runs ``festival --batch`` on a small scheme script that synthesises the text, saves the wave and prints
the Segment relation (phone name and end time), so every clip carries the phones and timings festival itself
used.  Each voice reads its text in its own 8-bit encoding (Latin-1; Czech ISO-8859-2: its lexicon and letter
rules match those bytes, UTF-8 input is spelled out letter by letter).

The diphone voices also sing: ``text2wave -mode singing`` reads an XML score (see ``sing``).  Quirk of
festival's singing mode (measured here): a note named C5 sounds as C4 (MIDI 60), so names are written one
octave up; its timing follows the diphone durations only roughly, so the sung F0 must be measured (harvest).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.atomic import atomic_path, write_text_atomic
from melisma.corpus.backends import Speech, clip_ends
from melisma.errors import MelismaError, MissingDependencyError


@dataclass(frozen=True)
class FestivalVoice:
    command: str  # the scheme function selecting the voice
    language: str
    register: str  # "male" | "female"
    phone_set: str  # names the inventory of its Segment names (melisma.corpus.phones)


VOICES = {
    "slt": FestivalVoice("voice_cmu_us_slt_arctic_hts", "en", "female", "festival-radio"),
    "kal": FestivalVoice("voice_kal_diphone", "en", "male", "festival-radio"),
    "ked": FestivalVoice("voice_ked_diphone", "en", "male", "festival-radio"),
    "lp": FestivalVoice("voice_lp_diphone", "it", "female", "festival-italian"),
    "pc": FestivalVoice("voice_pc_diphone", "it", "male", "festival-italian"),
    "lj": FestivalVoice("voice_suo_fi_lj_diphone", "fi", "female", "festival-finnish"),
    "mv": FestivalVoice("voice_hy_fi_mv_diphone", "fi", "male", "festival-finnish"),
    "dita": FestivalVoice("voice_czech_dita", "cs", "female", "festival-czech"),
    "machac": FestivalVoice("voice_czech_machac", "cs", "male", "festival-czech"),
}
ENCODING = {"en": "latin-1", "it": "latin-1", "fi": "latin-1", "cs": "iso-8859-2"}
SINGING_VOICES = ("kal", "ked")
INSTALL = ("festival voices need: sudo apt-get install festival festvox-us-slt-hts festvox-kallpc16k "
           "festvox-kdlpc16k festvox-italp16k festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv "
           "festvox-czech-dita festvox-czech-machac")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def check_available() -> None:
    if shutil.which("text2wave") is None or shutil.which("festival") is None:
        raise MissingDependencyError(INSTALL)


def voice(name: str) -> FestivalVoice:
    if name not in VOICES:
        raise ValueError(f"unknown festival voice '{name}' (choose from {', '.join(VOICES)})")
    return VOICES[name]


def _voice_cmd(name: str) -> str:
    return f"({voice(name).command})"


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


def speech_script(name: str, text: str, wav: Path) -> bytes:
    """The ``festival --batch`` script: synthesise ``text``, save the wave, print "NAME END" per segment.
    Encoded in the voice's own charset (ValueError when ``text`` has a letter it cannot hold)."""
    v = voice(name)
    quoted = text.replace("\\", " ").replace('"', " ")
    script = (f"({v.command})\n"
              f'(set! utt (Utterance Text "{quoted}"))\n'
              "(utt.synth utt)\n"
              f'(utt.save.wave utt "{wav}" \'riff)\n'
              '(mapcar (lambda (s) (format t "%s %f\\n" (item.name s) (item.feat s "end")))'
              " (utt.relation.items utt 'Segment))\n")
    try:
        return script.encode(ENCODING[v.language])
    except UnicodeEncodeError as exc:
        raise ValueError(f"festival:{name} cannot read {text!r} in {ENCODING[v.language]} ({exc.reason})") from None


def parse_segments(stdout: str) -> tuple[list[str], list[float]]:
    """"pau 0.22\ndh 0.25\n..." -> (phones, end times in seconds); other lines (messages) are skipped."""
    phones: list[str] = []
    ends: list[float] = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                end = float(parts[1])
            except ValueError:
                continue
            phones.append(parts[0])
            ends.append(end)
    return phones, ends


def synthesize(spec, text: str, rng: np.random.Generator) -> Speech:
    """Speak ``text`` (in the voice's language) with festival voice ``spec.name``: audio, phones and timings."""
    check_available()
    v = voice(spec.name)
    with tempfile.TemporaryDirectory(prefix="melisma-fest-") as tmp:
        wav = Path(tmp) / "out.wav"
        scm = Path(tmp) / "say.scm"
        with atomic_path(scm) as part:
            part.write_bytes(speech_script(spec.name, text, wav))
        res = subprocess.run(["festival", "--batch", str(scm)], capture_output=True, timeout=120)
        if res.returncode != 0 or not wav.exists():
            msg = res.stderr.decode("latin-1").strip().splitlines()
            raise MelismaError(f"festival failed for voice '{spec.name}': {msg[-1][:120] if msg else 'no output'}")
        audio, sr = sf.read(str(wav), dtype="float32")
    audio = audio.reshape(len(audio), -1).mean(axis=1)
    phones, ends = parse_segments(res.stdout.decode(ENCODING[v.language]))
    return Speech(audio, int(sr), tuple(phones), clip_ends(ends, len(audio) / sr), v.phone_set)


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
