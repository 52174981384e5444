"""Build the project's shared corpora under data/ and print/write their sizes and synthesis speed.

    nice -n 10 python benchmarks/build_corpus.py starter   # data/corpus-starter + data/corpus-heldout
    nice -n 10 python benchmarks/build_corpus.py train     # data/corpus-train (grows until stopped)
    python benchmarks/build_corpus.py probe                # synthesis rate per backend, full-build estimate
    nice -n 10 python benchmarks/build_corpus.py hours     # data/corpus-hours: >= 90 min, >= 30 voices
                                                           # (WORKERS=2: two language shards at once)
    python benchmarks/build_corpus.py stats DIR            # figures for an existing corpus (JSON too)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from melisma.atomic import write_text_atomic
from melisma.corpus import HELD_OUT_VOICES, build_corpus, load_corpus
from melisma.corpus.voices import all_offline_voices, default_voices

DATA = Path(__file__).resolve().parents[1] / "data"
COMPANIONS = ("kokoro:jf_alpha", "kokoro:jm_kumo", "piper:joe", "festival:ked")
# data/corpus-hours: every trainable offline voice family (36 voices), grown in rounds until it holds
# HOURS_MINUTES of audio; the seed fixes texts, melodies, blends and espeak variants
HOURS_SEED, HOURS_BLENDS, HOURS_ESPEAK, HOURS_MINUTES, HOURS_ROUND = 19, 10, 12, 90.0, 8


def stats(folder: Path) -> dict:
    """Minutes, voices, clips, groups, and synthesis seconds per minute of audio for each backend."""
    clips = load_corpus(folder)
    by_backend: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for c in clips:
        b = by_backend[f"{c.voice.split(':')[0]}/{c.kind}"]
        b[0] += c.duration
        b[1] += c.synth_seconds
    acc = [c.f0_accuracy for c in clips if c.f0_accuracy is not None]
    timed = [c for c in clips if c.phone_ends]
    return {
        "folder": str(folder), "clips": len(clips), "minutes": round(sum(c.duration for c in clips) / 60, 2),
        "voices": len({c.voice for c in clips}), "parallel_groups": len({c.parallel_group for c in clips}),
        "sung_clips": sum(c.kind == "sung" for c in clips),
        # WORLD-sung clips: share of frames voiced in both where harvest of the output is within 50 cents
        # of the imposed F0 (per clip), summarised over clips
        "sung_f0_within_50c_median": round(sorted(acc)[len(acc) // 2], 4) if acc else None,
        "sung_f0_within_50c_mean": round(sum(acc) / len(acc), 4) if acc else None,
        "sung_clips_at_least_90pc": round(sum(a >= 0.9 for a in acc) / len(acc), 4) if acc else None,
        "synth_s_per_audio_min": {k: round(60 * s / d, 1) for k, (d, s) in sorted(by_backend.items()) if d},
        "languages": sorted({c.language for c in clips}),
        "phone_sets": sorted({c.phone_set for c in clips if c.phone_set}),
        "clips_with_phone_times": len(timed),
        "sung_clips_with_time_map": sum(bool(c.time_map) for c in clips),
    }


def report(folder: Path) -> None:
    s = stats(folder)
    write_text_atomic(folder / "stats.json", json.dumps(s, indent=1))
    print(json.dumps(s, indent=1), flush=True)


def starter() -> None:
    build_corpus(DATA / "corpus-starter", default_voices(14, seed=1), clips_per_voice=8, parallel=4, seed=1)
    report(DATA / "corpus-starter")
    build_corpus(DATA / "corpus-heldout", list(HELD_OUT_VOICES) + list(COMPANIONS), clips_per_voice=10,
                 parallel=4, seed=2)
    report(DATA / "corpus-heldout")
    write_text_atomic(DATA / "READY-starter", "corpus-starter and corpus-heldout complete\n")


def train(n_voices: int = 48) -> None:
    """Rounds of 6 clips per voice, so every voice grows evenly and the corpus is usable at any time
    (the manifest is rewritten after every voice's clips; killing the job loses at most one group)."""
    voices = default_voices(n_voices, seed=3)
    per = 6
    while not (DATA / "STOP-train").exists() and per <= int(os.environ.get("MAX_CLIPS", "60")):
        build_corpus(DATA / "corpus-train", voices, clips_per_voice=per, parallel=4, seed=3, native_singing=True)
        report(DATA / "corpus-train")
        per += 6


def hours_voices() -> list[str]:
    return all_offline_voices(HOURS_BLENDS, HOURS_ESPEAK, HOURS_SEED)


def hours_shards(voices: list[str]) -> dict[str, list[str]]:
    """The hours voices in two language shards of about equal build time (measured: kokoro renders ja at
    ~1.5x the wall time per audio minute of the other backends, and holds 14 of the 36 voices)."""
    from melisma.corpus.voices import parse_voice

    lang = {v: parse_voice(v).language for v in voices}
    return {"ja": [v for v in voices if lang[v] == "ja"], "en-it-fi-cs": [v for v in voices if lang[v] != "ja"]}


def hours_shard(folder: Path, voices: list[str], minutes: float) -> None:
    """Rounds of ``HOURS_ROUND`` clips per voice (half spoken, half sung) until ``folder`` holds ``minutes``;
    each round extends the last, so a killed build resumes where it stopped."""
    per = HOURS_ROUND
    while True:
        t0 = time.perf_counter()
        clips = build_corpus(folder, voices, clips_per_voice=per, parallel=4, seed=HOURS_SEED)
        print(f"{folder.name}: {per} clips/voice in {time.perf_counter() - t0:.0f} s", flush=True)
        report(folder)
        if sum(c.duration for c in clips) / 60 >= minutes:
            return
        per += HOURS_ROUND


def merge_shards(folder: Path, shards: list[str]) -> None:
    """One manifest at ``folder`` over the shard corpora below it (paths and parallel groups prefixed by the
    shard), so ``load_corpus(folder)`` and ``trainable_clips([folder])`` see the whole corpus."""
    from dataclasses import replace

    from melisma.corpus import write_manifest

    merged = []
    for name in shards:
        for c in load_corpus(folder / name):
            merged.append(replace(c, path=f"{name}/{c.path}", f0=f"{name}/{c.f0}" if c.f0 else "",
                                  time_map=f"{name}/{c.time_map}" if c.time_map else "",
                                  parallel_group=f"{name}/{c.parallel_group}", root=str(folder.resolve())))
    assert len({c.id for c in merged}) == len(merged), "clip ids collide across shards"
    write_manifest(folder, merged, extra={"shards": shards})


def hours(folder: Path = DATA / "corpus-hours", workers: int = 2) -> None:
    """data/corpus-hours: every trainable offline voice family, >= HOURS_MINUTES of audio.  Built as
    language shards (each its own corpus below ``folder``, deterministic on its own), ``workers`` at a time
    in subprocesses, then merged into one manifest; the result does not depend on ``workers``."""
    import subprocess

    voices = hours_voices()
    shards = hours_shards(voices)
    procs: list[subprocess.Popen] = []
    for name, vs in shards.items():
        if len(procs) >= workers:
            procs.pop(0).wait()
        minutes = HOURS_MINUTES * len(vs) / len(voices)
        procs.append(subprocess.Popen([sys.executable, __file__, "hours-shard", str(folder / name), f"{minutes:.3f}",
                                       *vs]))
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a shard build failed")
    merge_shards(folder, list(shards))
    report(folder)
    clips = load_corpus(folder)
    write_text_atomic(folder / "READY", f"{len(clips)} clips, {len({c.voice for c in clips})} voices\n")


def probe(folder: Path = DATA / "corpus-hours-probe", per_voice: int = 4) -> dict:
    """Build a few full-length clips per backend (two voices each, from the hours voice list), timing each
    backend's build by wall clock, and extrapolate the full ``hours`` build from the measured rates."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    voices = hours_voices()
    by_backend: dict[str, list[str]] = defaultdict(list)
    for v in voices:
        by_backend[v.split(":")[0]].append(v)
    rates: dict[str, float] = {}
    for backend, vs in by_backend.items():
        sample = vs[:: max(1, len(vs) // 2)][:2]
        t0 = time.perf_counter()
        clips = build_corpus(folder / backend, sample, clips_per_voice=per_voice, parallel=2, seed=HOURS_SEED)
        wall = time.perf_counter() - t0
        minutes = sum(c.duration for c in clips) / 60
        rates[backend] = round(wall / minutes, 1)  # wall seconds (model loading included) per audio minute
        print(f"{backend}: {len(clips)} clips, {minutes:.2f} min audio in {wall:.0f} s -> {rates[backend]} s/min",
              flush=True)
    # the full build spreads HOURS_MINUTES evenly over voices (same clips per voice)
    share = {b: len(vs) / len(voices) for b, vs in by_backend.items()}
    estimate_s = sum(rates[b] * HOURS_MINUTES * share[b] for b in rates)
    shard_s = {}
    for name, vs in hours_shards(voices).items():
        shard_s[name] = sum(rates[v.split(":")[0]] * HOURS_MINUTES / len(voices) for v in vs)
    result = {"voices": len(voices), "voices_per_backend": {b: len(vs) for b, vs in by_backend.items()},
              "wall_s_per_audio_min": rates, "target_minutes": HOURS_MINUTES,
              "estimated_full_build_min": round(estimate_s / 60, 1),
              "estimated_shard_build_min": {k: round(v / 60, 1) for k, v in shard_s.items()},
              "estimated_two_worker_build_min": round(max(shard_s.values()) / 60, 1), "cpu": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    write_text_atomic(folder / "probe.json", json.dumps(result, indent=1))
    print(json.dumps(result, indent=1), flush=True)
    return result


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "starter"
    if what == "starter":
        starter()
    elif what == "train":
        train()
    elif what == "probe":
        probe()
    elif what == "hours":
        hours(workers=int(os.environ.get("WORKERS", "2")))
    elif what == "hours-shard":
        hours_shard(Path(sys.argv[2]), sys.argv[4:], float(sys.argv[3]))
    elif what == "stats":
        report(Path(sys.argv[2]))
