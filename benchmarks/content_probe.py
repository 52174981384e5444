"""Does the content encoder drop the singer and keep the content?  Prints figures and writes JSON.

1. Speaker probe: logistic regression predicting the voice from features averaged over 20-frame windows
   (0.23 s, voiced/loud windows only), train/test split by clip (70/30 within each voice). Lower is better
   for content features (chance = 1 / voices); the log-mel input should be near 100 %.
2. Content kept: parallel retrieval. For each clip, DTW (cosine cost) against every clip of another voice
   that has parallel renditions; a hit when the lowest-cost clip has the same text (parallel_group).
   Chance = 1 / candidates. Also reported: the same under a +5 semitone pitch / +15 % formant WORLD shift
   of the query (content should survive what a singer change does).
3. Same text, other voice: mean DTW cost between renditions of one text by two voices, over the mean cost
   between different texts by two voices (lower is better: 1.0 means the content does not tell texts apart).
4. Phonetics (``--phones``): a linear probe (logistic regression over SHARED_PHONES) fitted on frozen content
   frames of the TRAINING corpus's clips with phone timings (``--train-corpus``, trainable voices only), then
   run on the held-out clips with timings: frame phone accuracy, and PER (frame predictions collapsed: repeats
   merged, silence dropped; edit distance / reference phones). For weights with a phone head, its own too.

    python benchmarks/content_probe.py [--corpus DIR] [--weights FILE] [--name builtin|phonetic] [--phones]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic
from melisma.audio.io import load_audio
from melisma.content.builtin import BuiltinContentEncoder
from melisma.content.perturb import world_shift
from melisma.corpus import load_corpus
from melisma.features.mel import log_mel

WINDOW = 20


def window_means(feats: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """(C, T) features -> (W, C) means over non-overlapping windows whose mean log-mel energy is loud enough."""
    energy = np.log(np.exp(mel).mean(0) + 1e-9)
    keep = energy > energy.max() - 6
    rows = [feats[:, s:s + WINDOW].mean(1) for s in range(0, feats.shape[1] - WINDOW + 1, WINDOW)
            if keep[s:s + WINDOW].mean() > 0.6]
    return np.array(rows).reshape(-1, feats.shape[0])


def speaker_probe(per_clip: list[np.ndarray], voices: list[str], seed: int = 0) -> float:
    """Accuracy of a linear speaker classifier on window means, split by clip within each voice."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    by_voice = defaultdict(list)
    for i, v in enumerate(voices):
        by_voice[v].append(i)
    test = set()
    for idx in by_voice.values():
        test.update(rng.permutation(idx)[: max(1, round(0.3 * len(idx)))].tolist())
    xs = {s: [] for s in ("tr", "te")}
    ys = {s: [] for s in ("tr", "te")}
    for i, w in enumerate(per_clip):
        s = "te" if i in test else "tr"
        xs[s].append(w)
        ys[s] += [voices[i]] * len(w)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    clf.fit(np.concatenate(xs["tr"]), ys["tr"])
    return float(clf.score(np.concatenate(xs["te"]), ys["te"]))


def dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """(C, Ta), (C, Tb) -> mean cosine cost along the best DTW path."""
    import librosa

    an = a / (np.linalg.norm(a, axis=0, keepdims=True) + 1e-8)
    bn = b / (np.linalg.norm(b, axis=0, keepdims=True) + 1e-8)
    d, path = librosa.sequence.dtw(C=1 - an.T @ bn)
    return float(d[-1, -1] / len(path))


def retrieval(queries: list[np.ndarray], feats: list[np.ndarray], voices: list[str], groups: list[str],
              query_groups: list[str] | None = None) -> tuple[float, float]:
    """Accuracy and chance of parallel-group retrieval against the clips of the next voice (cyclic).

    Queries whose ``query_groups`` entry is empty are skipped (default: ``groups``)."""
    order = sorted({v for v, g in zip(voices, groups, strict=True) if g})
    hits, chance = [], []
    for i, q in enumerate(queries):
        if not (query_groups or groups)[i]:
            continue
        other = order[(order.index(voices[i]) + 1) % len(order)]
        cands = [j for j in range(len(feats)) if voices[j] == other and groups[j]]
        if groups[i] not in {groups[j] for j in cands}:
            continue
        best = min(cands, key=lambda j: dtw_cost(q, feats[j]))
        hits.append(groups[best] == groups[i])
        chance.append(1 / len(cands))
    return float(np.mean(hits)), float(np.mean(chance))


def text_distance(feats: list[np.ndarray], voices: list[str], groups: list[str], pools: list[str]) -> float:
    """Mean DTW cost of same-text pairs of two voices over that of different-text pairs of two voices, pairs
    taken within a pool (language and kind: spoken with spoken, sung with sung)."""
    same, other = [], []
    for i in range(len(feats)):
        for j in range(i + 1, len(feats)):
            if voices[i] != voices[j] and groups[i] and groups[j] and pools[i] == pools[j]:
                (same if groups[i] == groups[j] else other).append(dtw_cost(feats[i], feats[j]))
    return float(np.mean(same) / np.mean(other)) if same and other else float("nan")


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two label sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def collapse(frames: np.ndarray, silence: int, width: int = 5) -> list[int]:
    """Per-frame phone indices -> the phone sequence: a majority filter over ``width`` frames (58 ms: shorter
    flickers are not phones), then repeats merged and silence dropped."""
    half = width // 2
    padded = np.pad(frames, half, mode="edge")
    smooth = np.array([np.bincount(padded[i:i + width]).argmax() for i in range(len(frames))])
    return [int(k) for i, k in enumerate(smooth) if k != silence and (i == 0 or k != smooth[i - 1])]


def per(predicted: list[np.ndarray], targets: list[np.ndarray], silence: int) -> float:
    """Phone error rate of collapsed frame predictions against the clips' phone sequences."""
    errors = sum(edit_distance(collapse(p, silence), t.tolist()) for p, t in zip(predicted, targets, strict=True))
    return errors / max(1, sum(len(t) for t in targets))


def timed_features(enc: BuiltinContentEncoder, clips: list) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Content (C, T) and per-frame phone labels of the clips that carry phone timings."""
    from melisma.training.content import frame_targets

    feats, labels = [], []
    for clip in clips:
        x, _ = load_audio(clip.audio_path)
        f = enc(torch.from_numpy(0.5 * x / max(1e-4, float(np.abs(x).max()))))[0].numpy()
        lab = frame_targets(clip, f.shape[1])
        if lab is not None:
            feats.append(f)
            labels.append(lab)
    return feats, labels


def phone_figures(enc: BuiltinContentEncoder, train_corpus: Path, held: list, max_frames: int = 30000) -> dict:
    """Frame phone accuracy and PER on the held-out clips with phone timings, from a linear probe (logistic
    regression) fitted on content frames of the training corpus's timed clips; and from the encoder's own
    phone head where it has one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from melisma.corpus import trainable_clips
    from melisma.corpus.phones import SHARED_PHONES, SIL
    from melisma.training.content import phone_targets

    silence = SHARED_PHONES.index(SIL) + 1
    tr_x, tr_y = timed_features(enc, trainable_clips([train_corpus]))
    held = [c for c in held if c.phone_ends]
    te_x, te_y = timed_features(enc, held)
    x, y = np.concatenate(tr_x, 1).T, np.concatenate(tr_y)
    pick = np.random.default_rng(0).permutation(len(y))[:max_frames]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=1.0))
    clf.fit(x[pick], y[pick])
    pred = [clf.predict(f.T) for f in te_x]
    sequences = [phone_targets(c) for c in held]
    out = {"phone_train_clips": len(tr_x), "phone_heldout_clips": len(te_x),
           "phone_heldout_voices": sorted({c.voice for c in held}),
           "frame_acc_majority": float(np.mean(np.concatenate(te_y) == np.bincount(y).argmax())),
           "frame_acc_linear_probe": float(np.mean(np.concatenate(pred) == np.concatenate(te_y))),
           "per_linear_probe": per(pred, sequences, silence)}
    if enc.net.phone_head is not None:
        with torch.no_grad():
            own = [enc.net.phone_logits(torch.from_numpy(f)[None])[0, :, 1:].argmax(-1).numpy() + 1 for f in te_x]
        out["frame_acc_own_head"] = float(np.mean(np.concatenate(own) == np.concatenate(te_y)))
        out["per_own_head"] = per(own, sequences, silence)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path("data/corpus-heldout")
    p.add_argument("--corpus", type=Path, default=default if default.is_dir() else Path("data/content-espeak-heldout"))
    p.add_argument("--weights", type=Path, default=None, help="builtin weights (default: shipped)")
    p.add_argument("--name", default="builtin", help="builtin (v1) or phonetic (v2): which shipped weights")
    p.add_argument("--phones", action="store_true", help="also the phone error rate (see 4.)")
    p.add_argument("--train-corpus", type=Path, default=Path("data/corpus-hours"), help="fits the PER probe")
    p.add_argument("--max-clips", type=int, default=400)
    p.add_argument("--shifted-per-voice", type=int, default=4, help="queries per voice given a WORLD shift")
    p.add_argument("--json", type=Path, default=Path("data/content-probe.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    clips = load_corpus(a.corpus)[: a.max_clips]
    enc = BuiltinContentEncoder.load(a.weights, a.name)
    feats = {"mel": [], "content": [], "content_prevq": []}
    shifted = {"mel": [], "content": []}
    voices, groups = [], []
    for clip in clips:
        x, _ = load_audio(clip.audio_path)
        x = 0.5 * x / max(1e-4, float(np.abs(x).max()))
        mel = log_mel(x)
        with torch.no_grad():
            z, content, _, _ = enc.net.encode(mel)
        feats["mel"].append(mel[0].numpy())
        feats["content"].append(content[0].numpy())
        feats["content_prevq"].append(z[0].T.numpy())
        voices.append(clip.voice)
        groups.append(clip.parallel_group)
        if clip.parallel_group and voices.count(clip.voice) <= a.shifted_per_voice:
            xs = world_shift(x, 2 ** (5 / 12), 1.15)
            shifted["mel"].append(log_mel(xs)[0].numpy())
            shifted["content"].append(enc(torch.from_numpy(xs))[0].numpy())
        else:
            shifted["mel"].append(None)
            shifted["content"].append(None)
    res: dict = {"corpus": str(a.corpus), "clips": len(clips), "voices": len(set(voices)),
                 "chance_speaker": 1 / len(set(voices)), "weights": str(a.weights or "shipped"),
                 "identity": enc.identity}
    for name, fs in feats.items():
        wins = [window_means(f, m) for f, m in zip(fs, feats["mel"], strict=True)]
        res[f"speaker_acc_{name}"] = speaker_probe(wins, voices)
    for name in ("mel", "content"):
        acc, chance = retrieval(feats[name], feats[name], voices, groups)
        res[f"retrieval_{name}"], res["chance_retrieval"] = acc, chance
        q_groups = [g if s is not None else "" for s, g in zip(shifted[name], groups, strict=True)]
        q = [s if s is not None else f for s, f in zip(shifted[name], feats[name], strict=True)]
        res[f"retrieval_shifted_{name}"] = retrieval(q, feats[name], voices, groups, q_groups)[0]
    for name in ("mel", "content"):
        res[f"same_text_distance_{name}"] = text_distance(feats[name], voices, groups,
                                                          [f"{c.language}/{c.kind}" for c in clips])
    if a.phones:
        res.update(phone_figures(enc, a.train_corpus, clips))
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res, indent=1))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.json, json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
