"""Conversion quality of voice packs on the held-out corpus: speaker similarity to the target, pitch fidelity,
naturalness, and the speed of the whole pipeline.

    python benchmarks/singer_quality.py data/corpus-heldout --reference data/corpus-starter \
        --voices festival-slt kokoro-jm_kumo piper-joe [--per-voice 4] [--steps 1]

Each --voices name is a built-in voice (or a pack path) whose singer is a folder of REFERENCE/audio/ (its
training clips serve as the target references). Sources: held-out sung clips of other voices.
Writes data/benchmarks/singer_quality.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("heldout", type=Path)
    ap.add_argument("--reference", type=Path, default=Path("data/corpus-starter"))
    ap.add_argument("--voices", nargs="+", required=True)
    ap.add_argument("--per-voice", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--out", default="data/benchmarks/singer_quality.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.atomic import write_text_atomic
    from melisma.audio.io import load_audio
    from melisma.corpus import load_corpus
    from melisma.evaluate import evaluate_clips
    from melisma.singer.convert import load_voice

    corpus = load_corpus(args.heldout)
    report = {}
    for name in args.voices:
        voice = load_voice(name)
        singer = voice.singers[0]
        refs = sorted((args.reference / "audio" / singer).glob("*.flac"))[:6]
        sources = [c for c in corpus if c.kind == "sung" and c.voice_dir.name != singer]
        sources = sources[: args.per_voice]
        outs, secs, srcs = [], [], []
        for c in sources:
            audio, sr = load_audio(c.audio_path)
            t0 = time.perf_counter()
            y, out_sr = voice.convert(audio, sr, steps=args.steps, auto_transpose=False)
            secs.append(time.perf_counter() - t0)
            outs.append((y, out_sr))
            srcs.append((audio, sr))
        res = evaluate_clips(outs, [str(r) for r in refs], sources=srcs, conversion_seconds=secs,
                             metrics=("similarity", "pitch", "dnsmos", "speed"))
        report[name] = {k: v.mean for k, v in res.aggregate.items()}
        print(name, json.dumps(report[name], indent=1))
    write_text_atomic(args.out, json.dumps({"steps": args.steps, "voices": report}, indent=1))


if __name__ == "__main__":
    main()
