"""Load on ``melisma serve``: throughput and p50 / p99 latency of N = 1, 2, 4, 8 concurrent conversions of a
10 s clip, then a burst of twice the queue's capacity (every request must be answered: 200 or 429/503).

    python benchmarks/service_load.py [--voice festival-slt] [--workers 1] [--queue 8] [--rounds 3]

Starts a real service on a free loopback port (a temporary data dir), talks to it over HTTP.
Prints a table and writes data/benchmarks/service_load.json.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from service_client import Service  # the tests' client: a subprocess and stdlib HTTP

from melisma.atomic import write_text_atomic


def sung_wav(seconds: float, sr: int = 44100) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220.0 * 2 ** ((np.floor(t / 0.5) % 5) * 2 / 12 + 0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = sum(0.25 / k * np.sin(k * phase) for k in range(1, 10)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format="WAV")
    return buf.getvalue()


def burst(svc: Service, n: int, body: bytes, voice: str) -> tuple[float, list[tuple[int, float]]]:
    """n concurrent conversions: (wall seconds, [(status, latency s)])."""
    def one(_: int) -> tuple[int, float]:
        t0 = time.monotonic()
        status, _, _ = svc.post_form("/v1/convert", {"voice": voice}, [("audio", "clip.wav", body)], timeout=600)
        return status, time.monotonic() - t0

    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    return time.monotonic() - t0, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", default="festival-slt")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=8, help="waiting places (capacity = workers + queue)")
    ap.add_argument("--rounds", type=int, default=3, help="bursts per N")
    ap.add_argument("--out", default="data/benchmarks/service_load.json")
    args = ap.parse_args()
    body = sung_wav(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(Path(tmp) / "data", "--workers", str(args.workers), "--queue", str(args.queue),
                      "--wait-seconds", "600").start()
        try:
            burst(svc, 1, body, args.voice)  # warm-up: the voice is loaded once
            rows = [measure(svc, n, body, args) for n in (1, 2, 4, 8)]
            overload = measure_overload(svc, body, args)
            health = svc.get_json("/healthz")[1]
        finally:
            svc.stop()
    print_table(rows, overload)
    res = {"clip_seconds": args.seconds, "voice": args.voice, "workers": args.workers, "queue": args.queue,
           "rounds": args.rounds, "concurrency": rows, "overload": overload, "alive_after": health["status"]}
    write_text_atomic(args.out, json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.out}")


def measure(svc: Service, n: int, body: bytes, args) -> dict:
    wall, lat, statuses = 0.0, [], []
    for _ in range(args.rounds):
        w, answers = burst(svc, n, body, args.voice)
        wall += w
        statuses += [s for s, _ in answers]
        lat += [t for s, t in answers if s == 200]
    ok = statuses.count(200)
    return {"n": n, "requests": len(statuses), "ok": ok, "throughput_per_s": round(ok / wall, 3),
            "audio_seconds_per_s": round(ok * args.seconds / wall, 2),
            "p50_s": round(float(np.percentile(lat, 50)), 3) if lat else None,
            "p99_s": round(float(np.percentile(lat, 99)), 3) if lat else None}


def measure_overload(svc: Service, body: bytes, args) -> dict:
    capacity = args.workers + args.queue
    wall, answers = burst(svc, 2 * capacity, body, args.voice)
    statuses = [s for s, _ in answers]
    return {"capacity": capacity, "sent": 2 * capacity, "answered": len(statuses),
            "status_counts": {str(s): statuses.count(s) for s in sorted(set(statuses))},
            "wall_s": round(wall, 2), "max_latency_s": round(max(t for _, t in answers), 3),
            "refusal_latency_max_s": round(max((t for s, t in answers if s != 200), default=0.0), 3)}


def print_table(rows: list[dict], overload: dict) -> None:
    print(f"{'N':>3} {'ok':>4} {'conv/s':>7} {'audio s/s':>9} {'p50 s':>7} {'p99 s':>7}")
    for r in rows:
        print(f"{r['n']:>3} {r['ok']:>4} {r['throughput_per_s']:>7} {r['audio_seconds_per_s']:>9} "
              f"{r['p50_s']:>7} {r['p99_s']:>7}")
    print(f"burst of {overload['sent']} (2x capacity {overload['capacity']}): {overload['status_counts']}, "
          f"all answered in {overload['wall_s']} s; refusals within {overload['refusal_latency_max_s']} s")


if __name__ == "__main__":
    main()
