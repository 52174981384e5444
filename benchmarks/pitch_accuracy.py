"""Pitch extractor accuracy and speed on corpus clips with true F0.

For each method: median / mean / 95th-percentile absolute error in cents on frames voiced in both the
estimate and the truth, gross pitch error rate (share of those frames off by more than 50 cents),
voicing accuracy / precision / recall, and seconds of compute per second of audio (RTF; model loading
and a warm-up call excluded).  Frames of all clips are pooled.

    python benchmarks/pitch_accuracy.py [CORPUS_DIR ...] [--methods dio,harvest,fcpe,crepe-tiny]
        [--kind sung|speech|all] [--max-seconds 120] [--json out.json]

Defaults: data/corpus-heldout if present, else tests/data/corpus; sung clips whose truth is the
imposed melody (f0_source == "melody"); with ``--kind speech`` the truth is harvest measured on the
rendering, which favours harvest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from melisma.atomic import write_text_atomic
from melisma.corpus import ClipRecord, load_corpus
from melisma.errors import MelismaError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = (REPO / "data" / "corpus-heldout", REPO / "tests" / "data" / "corpus")
DEFAULT_METHODS = "dio,harvest,fcpe,crepe-tiny,crepe-full"
GROSS_CENTS = 50.0


def select_clips(clips: list[ClipRecord], kind: str, max_seconds: float) -> list[ClipRecord]:
    """Clips of ``kind`` (sung clips need melody truth), in manifest order, up to ``max_seconds`` in total."""
    chosen, total = [], 0.0
    for c in clips:
        if kind == "sung" and not (c.kind == "sung" and c.f0_source == "melody"):
            continue
        if kind == "speech" and c.kind != "speech":
            continue
        if total >= max_seconds:
            break
        chosen.append(c)
        total += c.duration
    return chosen


def evaluate_method(name: str, clips: list[tuple[ClipRecord, np.ndarray, np.ndarray]]) -> dict:
    """Run method ``name`` as the models get it (``model_pitch``: the 16 kHz analysis copy, the common clean-up)
    over preloaded (clip, audio 44.1 kHz, true F0) triples -> pooled scores."""
    from melisma.audio.constants import SAMPLE_RATE
    from melisma.features.pitch import model_pitch
    from melisma.features.postprocess import cents_error, voicing_scores

    extractor = model_pitch(name)
    extractor.extract(clips[0][1][:SAMPLE_RATE // 2], SAMPLE_RATE)  # warm-up: lazy inits, allocator
    errors, est_all, ref_all, compute, audio_s = [], [], [], 0.0, 0.0
    for _clip, audio, truth in clips:
        t0 = time.perf_counter()
        f0 = extractor.extract(audio, SAMPLE_RATE)
        compute += time.perf_counter() - t0
        audio_s += audio.size / SAMPLE_RATE
        n = min(f0.size, truth.size)
        errors.append(cents_error(f0[:n], truth[:n]))
        est_all.append(f0[:n])
        ref_all.append(truth[:n])
    err = np.concatenate(errors)
    voicing = voicing_scores(np.concatenate(est_all), np.concatenate(ref_all))
    return {
        "method": name, "clips": len(clips), "audio_seconds": round(audio_s, 2), "frames_compared": int(err.size),
        "median_cents": float(np.median(err)), "mean_cents": float(np.mean(err)),
        "p95_cents": float(np.percentile(err, 95)), "gross_error_rate": float(np.mean(err > GROSS_CENTS)),
        "voicing_accuracy": voicing["accuracy"], "voicing_precision": voicing["precision"],
        "voicing_recall": voicing["recall"], "rtf": compute / audio_s, "settings": extractor.settings(),
    }


def print_table(rows: list[dict]) -> None:
    head = f"{'method':<11}{'clips':>6}{'audio s':>9}{'med c':>8}{'mean c':>8}{'p95 c':>8}{'GPE>50c':>9}" \
           f"{'V acc':>7}{'V prec':>8}{'V rec':>7}{'RTF':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['method']:<11}{r['clips']:>6}{r['audio_seconds']:>9.1f}{r['median_cents']:>8.2f}"
              f"{r['mean_cents']:>8.2f}{r['p95_cents']:>8.1f}{100 * r['gross_error_rate']:>8.2f}%"
              f"{r['voicing_accuracy']:>7.3f}{r['voicing_precision']:>8.3f}{r['voicing_recall']:>7.3f}{r['rtf']:>8.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="*", type=Path, help="corpus folders (with corpus.json)")
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma list (default {DEFAULT_METHODS})")
    ap.add_argument("--kind", default="sung", choices=("sung", "speech", "all"))
    ap.add_argument("--max-seconds", type=float, default=120.0, help="audio per corpus (default 120 s)")
    ap.add_argument("--slow-max-seconds", type=float, default=30.0, help="audio for crepe-full (RTF ~5)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    corpora = args.corpora or [next((p for p in DEFAULT_CORPORA if (p / "corpus.json").is_file()), DEFAULT_CORPORA[0])]
    clips = []
    for folder in corpora:
        try:
            clips += select_clips(load_corpus(folder), args.kind, args.max_seconds)
        except MelismaError as exc:
            print(exc, file=sys.stderr)
            return 2
    if not clips:
        print(f"no {args.kind} clips with true F0 in {', '.join(map(str, corpora))}", file=sys.stderr)
        return 2
    loaded = [(c, c.load_audio(), c.load_f0()) for c in clips]
    rows = []
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        subset = loaded
        if name == "crepe-full":
            subset, total = [], 0.0
            for item in loaded:
                if total >= args.slow_max_seconds:
                    break
                subset.append(item)
                total += item[1].size / 44_100
        rows.append(evaluate_method(name, subset))
        print(f"  {name}: done ({rows[-1]['rtf']:.3f} s per s)", file=sys.stderr)
    print(f"corpora: {', '.join(map(str, corpora))}; clips: {args.kind}; torch threads: {args.threads}; "
          f"cpu count: {os.cpu_count()}")
    print_table(rows)
    if args.json:
        result = {"benchmark": "pitch_accuracy", "version": 1, "corpora": [str(c) for c in corpora],
                  "kind": args.kind, "threads": args.threads, "results": rows}
        write_text_atomic(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
