"""Render the bundled demo song into src/melisma/assets/demo/ (song, dry vocal, accompaniment, demo.json).

    nice -n 10 python benchmarks/build_demo_song.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from melisma.atomic import write_text_atomic
from melisma.audio.constants import SAMPLE_RATE, TARGET_LUFS
from melisma.audio.io import load_audio, save_audio
from melisma.corpus.builder import normalise_loudness, save_f0
from melisma.corpus.melody import NOTE_NAMES
from melisma.corpus.singing import analyse_f0, cents_accuracy
from melisma.corpus.song import compose, sing_song

OUT = Path(__file__).resolve().parents[1] / "src" / "melisma" / "assets" / "demo"
VOICE = "kokoro:jf_tebukuro"  # held out: no shipped model trains on it
TEXTS = ["空の向こうに、小さな星が光っている。", "あなたの声を聞くと、心が温かくなる。", "明日もきっと、晴れると信じている。"]
SEED = 4


def main() -> None:
    rng = np.random.default_rng(SEED)
    plan = compose(rng)
    vocal, f0, notes = sing_song(plan, VOICE, TEXTS, SEED)
    band = accompaniment_at(plan, rng)
    vocal_n = normalise_loudness(vocal.astype(np.float32))
    band_n = normalise_loudness(band.astype(np.float32), target=TARGET_LUFS - 5.0)
    mix = normalise_loudness(vocal_n + band_n)
    OUT.mkdir(parents=True, exist_ok=True)
    save_audio(OUT / "demo-song.ogg", mix, SAMPLE_RATE)
    save_audio(OUT / "demo-vocal.ogg", vocal_n, SAMPLE_RATE)
    save_audio(OUT / "demo-accompaniment.ogg", band_n, SAMPLE_RATE)
    save_f0(OUT / "demo-vocal-f0.npy", f0)
    decoded = load_audio(OUT / "demo-vocal.ogg")[0]
    acc, frames = cents_accuracy(f0, analyse_f0(decoded))
    meta = {
        "format_version": 1, "voice": VOICE, "key": f"{NOTE_NAMES[plan.tonic % 12]} major", "tonic_midi": plan.tonic,
        "bpm": plan.bpm, "time_signature": "4/4", "duration_s": round(len(mix) / SAMPLE_RATE, 3),
        "chords_per_bar": [["I", "ii", "iii", "IV", "V", "vi", "vii"][d] for d in plan.chords()],
        "text": TEXTS, "language": "ja", "melody": notes, "sample_rate": SAMPLE_RATE,
        "files": {"song": "demo-song.ogg", "vocal": "demo-vocal.ogg", "accompaniment": "demo-accompaniment.ogg",
                  "vocal_f0": "demo-vocal-f0.npy"},
        "vocal_f0_within_50_cents": round(acc, 4), "made_by": "benchmarks/build_demo_song.py",
    }
    write_text_atomic(OUT / "demo.json", json.dumps(meta, ensure_ascii=False, indent=1))
    sizes = {p.name: p.stat().st_size for p in OUT.iterdir()}
    print(json.dumps({"duration_s": meta["duration_s"], "f0_accuracy": acc, "frames": frames, "bytes": sizes}))


def accompaniment_at(plan, rng):
    from melisma.corpus.song import accompaniment

    return accompaniment(plan, rng)


if __name__ == "__main__":
    main()
