"""How well a multi-singer pack re-sings its own singers: held-out sung clips of each singer converted into that
same singer (no transposition), scored against the original with PESQ-wb, STOI and DNSMOS.

    python benchmarks/base_reconstruction.py [PACK ...] [--heldout data/corpus-heldout] [--per-voice 3]

PACK defaults to the shipped base; give several (e.g. the previous base from git) to compare them on the same
clips. The singers scored are the held-out corpus's voice folders that are singers of the pack (for the base:
its companions kokoro-jf_alpha, kokoro-jm_kumo, piper-joe, festival-ked). Writes
data/benchmarks/base_reconstruction.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("packs", nargs="*", type=Path)
    ap.add_argument("--heldout", type=Path, default=Path("data/corpus-heldout"))
    ap.add_argument("--per-voice", type=int, default=3)
    ap.add_argument("--json", type=Path, default=Path("data/benchmarks/base_reconstruction.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from melisma.atomic import write_text_atomic
    from melisma.audio.io import load_audio
    from melisma.corpus import ClipRecord, load_corpus
    from melisma.evaluate import evaluate_clips
    from melisma.paths import BASE_PACK
    from melisma.singer.convert import load_voice

    clips = load_corpus(args.heldout)
    results = {}
    for pack in args.packs or [BASE_PACK]:
        voice = load_voice(pack)
        own = [c for c in clips if c.kind == "sung" and c.voice_dir.name in voice.singers]
        by_singer: dict[str, list[ClipRecord]] = {}
        for c in own:
            by_singer.setdefault(c.voice_dir.name, []).append(c)
        outs, originals = [], []
        for singer, sung in sorted(by_singer.items()):
            for c in sung[: args.per_voice]:
                audio, sr = load_audio(c.audio_path)
                outs.append((voice.convert(audio, sr, singer=singer)[0], sr))
                originals.append(str(c.audio_path))
        res = evaluate_clips(outs, originals=originals, metrics=("intrusive", "dnsmos"))
        results[str(pack)] = {"singers": sorted(by_singer), "clips": len(outs),
                              **{k: round(v.mean, 3) for k, v in res.aggregate.items()}}
        print(json.dumps({str(pack): results[str(pack)]}, indent=1), flush=True)
    write_text_atomic(args.json, json.dumps(results, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
