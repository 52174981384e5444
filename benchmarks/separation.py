"""Benchmark vocal separation on held-out songs: the unseparated mix, the DSP separator and the learned one.

    nice -n 5 python benchmarks/separation.py --heldout-corpus data/corpus-heldout
    python benchmarks/separation.py --data data/separation-test --weights runs/separator/best.safetensors

The test songs are generated like the training songs (``melisma.separation.data``, split "test": GM programs
and drum kits no training song uses, another seed stream) with only the corpus's held-out voices singing; each
is remixed at vocal-to-accompaniment ratios of -10, -5, 0 and +6 dB.  Scores: SI-SDR and SDR of the vocal and of
the accompaniment (mix - vocal) against the true stems; the estimated leakage (``LeakageMeter``) beside the true
vocal SDR; the bundled demo song (a held-out kokoro voice over numpy-synth backing) when present; separation RTF
on one thread; peak RSS of a child process separating a 10-minute song.  Prints a table and writes
data/benchmarks/separation.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from melisma.atomic import write_text_atomic
from melisma.audio.constants import SAMPLE_RATE
from melisma.prepare.separate import DspSeparator, LeakageMeter, LearnedSeparator, Separator
from melisma.prepare.synthetic import sdr_db
from melisma.separation.metrics import si_sdr_db

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (-10.0, -5.0, 0.0, 6.0)


def test_songs(data: Path, heldout_corpus: Path | None, n_songs: int, seconds: float):
    """(vocal, accompaniment) pairs of the test split, built into ``data`` first if it is not there."""
    from melisma.separation.data import build_separation_data, load_separation_data

    if not (data / "data.json").is_file():
        from melisma.corpus import load_corpus
        from melisma.corpus.heldout import is_held_out

        if heldout_corpus is None:
            sys.exit(f"{data} has no test songs: pass --heldout-corpus to build them")
        clips = [c for c in load_corpus(heldout_corpus) if is_held_out(c.voice)]
        build_separation_data(data, clips, n_songs, seed=1, split="test", duration_s=seconds)
    songs = load_separation_data(data)
    return songs, [(s.load("vocal"), s.load("accompaniment")) for s in songs]


def at_ratio(vocal: np.ndarray, acc: np.ndarray, ratio_db: float) -> tuple[np.ndarray, np.ndarray]:
    """The vocal rescaled so that its energy is ``ratio_db`` above the accompaniment's."""
    gain = np.sqrt((acc.astype(np.float64) ** 2).sum() / max((vocal.astype(np.float64) ** 2).sum(), 1e-20))
    return (vocal * gain * 10 ** (ratio_db / 20)).astype(np.float32), acc


def scores(est_vocal: np.ndarray | None, vocal: np.ndarray, acc: np.ndarray) -> dict[str, float]:
    """SI-SDR / SDR of both stems; ``est_vocal`` None is the unseparated baseline (the mix as each stem)."""
    mix = vocal + acc
    est_acc = mix if est_vocal is None else mix - est_vocal
    est_vocal = mix if est_vocal is None else est_vocal
    return {"vocal_si_sdr": si_sdr_db(est_vocal, vocal), "vocal_sdr": sdr_db(est_vocal, vocal),
            "acc_si_sdr": si_sdr_db(est_acc, acc), "acc_sdr": sdr_db(est_acc, acc)}


def leakage_db(mix: np.ndarray, est: np.ndarray) -> float:
    meter = LeakageMeter()
    meter.add(mix, est)
    return meter.db


def evaluate(methods: dict[str, Separator | None], pairs) -> tuple[dict, list[dict], dict]:
    """Mean scores per (method, ratio), per-song rows (for the leakage check) and separation CPU seconds per method
    (process time: what one idle core would take; the wall clock on a shared machine says more about the others)."""
    rows, seconds = [], {name: 0.0 for name in methods}
    for ratio in RATIOS:
        for k, (v0, a) in enumerate(pairs):
            vocal, acc = at_ratio(v0, a, ratio)
            mix = vocal + acc
            for name, sep in methods.items():
                t0 = time.process_time()
                est = None if sep is None else sep.separate(mix)
                seconds[name] += time.process_time() - t0
                rows.append({"method": name, "ratio_db": ratio, "song": k, **scores(est, vocal, acc),
                             "leakage_db": leakage_db(mix, est) if est is not None else None})
    table = {}
    for name in methods:
        for ratio in RATIOS:
            sel = [r for r in rows if r["method"] == name and r["ratio_db"] == ratio]
            table[f"{name}@{ratio:+g}"] = {m: round(float(np.mean([r[m] for r in sel])), 2)
                                           for m in ("vocal_si_sdr", "vocal_sdr", "acc_si_sdr", "acc_sdr")}
    return table, rows, seconds


def demo_song(methods: dict[str, Separator | None]) -> dict:
    from melisma.audio.io import load_audio
    from melisma.paths import DEMO

    if not (DEMO / "demo-song.ogg").is_file():
        return {}
    mix, vocal = load_audio(DEMO / "demo-song.ogg")[0], load_audio(DEMO / "demo-vocal.ogg")[0]
    n = min(mix.size, vocal.size)
    mix, vocal = mix[:n], vocal[:n]
    out = {}
    for name, sep in methods.items():
        est = None if sep is None else sep.separate(mix)
        out[name] = {k: round(v, 2) for k, v in scores(est, vocal, mix - vocal).items()}
    return out


MEMORY_CHILD = """
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from melisma.prepare.separate import LearnedSeparator
from melisma.separation.data import load_separation_data
songs = load_separation_data(sys.argv[1])
mix = np.concatenate([s.load("mix") for s in songs])
mix = np.resize(mix, int(float(sys.argv[2]) * 44100)).astype(np.float32)
sep = LearnedSeparator(sys.argv[3] if len(sys.argv) > 3 else None)
t0, c0 = time.perf_counter(), time.process_time()
vocal = sep.separate(mix)
print(time.perf_counter() - t0, time.process_time() - c0, mix.size / 44100)
"""


def long_song(data: Path, weights: str | None, minutes: float) -> dict:
    """Wall time and peak RSS (MB) of a child process separating ``minutes`` of the test songs looped."""
    cmd = [sys.executable, "-c", MEMORY_CHILD, str(data), str(minutes * 60)] + ([weights] if weights else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ,
                                                                   "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:200]}
    wall, cpu, dur = map(float, done.stdout.split())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"minutes": minutes, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rtf_wall": round(wall / dur, 4),
            "rtf_cpu": round(cpu / dur, 4), "peak_rss_mb": round(peak_mb)}


def leakage_check(rows: list[dict], method: str) -> dict:
    sel = [r for r in rows if r["method"] == method]
    est = np.array([r["leakage_db"] for r in sel])
    true = np.array([r["vocal_sdr"] for r in sel])
    return {"pearson_r_with_vocal_sdr": round(float(np.corrcoef(est, true)[0, 1]), 3),
            "mean_estimated_leakage_db": round(float(est.mean()), 2)}


def print_table(table: dict) -> None:
    print(f"{'method@ratio':18s} {'vocal SI-SDR':>12s} {'vocal SDR':>10s} {'acc SI-SDR':>11s} {'acc SDR':>8s}")
    for key, row in table.items():
        print(f"{key:18s} {row['vocal_si_sdr']:12.2f} {row['vocal_sdr']:10.2f} {row['acc_si_sdr']:11.2f} "
              f"{row['acc_sdr']:8.2f}")


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "separation-test"), help="test songs (built if absent)")
    ap.add_argument("--heldout-corpus", default=None, help="corpus with held-out voices, to build the test songs")
    ap.add_argument("--songs", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--weights", default=None, help="learned separator weights (default: the shipped ones)")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the memory test song (0: skip)")
    ap.add_argument("--out", default=str(ROOT / "data" / "benchmarks" / "separation.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = Path(args.data)
    _, pairs = test_songs(data, Path(args.heldout_corpus) if args.heldout_corpus else None, args.songs,
                          args.seconds)
    methods: dict[str, Separator | None] = {"mix": None, "dsp": DspSeparator(), "learned": LearnedSeparator(
        args.weights)}
    table, rows, seconds = evaluate(methods, pairs)
    audio_s = len(RATIOS) * sum(v.size for v, _ in pairs) / SAMPLE_RATE
    gain = [table[f"learned@{r:+g}"]["vocal_si_sdr"] - table[f"dsp@{r:+g}"]["vocal_si_sdr"] for r in RATIOS]
    acc_gain = [table[f"learned@{r:+g}"]["acc_si_sdr"] - table[f"dsp@{r:+g}"]["acc_si_sdr"] for r in RATIOS]
    result = {"songs": len(pairs), "song_seconds": args.seconds, "ratios_db": RATIOS, "table": table,
              "learned_minus_dsp_vocal_si_sdr_mean": round(float(np.mean(gain)), 2),
              "learned_minus_dsp_acc_si_sdr_mean": round(float(np.mean(acc_gain)), 2),
              "rtf_cpu_one_thread": {k: round(v / audio_s, 4) for k, v in seconds.items() if k != "mix"},
              "leakage_estimate": {m: leakage_check(rows, m) for m in ("dsp", "learned")},
              "demo_song": demo_song(methods)}
    if args.long_minutes > 0:
        result["long_song"] = long_song(data, args.weights, args.long_minutes)
    print_table(table)
    print(json.dumps({k: v for k, v in result.items() if k not in ("table",)}, indent=1))
    write_text_atomic(args.out, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
