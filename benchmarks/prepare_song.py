"""Benchmark `melisma prepare`: separation SDR, and wall time / peak memory on a 3-minute song (and an hour).

    python benchmarks/prepare_song.py                  # SDR + 3-minute song with --separate dsp
    python benchmarks/prepare_song.py --hour none      # also a 60-minute file (memory must stay bounded)

The song is the bundled demo song (kokoro voice over a chord/drum backing, with its vocal stem) looped to
length; without the demo assets, the numpy synthetic song.  Prints figures and writes
data/benchmarks/prepare_song.json.  Peak memory is the max RSS of the `melisma prepare` child process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.atomic import write_text_atomic
from melisma.audio.constants import SAMPLE_RATE
from melisma.paths import DEMO
from melisma.prepare.separate import DspSeparator
from melisma.prepare.synthetic import sdr_db, synthetic_song

ROOT = Path(__file__).resolve().parents[1]


def stems() -> tuple[str, np.ndarray, np.ndarray]:
    """(name, mix, vocal) at SAMPLE_RATE: the demo song when bundled, else the synthetic song."""
    if (DEMO / "demo-song.ogg").is_file():
        from melisma.audio.io import load_audio

        mix, _ = load_audio(DEMO / "demo-song.ogg")
        vocal, _ = load_audio(DEMO / "demo-vocal.ogg")
        return "demo-song", mix, vocal
    song = synthetic_song()
    return "synthetic", song.mix, song.vocal


def separation_figures() -> dict:
    out = {}
    song = synthetic_song()
    cases = [("synthetic", song.mix, song.vocal)]
    if (DEMO / "demo-song.ogg").is_file():
        cases.append(stems())
    for name, mix, vocal in cases:
        t0 = time.perf_counter()
        est = DspSeparator().separate(mix)
        elapsed = time.perf_counter() - t0
        before, after = sdr_db(mix, vocal), sdr_db(est, vocal)
        out[name] = {"seconds": round(mix.size / SAMPLE_RATE, 2), "sdr_mix_db": round(before, 2),
                     "sdr_dsp_db": round(after, 2), "sdr_improvement_db": round(after - before, 2),
                     "rtf": round(elapsed / (mix.size / SAMPLE_RATE), 3)}
        print(f"dsp separation on {name}: SDR {before:.2f} -> {after:.2f} dB "
              f"(+{after - before:.2f}), RTF {out[name]['rtf']}")
    return out


def write_long_song(path: Path, minutes: float) -> None:
    """Loop the song to ``minutes`` and write it as 16-bit WAV block by block (bounded memory here too)."""
    _, mix, _ = stems()
    total = int(minutes * 60 * SAMPLE_RATE)
    with sf.SoundFile(str(path), "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
        written = 0
        while written < total:
            chunk = mix[: total - written]
            f.write(chunk)
            written += chunk.size


def run_prepare(song: Path, out: Path, method: str) -> dict:
    cmd = [sys.executable, "-m", "melisma", "-q", "prepare", str(song), "-o", str(out), "--separate", method]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the max over all children
        wall = time.perf_counter() - t0
        err.seek(0)
        if status != 0:
            raise SystemExit(f"prepare failed: {err.read().decode().strip()}")
    peak_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime  # CPU seconds: comparable when other jobs share the cores
    totals = json.loads((out / "manifest.json").read_text())["totals"]
    audio_s = sf.info(str(song)).duration
    result = {"command": " ".join(["melisma", "prepare", song.name, "-o", "DS", "--separate", method]),
              "audio_seconds": round(audio_s, 1), "wall_seconds": round(wall, 1), "rtf": round(wall / audio_s, 3),
              "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(peak_mb, 1), **totals}
    print(f"prepare {audio_s / 60:.1f} min ({method}): wall {wall:.1f} s (RTF {wall / audio_s:.3f}), "
          f"CPU {cpu:.1f} s, peak RSS {peak_mb:.0f} MB, {totals['clips_kept']} clips kept, {totals['clips_rejected']} set aside, "
          f"{totals['usable_minutes']} usable minutes")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hour", choices=("none", "dsp"), help="also prepare a 60-minute file with this method")
    parser.add_argument("--method", default="dsp", help="separation for the 3-minute song (default dsp)")
    args = parser.parse_args()
    results: dict = {"separation": separation_figures()}
    with tempfile.TemporaryDirectory(dir=ROOT / "data" if (ROOT / "data").is_dir() else None) as tmp:
        song = Path(tmp) / "song-3min.wav"
        write_long_song(song, 3.0)
        results["song_3min"] = run_prepare(song, Path(tmp) / "ds3", args.method)
        if args.hour:
            song.unlink()
            long_song = Path(tmp) / "song-60min.wav"
            write_long_song(long_song, 60.0)
            results["song_60min"] = run_prepare(long_song, Path(tmp) / "ds60", args.hour)
    out = ROOT / "data" / "benchmarks" / "prepare_song.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
