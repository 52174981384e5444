"""Live engine benchmark (issue #21): latency, per-block compute, deadlines, seams and quality against offline.

    OMP_NUM_THREADS=1 python benchmarks/streaming.py --voice festival-slt \
        --source data/corpus-heldout-v2 --refs data/corpus-hours/en-it-fi-cs/audio/festival-slt \
        [--seconds 180] [--realtime 20] [--json data/benchmarks/streaming.json]

The input is ``--seconds`` of sung clips of held-out voices (``--source``, a corpus), joined with short gaps.
Both engines convert it with the same transposition (auto: the input's median F0 to the voice's). For each
block size of ``--blocks`` the streaming engine runs block by block (``run_stream``); ``--realtime`` block sizes
are also run paced by the wall clock (zero missed deadlines is the target). Quality of the streaming output
and of the offline conversion of the same input: similarity to the voice (Resemblyzer, over ``--refs``), to the
source, DNSMOS OVRL, median pitch error against the input's F0 moved by the transposition (the harvest judge).
Seams: sample steps |y[i+1] - y[i]| above 4x the offline output's 99.9th percentile step are clicks; those
within 2 samples of a block boundary are reported apart from the rest.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic

SR = 44_100


def build_input(corpus: Path, seconds: float) -> np.ndarray:
    """Sung clips of ``corpus`` in a seeded order, 0.3 s of silence between them, cut to ``seconds``."""
    from melisma.corpus import load_corpus

    clips = [r for r in load_corpus(corpus) if r.kind == "sung"]
    order = np.random.default_rng(0).permutation(len(clips))
    parts, total = [], 0
    for i in order:
        x = clips[i].load_audio()
        parts += [x, np.zeros(int(0.3 * SR), np.float32)]
        total += x.shape[0] + int(0.3 * SR)
        if total >= seconds * SR:
            break
    return np.concatenate(parts)[: int(seconds * SR)].astype(np.float32)


def clicks(y: np.ndarray, threshold: float, block: int) -> tuple[int, int]:
    """(clicks within 2 samples of a block boundary, clicks elsewhere)."""
    idx = np.flatnonzero(np.abs(np.diff(y)) > threshold) + 1
    near = np.minimum(idx % block, block - idx % block) <= 2
    return int(near.sum()), int((~near).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voice", default="festival-slt")
    ap.add_argument("--source", type=Path, default=Path("data/corpus-heldout-v2"))
    ap.add_argument("--refs", type=Path, default=Path("data/corpus-hours/en-it-fi-cs/audio/festival-slt"))
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--blocks", type=float, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--realtime", type=float, nargs="*", default=[20])
    ap.add_argument("--json", type=Path, default=Path("data/benchmarks/streaming.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.evaluate import evaluate_clips
    from melisma.live.engine import open_stream_voice
    from melisma.live.simulate import run_stream
    from melisma.singer.convert import load_voice, parse_singer_mix

    x = build_input(args.source, args.seconds)
    refs = [str(p) for p in sorted(args.refs.glob("*.flac"))[:12]]
    offline = load_voice(args.voice)
    weights = parse_singer_mix(offline.default_singer, offline.singers)
    shift = offline.auto_transpose_semitones(offline.features.f0(x), weights)
    t0 = time.perf_counter()
    off, _ = offline.convert(x, SR, transpose=shift)
    offline_s = time.perf_counter() - t0
    voice = open_stream_voice(args.voice)
    rows, outputs = {}, {}
    for ms in args.blocks:
        block = round(ms * SR / 1000)
        y, rep = run_stream(voice.converter(block, shift), x)
        outputs[ms] = y
        rows[f"{ms:g}"] = {**rep.to_dict(), "compute_p99_share": round(rep.compute_p99_ms / rep.block_ms, 3)}
        if ms in args.realtime:
            _, rt = run_stream(voice.converter(block, shift), x, realtime=True)
            rows[f"{ms:g}"]["paced"] = rt.to_dict()
            print("paced by the wall clock: " + " | ".join(rt.lines()), flush=True)
        print(" | ".join(rep.lines()), flush=True)
    first = outputs[args.blocks[0]]
    same = max(float(np.abs(y - first).max()) for y in outputs.values())
    threshold = 4.0 * float(np.percentile(np.abs(np.diff(off)), 99.9))
    res = evaluate_clips([(off, SR), (first, SR)], refs, sources=[(x, SR), (x, SR)], transpose=shift,
                         metrics=("similarity", "pitch", "dnsmos"))
    quality = {}
    for name, clip in zip(("offline", "stream"), res.clips, strict=True):
        quality[name] = {k: round(float(getattr(clip, k)), 4) for k in
                         ("target_similarity", "source_similarity", "cents_error_median", "dnsmos_ovrl",
                          "vuv_agreement")}
    off_clicks = clicks(off, threshold, round(args.blocks[0] * SR / 1000))
    for ms, y in outputs.items():
        rows[f"{ms:g}"]["clicks_at_boundaries"], rows[f"{ms:g}"]["clicks_elsewhere"] = clicks(
            y, threshold, round(ms * SR / 1000))
    print(f"\ninput {x.shape[0] / SR:.0f} s, transpose {shift:+.0f}; offline conversion {offline_s:.1f} s "
          f"(RTF {offline_s / (x.shape[0] / SR):.3f}); outputs of every block size equal within {same:.1e}")
    print("| block ms | latency ms | p50 ms | p99 ms | p99/block | missed | realtime missed | clicks (edges/other) |")
    print("|---|---|---|---|---|---|---|---|")
    for ms, r in rows.items():
        rt = r.get("paced", {}).get("missed_deadlines", "-")
        print(f"| {ms} | {r['latency_ms']:.1f} | {r['compute_p50_ms']:.2f} | {r['compute_p99_ms']:.2f} | "
              f"{r['compute_p99_share']:.0%} | {r['missed_deadlines']} | {rt} | "
              f"{r['clicks_at_boundaries']}/{r['clicks_elsewhere']} |")
    print(f"offline clicks by the same rule: {sum(off_clicks)}")
    for name, q in quality.items():
        print(name, json.dumps(q))
    write_text_atomic(args.json, json.dumps({"voice": args.voice, "seconds": x.shape[0] / SR, "transpose": shift,
                                             "blocks": rows, "quality": quality, "offline_clicks": sum(off_clicks),
                                             "click_threshold": threshold, "max_difference_between_blocks": same},
                                            indent=1))


if __name__ == "__main__":
    main()
