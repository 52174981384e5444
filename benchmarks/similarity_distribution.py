"""Same-voice vs different-voice Resemblyzer cosine over every pair of clips in a melisma corpus.

    python benchmarks/similarity_distribution.py CORPUS_DIR [--json OUT.json] [--kind sung|speech|all]

Prints quantiles of both distributions and how often a different-voice pair scores above the median
same-voice pair; writes them as JSON (format melisma.similarity-distribution v1).  This calibrates
the speaker-similarity metric: a conversion's target similarity means something only next to these.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def embed_corpus(folder: Path, kind: str) -> tuple[list[str], list[str], np.ndarray]:
    """Return clip ids, voice ids and (N, 256) embeddings of every clip of ``kind``."""
    from melisma.corpus.manifest import load_corpus
    from melisma.evaluate.similarity import speaker_embedding
    from melisma.progress import track

    clips = [c for c in load_corpus(folder) if kind == "all" or c.kind == kind]
    embs = [speaker_embedding(c.load_audio(), 44_100) for c in track(clips, "embedding")]
    return [c.id for c in clips], [c.voice for c in clips], np.stack(embs)


def pair_scores(voices: list[str], embs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of all unordered pairs, split into same-voice and different-voice pairs."""
    sims = embs @ embs.T  # embeddings are unit-norm
    same, diff = [], []
    for i, j in itertools.combinations(range(len(voices)), 2):
        (same if voices[i] == voices[j] else diff).append(float(sims[i, j]))
    return np.array(same), np.array(diff)


def summary(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"n": 0}
    q = {f"q{int(p * 100):02d}": float(np.quantile(values, p)) for p in QUANTILES}
    return {"n": int(values.size), "mean": float(values.mean()), **q}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--kind", default="all", choices=("all", "sung", "speech"))
    args = ap.parse_args()
    start = time.perf_counter()
    ids, voices, embs = embed_corpus(args.corpus, args.kind)
    same, diff = pair_scores(voices, embs)
    out = {
        "format": "melisma.similarity-distribution", "version": 1, "corpus": str(args.corpus),
        "kind": args.kind, "clips": len(ids), "voices": len(set(voices)),
        "same_voice": summary(same), "different_voice": summary(diff),
        "different_above_same_median": float(np.mean(diff > np.median(same))) if same.size and diff.size else None,
        "seconds": round(time.perf_counter() - start, 1), "machine": platform.machine(),
    }
    for name in ("same_voice", "different_voice"):
        s = out[name]
        qs = " ".join(f"{k}={v:.3f}" for k, v in s.items() if k.startswith("q"))
        print(f"{name:16s} n={s['n']:5d} mean={s.get('mean', float('nan')):.3f} {qs}")
    print(f"different-voice pairs above the same-voice median: {out['different_above_same_median']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
