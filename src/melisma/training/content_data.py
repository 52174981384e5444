"""Clips for training and probing the content encoder: a melisma corpus, or a quick espeak-ng/festival fallback.

A corpus directory holds ``corpus.json``: a list of clips (or ``{"clips": [...]}``) with at least ``path``
(audio file, relative to the directory or absolute) and ``voice``; ``parallel_group`` (same text/melody by
several voices) is used when present. The fallback writes the same format from voices that synthesise offline.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melisma.audio.constants import SAMPLE_RATE
from melisma.errors import MelismaError

CORPUS_FORMAT = 1

_WORDS = (
    "the a my your this that every some old young bright quiet little golden silver river mountain garden "
    "window morning evening candle shadow voice song heart dream light water fire stone wind rain summer "
    "winter city road house ocean forest bird flower children teacher singer dancer painter sailor farmer "
    "walks sings runs carries follows remembers whispers opens paints finds keeps gives builds watches "
    "slowly gently quickly softly always never often together alone again beyond under over through "
    "across behind before after into within beside around blue green red yellow purple warm cold deep"
).split()

# espeak-ng accents x variants x base pitch: each triple is one "voice"
_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
             "klatt3", "croak", "Andy", "Denis", "Gene", "Jacky", "Lee", "Mario", "Michael", "Mr serious",
             "Storm", "Tony", "aunty", "belinda", "edward", "linda", "robert", "steph", "victor", "boris"]


@dataclass(frozen=True)
class Clip:
    """One clip of a corpus: audio path, voice name, parallel group ('' when none)."""

    path: Path
    voice: str
    group: str = ""


def load_corpus(root: str | Path) -> list[Clip]:
    """Read ``root/corpus.json`` -> clips. Raises MelismaError when it is missing or malformed."""
    from melisma.corpus.manifest import clip_refs

    return [Clip(r.audio, r.voice, r.group) for r in clip_refs(root)]


def _sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 9))) for _ in range(n)]


def _espeak(text: str, voice: str, pitch: int, speed: int, out: Path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(out), text],
                   check=True, capture_output=True)


def _festival(text: str, voice: str, out: Path) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        subprocess.run(["text2wave", "-eval", f"({voice})", "-o", str(out), f.name], check=True,
                       capture_output=True)
    finally:
        Path(f.name).unlink()


def _espeak_voices(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    combos = [(f"{a}+{v}", p) for a in _ACCENTS for v in _VARIANTS for p in (25, 45, 65, 85)]
    rng.shuffle(combos)
    return combos[:n]


def make_fallback_corpus(root: str | Path, n_train_voices: int = 48, n_heldout_voices: int = 12,
                         clips_per_voice: int = 24, seed: int = 0) -> tuple[Path, Path]:
    """Synthesise ``root/train`` and ``root/heldout`` corpora with espeak-ng (+ festival voices held out).

    Train voices read random sentences from a pool of 60; held-out voices each read the same 16 other
    sentences (parallel groups ``h0``..``h15``), which the probe uses to test that content survives.
    """
    import soundfile as sf
    import soxr

    if shutil.which("espeak-ng") is None:
        raise MelismaError("espeak-ng is not installed; cannot build the fallback corpus")
    root = Path(root)
    voices = _espeak_voices(n_train_voices + n_heldout_voices, seed)
    pool, held_text = _sentences(60, seed), _sentences(16, seed + 1)
    rng = random.Random(seed)
    plans: dict[str, list] = {"train": [], "heldout": []}
    for i, (voice, pitch) in enumerate(voices):
        split = "train" if i < n_train_voices else "heldout"
        texts = rng.sample(range(60), clips_per_voice) if split == "train" else range(16)
        for t in texts:
            text = pool[t] if split == "train" else held_text[t]
            plans[split].append(("espeak", voice, pitch, text, f"{'t' if split == 'train' else 'h'}{t}"))
    if shutil.which("text2wave"):
        for fv in ("voice_kal_diphone", "voice_ked_diphone", "voice_cmu_us_slt_arctic_hts"):
            plans["heldout"] += [("festival", fv, 0, held_text[t], f"h{t}") for t in range(16)]
    for split, plan in plans.items():
        out_dir = root / split
        (out_dir / "audio").mkdir(parents=True, exist_ok=True)
        rows = []
        for k, (engine, voice, pitch, text, group) in enumerate(plan):
            name = f"{k:05d}.flac"
            wav = out_dir / "audio" / f"{k:05d}.wav"
            try:
                if engine == "espeak":
                    _espeak(text, voice, pitch, rng.randint(140, 175), wav)
                else:
                    _festival(text, voice, wav)
            except subprocess.CalledProcessError:
                continue
            audio, sr = sf.read(wav, dtype="float32", always_2d=True)
            wav.unlink()
            audio = soxr.resample(audio.mean(1), sr, SAMPLE_RATE)
            audio = 0.5 * audio / max(1e-4, float(np.abs(audio).max()))
            sf.write(out_dir / "audio" / name, audio, SAMPLE_RATE)
            vname = f"{engine}:{voice}:{pitch}"
            rows.append({"path": f"audio/{name}", "voice": vname, "kind": "speech", "text": text,
                         "parallel_group": group})
        (out_dir / "corpus.json").write_text(json.dumps({"format": CORPUS_FORMAT, "clips": rows}, indent=1))
    return root / "train", root / "heldout"


if __name__ == "__main__":
    import sys

    print(make_fallback_corpus(sys.argv[1]))
