"""Synthesis cost per minute of audio for each corpus backend, and for WORLD singing, on this machine.

    OMP_NUM_THREADS=1 python benchmarks/corpus_speed.py     # prints JSON, writes data/benchmarks/corpus_speed.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from melisma.atomic import write_text_atomic
from melisma.audio.constants import SAMPLE_RATE
from melisma.corpus.builder import speech_at_rate
from melisma.corpus.melody import Expression, random_melody
from melisma.corpus.singing import analyse, sing
from melisma.corpus.texts import SENTENCES
from melisma.corpus.voices import parse_voice

VOICES = ("kokoro:jf_alpha", "kokoro:jf_alpha+jm_kumo@0.5", "piper:joe", "festival:slt", "festival:kal",
          "espeak:en+f3:p60")
OUT = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "corpus_speed.json"


def main(n: int = 3) -> None:
    result: dict = {}
    sung_audio = sung_time = 0.0
    for vid in VOICES:
        spec = parse_voice(vid)
        speech_at_rate(spec, SENTENCES[spec.language][0], np.random.default_rng(0))  # warm-up (model load)
        secs = audio = 0.0
        for i in range(1, n + 1):
            rng = np.random.default_rng(i)
            t0 = time.perf_counter()
            x = speech_at_rate(spec, SENTENCES[spec.language][i], rng).audio
            secs += time.perf_counter() - t0
            audio += len(x) / SAMPLE_RATE
            if i == 1:
                t0 = time.perf_counter()
                clip = sing(analyse(x), random_melody(rng, 9), 0 if spec.register == "female" else -12,
                            Expression.random(rng))
                sung_time += time.perf_counter() - t0
                sung_audio += len(clip.audio) / SAMPLE_RATE
        result[vid] = {"tts_s_per_audio_min": round(60 * secs / audio, 1)}
    result["world_singing_s_per_audio_min"] = round(60 * sung_time / sung_audio, 1)
    result["load_average_1min"] = os.getloadavg()[0]
    write_text_atomic(OUT, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
