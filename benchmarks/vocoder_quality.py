"""Vocoder resynthesis quality on held-out clips: ground-truth log-mel + F0 -> waveform, compared with the input.

Figures per system (builtin vocoder, WORLD copy-synthesis as the floor, optionally an NSF-HiFiGAN folder):
  PESQ-wb      pesq at 16 kHz (both signals resampled with soxr), higher is better; target >= 3.3
  F0 cents     median |1200 log2(f0_out / f0_in)| over frames voiced in both (the evaluation's judge, harvest, on the output)
  DNSMOS OVRL  speechmos dnsmos at 16 kHz, output minus input (target >= -0.2)
  RTF          vocoder forward time / audio duration on CPU with --threads torch threads (target <= 0.01)

    python benchmarks/vocoder_quality.py --corpus data/corpus-heldout --json data/vocoder-bench.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import soxr
import torch

from melisma.atomic import write_text_atomic
from melisma.audio.constants import FRAME_PERIOD_MS, SAMPLE_RATE
from melisma.corpus import ClipRecord, load_corpus
from melisma.evaluate.pitch import extract_f0 as judged_f0
from melisma.features.mel import log_mel
from melisma.features.pitch import model_pitch, world_f0


def pesq_wb(ref: np.ndarray, out: np.ndarray) -> float:
    from pesq import pesq

    r = soxr.resample(ref, SAMPLE_RATE, 16000)
    o = soxr.resample(out, SAMPLE_RATE, 16000)
    return float(pesq(16000, r, o, "wb"))


def dnsmos_ovrl(x: np.ndarray) -> float:
    from speechmos import dnsmos

    x16 = np.clip(soxr.resample(x, SAMPLE_RATE, 16000), -1.0, 1.0).astype(np.float32)
    return float(dnsmos.run(x16, 16000)["ovrl_mos"])


def f0_cents(f0_in: np.ndarray, out: np.ndarray) -> float:
    f0_out = judged_f0(out, SAMPLE_RATE)  # the evaluation's judge tracker (harvest)
    n = min(len(f0_in), len(f0_out))
    both = (f0_in[:n] > 0) & (f0_out[:n] > 0)
    if not both.any():
        return float("nan")
    return float(np.median(np.abs(1200 * np.log2(f0_out[:n][both] / f0_in[:n][both]))))


def world_copy_synthesis(audio: np.ndarray) -> np.ndarray:
    import pyworld

    x = audio.astype(np.float64)
    f0, t = world_f0(x, SAMPLE_RATE, "harvest", refine=False)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    y = pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, FRAME_PERIOD_MS)[: len(x)]
    return np.pad(y, (0, len(x) - len(y))).astype(np.float32)


def run_vocoder(vocoder, mel: torch.Tensor, f0: np.ndarray) -> tuple[np.ndarray, float]:
    torch.manual_seed(0)
    with torch.inference_mode():
        t = time.perf_counter()
        out = vocoder(mel, torch.from_numpy(f0)[None])
        dt = time.perf_counter() - t
    return out[0].numpy(), dt


def evaluate_clip(clip: ClipRecord, systems: dict, dnsmos: bool) -> dict:
    from melisma.audio.io import load_audio

    audio, _ = load_audio(clip.audio_path, SAMPLE_RATE)
    n = len(audio)
    f0 = clip.load_f0(n // 512 + 1) if clip.has_f0 else model_pitch().extract(audio, SAMPLE_RATE)
    mel = log_mel(torch.from_numpy(audio))
    row = {"clip": clip.audio_path.stem, "seconds": n / SAMPLE_RATE}
    if dnsmos:
        row["dnsmos_input"] = dnsmos_ovrl(audio)
    for name, vocoder in systems.items():
        if vocoder is None:
            t = time.perf_counter()
            out = world_copy_synthesis(audio)
            dt = time.perf_counter() - t
        else:
            out, dt = run_vocoder(vocoder, mel, f0)
        out = out[:n]
        row[f"{name}_pesq"] = pesq_wb(audio, out)
        row[f"{name}_cents"] = f0_cents(f0, out)
        row[f"{name}_rtf"] = dt / (n / SAMPLE_RATE)
        if dnsmos:
            row[f"{name}_dnsmos_delta"] = dnsmos_ovrl(out) - row["dnsmos_input"]
    return row


def rtf_long(vocoder, seconds: float = 10.0, repeats: int = 3) -> float:
    """Best-of-``repeats`` RTF on ``seconds`` of synthetic input (steadier than per-clip timings)."""
    frames = int(seconds * SAMPLE_RATE / 512)
    mel = torch.randn(1, 128, frames) - 5
    f0 = torch.full((1, frames), 220.0)
    with torch.inference_mode():
        vocoder(mel, f0)
        best = min(_timed(vocoder, mel, f0) for _ in range(repeats))
    return best / (frames * 512 / SAMPLE_RATE)


def _timed(vocoder, mel, f0) -> float:
    t = time.perf_counter()
    vocoder(mel, f0)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="+", required=True, help="corpus folders with corpus.json (held-out voices)")
    ap.add_argument("--weights", default=None, help="builtin weights (default: the shipped ones)")
    ap.add_argument("--nsf-hifigan", default=None, help="also evaluate this openvpi NSF-HiFiGAN folder")
    ap.add_argument("--exclude-voices", nargs="*", default=[], help="skip clips whose voice is in this list")
    ap.add_argument("--max-clips", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-world", action="store_true")
    ap.add_argument("--no-dnsmos", action="store_true")
    ap.add_argument("--json", default=None, help="write figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from melisma.vocoder import get_vocoder

    systems: dict = {"builtin": get_vocoder("builtin", args.weights)}
    if args.nsf_hifigan:
        systems["nsf-hifigan"] = get_vocoder("nsf-hifigan", args.nsf_hifigan)
    if not args.no_world:
        systems["world"] = None
    entries = []
    for corpus in args.corpus:
        entries += [c for c in load_corpus(corpus) if c.voice not in args.exclude_voices]
    rows = [evaluate_clip(c, systems, not args.no_dnsmos) for c in entries[: args.max_clips]]
    summary = {"clips": len(rows), "seconds": sum(r["seconds"] for r in rows), "threads": args.threads}
    for name, vocoder in systems.items():
        summary[name] = {k: float(np.nanmean([r[f"{name}_{k}"] for r in rows]))
                         for k in ("pesq", "cents", "rtf") + (() if args.no_dnsmos else ("dnsmos_delta",))}
        if vocoder is not None:
            summary[name]["rtf_10s"] = rtf_long(vocoder)
    if not args.no_dnsmos:
        summary["dnsmos_input"] = float(np.mean([r["dnsmos_input"] for r in rows]))
    print(f"{len(rows)} clips, {summary['seconds']:.0f} s, torch threads {args.threads}")
    print(f"{'system':<12} {'PESQ-wb':>8} {'F0 cents':>9} {'dDNSMOS':>8} {'RTF':>8} {'RTF 10s':>8}")
    for name in systems:
        s = summary[name]
        print(f"{name:<12} {s['pesq']:8.3f} {s['cents']:9.2f} {s.get('dnsmos_delta', float('nan')):8.3f} "
              f"{s['rtf']:8.4f} {s.get('rtf_10s', float('nan')):8.4f}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"summary": summary, "clips": rows}, indent=1))


if __name__ == "__main__":
    main()
