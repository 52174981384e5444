"""Whole-pipeline speed of one-shot conversion: embed a reference, convert the 25 s demo vocal (best of N).

    OMP_NUM_THREADS=1 python benchmarks/oneshot_rtf.py --reference REF.flac [--json data/benchmarks/oneshot_rtf.json]

Prints the load average beside the figures: on a shared machine the real-time factor rises with it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from melisma.atomic import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=Path("data/benchmarks/oneshot_rtf.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.audio.io import load_audio
    from melisma.demo import demo_clip
    from melisma.oneshot import load_oneshot_model

    t0 = time.perf_counter()
    model = load_oneshot_model()
    load_s = time.perf_counter() - t0
    audio, sr = load_audio(demo_clip("vocal"))
    dur = len(audio) / sr
    embeds, converts = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        voice = model.voice({"ref": model.embed([args.reference])})
        embeds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        voice.convert(audio, sr, auto_transpose=True)
        converts.append(time.perf_counter() - t0)
    row = {"audio_seconds": round(dur, 2), "load_seconds": round(load_s, 2), "embed_seconds": round(min(embeds), 3),
           "convert_seconds": round(min(converts), 3), "rtf_convert": min(converts) / dur,
           "rtf_with_embedding": (min(converts) + min(embeds)) / dur, "load_average": os.getloadavg()[0],
           "cpus": os.cpu_count()}
    print(json.dumps(row))
    write_text_atomic(args.json, json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
