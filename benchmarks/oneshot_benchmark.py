"""One-shot conversion on held-out voices: similarity, pitch, naturalness, speed, and disentanglement probes.

    OMP_NUM_THREADS=1 python benchmarks/oneshot_benchmark.py --heldout data/corpus-heldout-v2 \
        --sources data/corpus-heldout [--model on=PATH --model off=PATH] [--json data/benchmarks/oneshot.json]

For each held-out voice (male festival:kal, female kokoro:jf_tebukuro, the blend kokoro:jf_nezumi+jm_kumo@0.5,
the ARCTIC-based flite:awb; --all adds festival:dita) the first clip (1 reference) or first three clips
(3 references) give the voice; sung clips of three other voices are converted to it with auto-transpose, and
``melisma evaluate`` scores them against the voice's *other* clips (the same targets for 1 and 3 references):
similarity to target and to source, median pitch error (cents, against the source F0 moved by the
transposition), DNSMOS OVRL (against the voice's own sung clips), real-time factor of the conversion.

Probes per model, on the clips of every held-out voice (split by clip: even clips train, odd clips test):
speaker-ID accuracy of a linear probe on the content codes (frames; chance = the majority class share), F0
predictability from the codes (R^2 of a ridge regression to the utterance-normalised log-F0 and to the raw
log-F0 of voiced frames), speaker-ID accuracy of a linear probe on the speaker embedding (one per clip), and
the embedding's equal error rate over all clip pairs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic

VOICES = {"male": "festival:kal", "female": "kokoro:jf_tebukuro", "blend": "kokoro:jf_nezumi+jm_kumo@0.5",
          "arctic": "flite:awb"}
EXTRA = {"czech": "festival:dita"}
SOURCES = ("piper:joe", "festival:ked", "kokoro:jf_alpha")
TARGETS = {"similarity_1": 0.75, "similarity_3": 0.80, "cents": 20.0, "dnsmos_drop": 0.2, "rtf": 0.05}


def clips_of(corpus: Path) -> dict[str, list]:
    from melisma.corpus import load_corpus

    out: dict[str, list] = {}
    for c in sorted(load_corpus(corpus), key=lambda c: c.id):
        out.setdefault(c.voice, []).append(c)
    return out


def convert_voice(model, refs: list[str], sources: list[str]) -> tuple[list, list[float], list[float], float]:
    """Embed ``refs``, convert each source with auto-transpose -> (outputs, seconds, shifts, embed seconds)."""
    from melisma.audio.io import load_audio

    t0 = time.perf_counter()
    voice = model.voice({"ref": model.embed(refs)})
    embed_s = time.perf_counter() - t0
    outs, secs, shifts = [], [], []
    for src in sources:
        audio, sr = load_audio(src)
        t0 = time.perf_counter()
        done = voice.convert_detailed(audio, sr, auto_transpose=True)
        secs.append(time.perf_counter() - t0)
        outs.append((done.audio, done.sr))
        shifts.append(done.transpose)
    return outs, secs, shifts, embed_s


def score_model(model, heldout: dict[str, list], sources: list[str], voices: dict[str, str]) -> dict:
    from melisma.evaluate import evaluate_clips

    rows: dict[str, dict] = {}
    model.voice({"w": model.embed([str(heldout[voices["male"]][0].audio_path)])}).convert(
        np.zeros(44100, np.float32) + 0.01 * np.sin(np.arange(44100) * 0.03).astype(np.float32), 44100)  # warm-up
    for label, vid in voices.items():
        clips = heldout[vid]
        targets = [str(c.audio_path) for c in clips[3:]]
        own = evaluate_clips([str(c.audio_path) for c in clips[3:] if c.kind == "sung"], metrics=("dnsmos",))
        own_ovrl = own.mean("dnsmos_ovrl")
        for n_refs in (1, 3):
            refs = [str(c.audio_path) for c in clips[:n_refs]]
            outs, secs, shifts, embed_s = convert_voice(model, refs, sources)
            res = evaluate_clips(outs, targets, sources=sources, transpose=shifts, conversion_seconds=secs,
                                 metrics=("similarity", "pitch", "dnsmos", "speed"))
            per = [(c.target_similarity, c.source_similarity, c.cents_error_median) for c in res.clips]
            row = {"voice": vid, "refs": n_refs, "transpose": shifts, "embed_seconds": round(embed_s, 3),
                   "target_similarity": res.mean("target_similarity"),
                   "source_similarity": res.mean("source_similarity"),
                   "closer_to_target_every_clip": all(t > s for t, s, _ in per),
                   "cents_error_median": float(np.median([c for _, _, c in per])),
                   "dnsmos_ovrl": res.mean("dnsmos_ovrl"), "own_dnsmos_ovrl": own_ovrl,
                   "rtf": res.mean("rtf"), "clips": [list(map(float, p)) for p in per]}
            rows[f"{label}/{n_refs}"] = row
            print(f"{label:<7} {n_refs} ref  target {row['target_similarity']:.3f}  source "
                  f"{row['source_similarity']:.3f}  every clip closer {str(row['closer_to_target_every_clip']):<5} "
                  f"cents {row['cents_error_median']:5.1f}  OVRL {row['dnsmos_ovrl']:.2f} (own {own_ovrl:.2f})  "
                  f"RTF {row['rtf']:.3f}", flush=True)
    return rows


# --- probes -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def clip_features(model, clip) -> dict[str, np.ndarray]:
    """Content codes (T, D), normalised and raw log-F0 (T,), voiced mask (T,), speaker embedding (S,)."""
    from melisma.audio.constants import SAMPLE_RATE
    from melisma.audio.io import load_audio
    from melisma.oneshot.model import normalised_log_f0

    x, _ = load_audio(clip.audio_path, SAMPLE_RATE)
    feats = model.features
    content = feats.content(x, shifts=())
    codes = model.net.head(content).q[0].T.numpy()
    f0 = torch.from_numpy(feats.f0(x))
    norm = normalised_log_f0(f0[None])[0, 0].numpy()
    t = min(len(codes), len(norm))
    emb = model.embed_one(str(clip.audio_path))[0].numpy()
    return {"codes": codes[:t], "norm_lf0": norm[:t], "lf0": np.log(np.maximum(f0.numpy()[:t], 1.0)),
            "voiced": f0.numpy()[:t] > 0, "emb": emb}


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 steps: int = 300) -> float:
    """Accuracy of a softmax linear classifier (Adam, standardised inputs) on the test rows."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xa, xb = torch.tensor((x_train - mu) / sd, dtype=torch.float32), torch.tensor((x_test - mu) / sd, dtype=torch.float32)
    ya = torch.tensor(y_train)
    torch.manual_seed(0)
    lin = torch.nn.Linear(xa.shape[1], int(max(y_train.max(), y_test.max())) + 1)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        with torch.enable_grad():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(lin(xa), ya)
            loss.backward()
            opt.step()
    return float((lin(xb).argmax(-1).numpy() == y_test).mean())


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    xa = np.c_[x_train, np.ones(len(x_train))]
    w = np.linalg.solve(xa.T @ xa + 1e-2 * np.eye(xa.shape[1]), xa.T @ y_train)
    pred = np.c_[x_test, np.ones(len(x_test))] @ w
    return float(1.0 - ((pred - y_test) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum())


def equal_error_rate(emb: np.ndarray, labels: np.ndarray) -> float:
    sims = emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    scores, same = sims[iu], (labels[:, None] == labels[None])[iu]
    best = 1.0
    for th in np.unique(scores):
        far, frr = (scores[~same] >= th).mean(), (scores[same] < th).mean()
        best = min(best, max(far, frr))
    return float(best)


def probes(model, heldout: dict[str, list]) -> dict[str, float]:
    rows = {"train": [], "test": []}
    for v, (_, clips) in enumerate(sorted(heldout.items())):
        for i, clip in enumerate(clips):
            rows["train" if i % 2 == 0 else "test"].append((v, clip_features(model, clip)))

    def frames(split: str, key: str, voiced: bool, every: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, vs = [], [], []
        for v, f in rows[split]:
            m = f["voiced"] if voiced else np.ones(len(f["codes"]), bool)
            idx = np.nonzero(m)[0][::every]
            xs.append(f["codes"][idx])
            ys.append(f[key][idx] if key else np.full(len(idx), v))
            vs.append(np.full(len(idx), v))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(vs)

    xa, ya, _ = frames("train", "", False)
    xb, yb, _ = frames("test", "", False)
    chance = float(np.bincount(yb).max() / len(yb))
    out = {"content_speaker_id_accuracy": linear_probe(xa, ya.astype(int), xb, yb.astype(int)),
           "content_speaker_id_chance": chance}
    for key in ("norm_lf0", "lf0"):
        xa, ya, _ = frames("train", key, True)
        xb, yb, _ = frames("test", key, True)
        out[f"content_{key}_r2"] = ridge_r2(xa, ya, xb, yb)
    ea = np.stack([f["emb"] for _, f in rows["train"]])
    eb = np.stack([f["emb"] for _, f in rows["test"]])
    la = np.array([v for v, _ in rows["train"]])
    lb = np.array([v for v, _ in rows["test"]])
    out["embedding_speaker_id_accuracy"] = linear_probe(ea, la, eb, lb)
    out["embedding_eer"] = equal_error_rate(np.concatenate([ea, eb]), np.concatenate([la, lb]))
    print("  probes: " + "  ".join(f"{k} {v:.3f}" for k, v in out.items()), flush=True)
    return out


def summary(rows: dict) -> dict:
    one = [r for r in rows.values() if r["refs"] == 1]
    three = [r for r in rows.values() if r["refs"] == 3]
    allr = list(rows.values())
    s = {"target_similarity_1": float(np.mean([r["target_similarity"] for r in one])),
         "target_similarity_3": float(np.mean([r["target_similarity"] for r in three])),
         "source_similarity": float(np.mean([r["source_similarity"] for r in allr])),
         "closer_to_target_every_clip": all(r["closer_to_target_every_clip"] for r in allr),
         "cents_error_median": float(np.median([r["cents_error_median"] for r in allr])),
         "dnsmos_ovrl": float(np.mean([r["dnsmos_ovrl"] for r in allr])),
         "dnsmos_drop_worst": float(max(r["own_dnsmos_ovrl"] - r["dnsmos_ovrl"] for r in allr)),
         "rtf": float(np.mean([r["rtf"] for r in allr]))}
    s["passes"] = {"similarity_1": s["target_similarity_1"] >= TARGETS["similarity_1"],
                   "similarity_3": s["target_similarity_3"] >= TARGETS["similarity_3"],
                   "closer_every_clip": s["closer_to_target_every_clip"],
                   "cents": s["cents_error_median"] <= TARGETS["cents"],
                   "dnsmos": s["dnsmos_drop_worst"] <= TARGETS["dnsmos_drop"], "rtf": s["rtf"] <= TARGETS["rtf"]}
    return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heldout", type=Path, default=Path("data/corpus-heldout-v2"))
    ap.add_argument("--sources", type=Path, default=Path("data/corpus-heldout"))
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=PATH",
                    help="one-shot model(s) to compare (default: the shipped one)")
    ap.add_argument("--all", action="store_true", help="also festival:dita")
    ap.add_argument("--only", default="", help="comma-separated voice labels (male,female,blend,arctic,czech)")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--json", type=Path, default=Path("data/benchmarks/oneshot.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.oneshot import load_oneshot_model

    heldout = clips_of(args.heldout)
    src_clips = clips_of(args.sources)
    sources = [str(next(c for c in src_clips[v] if c.kind == "sung").audio_path) for v in SOURCES]
    voices = {**VOICES, **(EXTRA if args.all else {})}
    if args.only:
        voices = {k: v for k, v in voices.items() if k in args.only.split(",")}
    models = dict(m.split("=", 1) for m in args.model) or {"shipped": None}
    report: dict = {"sources": sources, "targets": TARGETS, "models": {}}
    for label, path in models.items():
        print(f"== {label} ({path or 'shipped'})", flush=True)
        model = load_oneshot_model(path)
        rows = score_model(model, heldout, sources, voices)
        entry = {"path": path, "info": model.weights.info.get("config", {}), "rows": rows, "summary": summary(rows)}
        if not args.no_probes:
            entry["probes"] = probes(model, {v: heldout[v] for v in voices.values()})
        report["models"][label] = entry
        print("  summary: " + json.dumps({k: v for k, v in entry["summary"].items()}), flush=True)
        write_text_atomic(args.json, json.dumps(report, indent=1))
    print_table(report)


def print_table(report: dict) -> None:
    keys = ("target_similarity_1", "target_similarity_3", "source_similarity", "cents_error_median", "dnsmos_ovrl",
            "rtf")
    pkeys = ("content_speaker_id_accuracy", "content_speaker_id_chance", "content_norm_lf0_r2", "content_lf0_r2",
             "embedding_speaker_id_accuracy", "embedding_eer")
    print("| model | " + " | ".join(keys + pkeys) + " |")
    print("|---" * (1 + len(keys) + len(pkeys)) + "|")
    for label, e in report["models"].items():
        p = e.get("probes", {})
        print(f"| {label} | " + " | ".join(f"{e['summary'][k]:.3f}" for k in keys) + " | "
              + " | ".join(f"{p.get(k, float('nan')):.3f}" for k in pkeys) + " |")


if __name__ == "__main__":
    main()
