"""Every built-in voice sings the bundled demo vocal: similarity to that voice, pitch, naturalness, speed.

    OMP_NUM_THREADS=1 python benchmarks/builtin_voices.py --refs data/corpus-starter \
        [--json data/benchmarks/builtin_voices.json]

REFS/audio/<voice>/ holds clips of each built-in voice (the corpus the base model was trained on). The demo
vocal (a held-out voice, kokoro jf_tebukuro) is converted with auto-transpose, as `melisma demo` does; the
intended F0 is the demo's true F0 moved by the same transposition.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--refs", type=Path, default=Path("data/corpus-starter"))
    ap.add_argument("--per-voice-refs", type=int, default=8)
    ap.add_argument("--json", type=Path, default=Path("data/benchmarks/builtin_voices.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.audio.io import load_audio
    from melisma.demo import demo_clip, demo_dir
    from melisma.evaluate import evaluate_clips, timed
    from melisma.singer.convert import builtin_voices, load_voice, parse_singer_mix

    audio, sr = load_audio(demo_clip("vocal"))
    true_f0 = np.load(demo_dir() / "demo-vocal-f0.npy")
    rows = {}
    for name in builtin_voices():
        voice = load_voice(name)
        weights = parse_singer_mix(None if voice.default_singer is None else voice.default_singer, voice.singers)
        shift = voice.auto_transpose_semitones(voice.features.f0(audio), weights)
        (out, out_sr), took = timed(voice.convert, audio, sr, transpose=shift)
        refs = sorted((args.refs / "audio" / name).glob("*.flac"))[: args.per_voice_refs]
        res = evaluate_clips([(out, out_sr)], [str(r) for r in refs], sources=[(audio, sr)],
                             reference_f0=[true_f0 * 2 ** (shift / 12)], conversion_seconds=[took],
                             metrics=("similarity", "pitch", "dnsmos", "speed"))
        rows[name] = {"transpose": shift, **{k: v.mean for k, v in res.aggregate.items()}}
        r = rows[name]
        print(f"{name:<36} t={shift:+4.0f}  target {r['target_similarity']:.3f}  source {r['source_similarity']:.3f}"
              f"  cents {r['cents_error_median']:5.1f}  OVRL {r['dnsmos_ovrl']:.2f}  RTF {r['rtf']:.3f}")
    keys = ("target_similarity", "source_similarity", "cents_error_median", "vuv_agreement", "dnsmos_ovrl", "rtf")
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}
    print("mean", json.dumps({k: round(v, 3) for k, v in mean.items()}))
    write_text_atomic(args.json, json.dumps({"voices": rows, "mean": mean}, indent=1))


if __name__ == "__main__":
    main()
