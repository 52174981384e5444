"""Do mel post-filters before the vocoder help a voice pack? Reconstructs the target's own held-out sung clips
with each filter and prints/writes similarity, DNSMOS and PESQ-wb/STOI (none of them is used by convert).

    python benchmarks/mel_postfilter.py data/ft-d/kokoro-jf_tebukuro.melisma gv:1.1 fine:0.3 formant:0.3

Filters on the (B, n_mels, T) natural-log mel: ``gv:A`` scales each bin's deviation from its time mean by A;
``fine:A`` adds A x the fine structure (mel minus its 9-bin smoothing over frequency); ``formant:A`` adds A x the
band between the 9- and 31-bin smoothings (formant peaks, no harmonic comb).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def smooth_over_bins(mel: torch.Tensor, width: int) -> torch.Tensor:
    """Moving average of width ``width`` (odd) over the mel bins of (B, n_mels, T), edges replicated."""
    b, n, t = mel.shape
    x = mel.transpose(1, 2).reshape(b * t, 1, n)
    x = torch.nn.functional.pad(x, (width // 2, width // 2), mode="replicate")
    return torch.nn.functional.avg_pool1d(x, width, stride=1).reshape(b, t, n).transpose(1, 2)


def post_filter(mel: torch.Tensor, kind: str, amount: float) -> torch.Tensor:
    if kind == "none":
        return mel
    if kind == "gv":
        mean = mel.mean(-1, keepdim=True)
        return mean + amount * (mel - mean)
    if kind == "fine":
        return mel + amount * (mel - smooth_over_bins(mel, 9))
    if kind == "formant":
        return mel + amount * (smooth_over_bins(mel, 9) - smooth_over_bins(mel, 31))
    raise SystemExit(f"unknown filter {kind!r}: use gv, fine or formant")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pack", type=Path)
    ap.add_argument("filters", nargs="*", help="KIND:AMOUNT, e.g. gv:1.1 fine:0.3 formant:0.3")
    ap.add_argument("--heldout", type=Path, default=Path("data/corpus-heldout"))
    ap.add_argument("--target", default="kokoro-jf_tebukuro")
    ap.add_argument("--json", type=Path, default=Path("data/benchmarks/mel_postfilter.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.atomic import write_text_atomic
    from melisma.audio.io import load_audio
    from melisma.corpus import load_corpus
    from melisma.evaluate import evaluate_clips, target_embedding_of
    from melisma.singer.convert import load_voice

    voice = load_voice(args.pack)
    clips = [c for c in load_corpus(args.heldout) if c.voice_dir.name == args.target]
    target = target_embedding_of([str(c.audio_path) for c in clips])
    own = [str(c.audio_path) for c in clips if c.kind == "sung"]
    vocoder, chosen = voice.vocoder, {"kind": "none", "amount": 0.0}

    def filtered_vocoder(mel, f0, generator=None):
        return vocoder(post_filter(mel, chosen["kind"], chosen["amount"]), f0, generator=generator)

    voice.vocoder = filtered_vocoder
    results = {}
    for spec in ["none:0", *args.filters]:
        kind, _, amount = spec.partition(":")
        chosen.update(kind=kind, amount=float(amount or 0))
        outs = [voice.convert(*load_audio(p)) for p in own]
        res = evaluate_clips(outs, target_embedding=target, originals=own,
                             metrics=("similarity", "intrusive", "dnsmos"))
        results[spec] = {k: round(v.mean, 4) for k, v in res.aggregate.items()}
        print(spec, results[spec], flush=True)
    write_text_atomic(args.json, json.dumps({"pack": str(args.pack), "clips": len(own), "results": results}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
