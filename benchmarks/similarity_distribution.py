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

from melisma.atomic import write_text_atomic

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def embed_corpus(folder: Path, kind: str) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Return clip ids, voice ids, kinds (speech/sung) and (N, 256) embeddings of every clip of ``kind``."""
    from melisma.corpus.manifest import load_corpus
    from melisma.evaluate.similarity import speaker_embedding
    from melisma.progress import track

    clips = [c for c in load_corpus(folder) if kind == "all" or c.kind == kind]
    embs = [speaker_embedding(c.load_audio(), 44_100) for c in track(clips, "embedding")]
    return [c.id for c in clips], [c.voice for c in clips], [c.kind for c in clips], np.stack(embs)


def pair_scores(voices: list[str], kinds: list[str], embs: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """Cosines of all unordered pairs: {"all" | "speech-speech" | "speech-sung" | "sung-sung": {"same": [...],
    "different": [...]}}, so same- and different-voice pairs can be compared under equal conditions."""
    sims = embs @ embs.T  # embeddings are unit-norm
    out: dict[str, dict[str, list[float]]] = {}
    for i, j in itertools.combinations(range(len(voices)), 2):
        side = "same" if voices[i] == voices[j] else "different"
        for group in ("all", "-".join(sorted((kinds[i], kinds[j])))):
            out.setdefault(group, {"same": [], "different": []})[side].append(float(sims[i, j]))
    return out


def summary(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"n": 0}
    q = {f"q{int(p * 100):02d}": float(np.quantile(values, p)) for p in QUANTILES}
    return {"n": int(values.size), "mean": float(values.mean()), **q}


def closest_different(voices: list[str], embs: np.ndarray, top: int = 8) -> list[dict]:
    """The ``top`` pairs of different voices whose mean cross-clip cosine is highest (e.g. blends and parents)."""
    names = sorted(set(voices))
    idx = {v: [i for i, x in enumerate(voices) if x == v] for v in names}
    sims = embs @ embs.T
    rows = [{"a": a, "b": b, "mean_cosine": float(sims[np.ix_(idx[a], idx[b])].mean())}
            for a, b in itertools.combinations(names, 2)]
    return sorted(rows, key=lambda r: -r["mean_cosine"])[:top]


def _compare(same: np.ndarray, diff: np.ndarray) -> dict:
    above = float(np.mean(diff > np.median(same))) if same.size and diff.size else None
    return {"same_voice": summary(same), "different_voice": summary(diff), "different_above_same_median": above}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--kind", default="all", choices=("all", "sung", "speech"))
    args = ap.parse_args()
    start = time.perf_counter()
    ids, voices, kinds, embs = embed_corpus(args.corpus, args.kind)
    groups = {g: _compare(np.array(p["same"]), np.array(p["different"]))
              for g, p in sorted(pair_scores(voices, kinds, embs).items())}
    out = {
        "format": "melisma.similarity-distribution", "version": 1, "corpus": str(args.corpus),
        "kind": args.kind, "clips": len(ids), "voices": len(set(voices)), "pairs": groups,
        "closest_different_voices": closest_different(voices, embs),
        "seconds": round(time.perf_counter() - start, 1), "machine": platform.machine(),
    }
    for group, g in groups.items():
        for side in ("same_voice", "different_voice"):
            s = g[side]
            qs = " ".join(f"{k}={v:.3f}" for k, v in s.items() if k.startswith("q"))
            print(f"{group:14s} {side:15s} n={s['n']:5d} mean={s.get('mean', float('nan')):.3f} {qs}")
        print(f"{group:14s} different-voice pairs above the same-voice median: {g['different_above_same_median']}")
    for r in out["closest_different_voices"][:5]:
        print(f"closest different voices: {r['a']} ~ {r['b']}: {r['mean_cosine']:.3f}")
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
