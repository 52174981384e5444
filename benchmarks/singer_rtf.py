"""Real-time factor of the whole conversion pipeline (F0 + content + one-step student + vocoder) on this CPU.

    python benchmarks/singer_rtf.py [--pack VOICE.melisma] [--seconds 30] [--threads 1] [--steps 1]

Without --pack: the shipped base pack, else a random pack of the default size (speed does not depend on weights).
Prints the figures and writes data/benchmarks/singer_rtf.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic
from melisma.audio.constants import SAMPLE_RATE, n_frames


def sung_clip(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 220.0 * 2 ** ((np.floor(t / 0.5) % 5) * 2 / 12 + 0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    env = (np.sin(np.pi * (t % 2.0) / 2.0) > 0.1).astype(np.float32)
    return (env * sum(0.25 / k * np.sin(k * phase) for k in range(1, 10))).astype(np.float32)


def random_pack(path: Path, content_encoder: str, content_dim: int, vocoder: str) -> Path:
    from melisma.singer.model import SingerConfig, SingerNet
    from melisma.singer.voicepack import SingerStats, VoicePack, save_pack

    cfg = SingerConfig(content_dim=content_dim)
    net = SingerNet(cfg)
    return save_pack(VoicePack(cfg, ["x"], {"x": SingerStats(220.0, 150.0, 400.0)}, content_encoder, vocoder,
                               net.state_dict()), path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--out", default="data/benchmarks/singer_rtf.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from melisma.paths import BASE_PACK
    from melisma.singer.convert import load_voice

    if args.pack:
        pack = Path(args.pack)
    elif BASE_PACK.is_file():
        pack = BASE_PACK
    else:
        from melisma.content import get_content_encoder
        from melisma.vocoder import get_vocoder

        enc, voc = get_content_encoder("builtin"), get_vocoder("builtin")
        pack = random_pack(Path("data/benchmarks/_rtf_pack.melisma"), enc.identity, enc.dim, voc.identity)
    voice = load_voice(pack)
    enc, voc = voice.content_encoder, voice.vocoder
    audio = sung_clip(args.seconds)
    voice.convert(audio[: SAMPLE_RATE * 2], SAMPLE_RATE)  # warm-up
    t0 = time.perf_counter()
    out, _ = voice.convert(audio, SAMPLE_RATE, steps=args.steps)
    total = time.perf_counter() - t0
    stages = {}
    x = torch.from_numpy(audio)[None]
    with torch.no_grad():
        t = time.perf_counter()
        f0 = voice.features.f0(audio)
        stages["f0"] = time.perf_counter() - t
        t = time.perf_counter()
        content = enc(x)
        stages["content"] = time.perf_counter() - t
        f0_t = torch.from_numpy(f0)[None]
        loud = torch.zeros(1, n_frames(audio.size)) - 20
        t = time.perf_counter()
        from melisma.singer.consistency import consistency_sample
        from melisma.singer.model import denormalise_mel

        cond = voice.student.condition(content, f0_t, loud, torch.ones(1, voice.pack.config.n_singers)
                                       / voice.pack.config.n_singers)
        mel = denormalise_mel(consistency_sample(voice.student, cond, 128, args.steps))
        stages["singer_model"] = time.perf_counter() - t
        t = time.perf_counter()
        voc(mel, f0_t)
        stages["vocoder"] = time.perf_counter() - t
    res = {"seconds": args.seconds, "threads": args.threads, "steps": args.steps, "rtf": total / args.seconds,
           "stage_rtf": {k: v / args.seconds for k, v in stages.items()}, "pack": str(pack),
           "params": sum(p.numel() for p in voice.student.parameters())}
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
