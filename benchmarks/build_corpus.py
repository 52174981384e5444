"""Build the project's shared corpora under data/ and print/write their sizes and synthesis speed.

    nice -n 10 python benchmarks/build_corpus.py starter   # data/corpus-starter + data/corpus-heldout
    nice -n 10 python benchmarks/build_corpus.py train     # data/corpus-train (grows until stopped)
    python benchmarks/build_corpus.py stats DIR            # figures for an existing corpus (JSON too)
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from melisma.atomic import write_text_atomic
from melisma.corpus import HELD_OUT_VOICES, build_corpus, load_corpus
from melisma.corpus.voices import default_voices

DATA = Path(__file__).resolve().parents[1] / "data"
COMPANIONS = ("kokoro:jf_alpha", "kokoro:jm_kumo", "piper:joe", "festival:ked")


def stats(folder: Path) -> dict:
    """Minutes, voices, clips, groups, and synthesis seconds per minute of audio for each backend."""
    clips = load_corpus(folder)
    by_backend: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for c in clips:
        b = by_backend[f"{c.voice.split(':')[0]}/{c.kind}"]
        b[0] += c.duration
        b[1] += c.synth_seconds
    acc = [c.f0_accuracy for c in clips if c.f0_accuracy is not None]
    return {
        "folder": str(folder), "clips": len(clips), "minutes": round(sum(c.duration for c in clips) / 60, 2),
        "voices": len({c.voice for c in clips}), "parallel_groups": len({c.parallel_group for c in clips}),
        "sung_clips": sum(c.kind == "sung" for c in clips),
        # WORLD-sung clips: share of frames voiced in both where harvest of the output is within 50 cents
        # of the imposed F0 (per clip), summarised over clips
        "sung_f0_within_50c_median": round(sorted(acc)[len(acc) // 2], 4) if acc else None,
        "sung_f0_within_50c_mean": round(sum(acc) / len(acc), 4) if acc else None,
        "sung_clips_at_least_90pc": round(sum(a >= 0.9 for a in acc) / len(acc), 4) if acc else None,
        "synth_s_per_audio_min": {k: round(60 * s / d, 1) for k, (d, s) in sorted(by_backend.items()) if d},
    }


def report(folder: Path) -> None:
    s = stats(folder)
    write_text_atomic(folder / "stats.json", json.dumps(s, indent=1))
    print(json.dumps(s, indent=1), flush=True)


def starter() -> None:
    build_corpus(DATA / "corpus-starter", default_voices(14, seed=1), clips_per_voice=8, parallel=4, seed=1)
    report(DATA / "corpus-starter")
    build_corpus(DATA / "corpus-heldout", list(HELD_OUT_VOICES) + list(COMPANIONS), clips_per_voice=10,
                 parallel=4, seed=2)
    report(DATA / "corpus-heldout")
    write_text_atomic(DATA / "READY-starter", "corpus-starter and corpus-heldout complete\n")


def train(n_voices: int = 48) -> None:
    """Rounds of 6 clips per voice, so every voice grows evenly and the corpus is usable at any time
    (the manifest is rewritten after every voice's clips; killing the job loses at most one group)."""
    voices = default_voices(n_voices, seed=3)
    per = 6
    while not (DATA / "STOP-train").exists() and per <= int(os.environ.get("MAX_CLIPS", "60")):
        build_corpus(DATA / "corpus-train", voices, clips_per_voice=per, parallel=4, seed=3, native_singing=True)
        report(DATA / "corpus-train")
        per += 6


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "starter"
    if what == "starter":
        starter()
    elif what == "train":
        train()
    elif what == "stats":
        report(Path(sys.argv[2]))
