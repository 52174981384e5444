"""Whole-pipeline speed of ``melisma convert`` on this CPU: a 3.5-minute sung input through each engine, per stage.

    nice -n 5 python benchmarks/speed.py [--voice festival-slt] [--threads 2] [--engines torch,onnx,onnx-int8,...]
                                         [--minutes 3.5] [--hour-minutes 60] [--no-hour]

The input is the bundled demo vocal looped (written once under data/benchmarks/speed/). Each engine runs in its own
process (so its peak RSS and its imports are its own):

- ``warm``: voice loaded and warmed up on 2 s, then decode -> convert -> write of the whole input, timed per stage
  by wrapping the stage functions (pitch, content, loudness, singer, vocoder; ``other`` is chunking, crossfades,
  resampling and Python);
- ``cold``: ``python -m melisma convert ...`` as a user runs it: start-up, imports, model load included.

With ``--repeat N`` the engines run N times, interleaved, and the fastest run of each is reported (the machine is
shared: the minimum is the best estimate of what the code costs). Inputs longer than ``STREAM_ABOVE_S`` go through ``melisma.singer.streaming.convert_file``, as in the CLI.

``--hour-minutes``: RTF and peak RSS of a warm conversion of a long input (default one hour), both engines.
``quality_first_60s``: melisma evaluate's target similarity, DNSMOS and pitch error of each engine's output (the
first minute), to show what a fast path costs against the torch reference path.
Prints a table and writes data/benchmarks/speed.json (load average before and after: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "data" / "benchmarks" / "speed"
STAGES = ("decode", "pitch", "content", "loudness", "singer", "vocoder", "write")


def looped_input(minutes: float, path: Path) -> Path:
    """The demo vocal looped to ``minutes`` (FLAC, 44.1 kHz), written block by block (an hour never sits in
    memory whole)."""
    import soundfile as sf

    from melisma.audio.io import load_audio
    from melisma.paths import DEMO

    if path.is_file():
        return path
    vocal, sr = load_audio(DEMO / "demo-vocal.ogg")
    total = int(minutes * 60 * sr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.flac")
    with sf.SoundFile(str(tmp), "w", sr, 1, format="FLAC") as f:
        written = 0
        while written < total:
            block = vocal[: total - written]
            f.write(block)
            written += block.size
    tmp.replace(path)
    return path


def exports(voice: str) -> dict[str, Path]:
    """The voice exported as float, int8 and float with dio's speed 2 (once)."""
    from melisma.onnx.export import export_voice

    out = {}
    for name, quantize, speed in (("onnx", None, 1), ("onnx-int8", "int8", 1), ("onnx-pitch2", None, 2)):
        folder = WORK / f"{voice}-{name}"
        if not (folder / "manifest.json").is_file():
            export_voice(voice, folder, quantize=quantize, pitch_speed=speed)
        out[name] = folder
    return out


def timed_stage(times: dict[str, float], stage: str, fn: Any) -> Any:
    """``fn`` that adds its wall seconds to ``times[stage]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[stage] = times.get(stage, 0.0) + time.perf_counter() - start

    return wrapper


def instrument(voice: Any, engine: str, times: dict[str, float]) -> None:
    """Wrap the stage functions of a loaded voice so each call is timed into ``times``."""
    pitch = voice.features.pitch
    pitch.extract = timed_stage(times, "pitch", pitch.extract)
    voice.features.loudness = timed_stage(times, "loudness", voice.features.loudness)
    if engine == "torch":
        voice.features.content = timed_stage(times, "content", voice.features.content)
        voice.student.encoder.forward = timed_stage(times, "singer", voice.student.encoder.forward)
        voice.student.denoiser.forward = timed_stage(times, "singer", voice.student.denoiser.forward)
        voice.vocoder.forward = timed_stage(times, "vocoder", voice.vocoder.forward)
        return
    import melisma.onnx.runtime as rt

    rt.log_mel_np = timed_stage(times, "content", rt.log_mel_np)  # type: ignore[assignment]
    rt.synthesize = timed_stage(times, "vocoder", rt.synthesize)  # type: ignore[assignment]
    run = voice._run
    voice._run = lambda graph, **feeds: timed_stage(times, graph, run)(graph, **feeds)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One engine, one input, in this process: warm-up, then the timed decode -> convert -> write."""
    from melisma.audio.io import load_audio, probe_audio, save_audio
    from melisma.singer.streaming import STREAM_ABOVE_S, convert_file

    if args.engine == "torch":
        import torch

        torch.set_num_threads(args.threads)
        from melisma.singer.convert import load_voice

        voice = load_voice(args.voice)
    else:
        from melisma.onnx.runtime import load_onnx_voice

        voice = load_onnx_voice(args.voice, threads=args.threads)
    warm, _ = load_audio(args.input, duration=2.0)
    voice.convert(warm, 44100)
    times: dict[str, float] = {}
    instrument(voice, args.engine, times)
    seconds = probe_audio(args.input).duration
    start = time.perf_counter()
    if seconds > STREAM_ABOVE_S:  # as the CLI does: decode, convert and write chunk by chunk
        convert_file(voice, args.input, args.output)
    else:
        audio, sr = timed_stage(times, "decode", load_audio)(args.input, None)
        out = voice.convert_detailed(audio, sr)
        timed_stage(times, "write", save_audio)(args.output, out.audio, out.sr)
    total = time.perf_counter() - start
    times["other"] = total - sum(times.values())
    return {"engine": args.engine, "audio_s": seconds, "wall_s": total, "rtf": total / seconds,
            "stages_s": times, "stage_rtf": {k: v / seconds for k, v in times.items()},
            "peak_rss_mb": peak_rss_mb(),
            "threads": args.threads, "torch_imported": "torch" in sys.modules}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM (getrusage's ru_maxrss would count the RSS of the parent
    that forked this worker, which Linux carries over an exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(engine: str, voice: str, src: Path, threads: int, label: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", engine, "--voice", voice, "--input", str(src),
           "--output", str(WORK / f"out-{engine}-{label}.wav"), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(threads), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_cold(engine: str, voice: str, src: Path, threads: int, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "melisma", "-q", "convert", str(src), "-v", voice, "-o",
           str(WORK / f"cold-{engine}.wav")]
    if engine != "torch":
        cmd += ["--engine", "onnx", "--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, env=env(threads), check=True)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "rtf": wall / seconds}


def quality(engines: list[str], voice: str, song: Path, seconds: float) -> dict[str, Any]:
    """``melisma evaluate``'s similarity, pitch and DNSMOS of the first ``seconds`` of each engine's output (the
    warm runs' files), against a torch rendition of the demo vocal by the same voice (seed 1) as the target."""
    from melisma.audio.io import load_audio
    from melisma.evaluate import evaluate_clips
    from melisma.paths import DEMO
    from melisma.singer.convert import load_voice

    vocal, sr = load_audio(DEMO / "demo-vocal.ogg")
    target = load_voice(voice).convert(vocal, sr, seed=1, transpose=2.0)
    source = load_audio(song, duration=seconds)
    clips = [load_audio(WORK / f"out-{kind(e)}-{e}.wav", duration=seconds) for e in engines]
    result = evaluate_clips(clips, [target], sources=[source] * len(clips), metrics=("similarity", "pitch", "dnsmos"))
    keys = ("target_similarity", "dnsmos_ovrl", "dnsmos_sig", "cents_error_median", "vuv_agreement")
    return {e: {k: getattr(c, k) for k in keys} for e, c in zip(engines, result.clips, strict=True)}


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the lowest warm RTF (the least disturbed by other work), its cold run the fastest one, and
    every run's RTF."""
    best = dict(min(runs, key=lambda r: r["warm"]["rtf"]))
    best["cold"] = min((r["cold"] for r in runs), key=lambda c: c["rtf"])
    best["all_warm_rtf"] = [r["warm"]["rtf"] for r in runs]
    return best


def kind(engine: str) -> str:
    return "torch" if engine == "torch" else "onnx"


def env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": str(ROOT / "src")}


def table(results: dict[str, Any]) -> str:
    head = (f"{'engine':<12} {'RTF':>7} {'x torch':>7} {'cold':>7} {'peak MB':>8} "
            + " ".join(f"{s:>8}" for s in (*STAGES, "other")))
    rows = [head]
    base = results.get("torch", {}).get("warm", {}).get("rtf", float("nan"))
    for name, r in results.items():
        w = r["warm"]
        stages = " ".join(f"{w['stage_rtf'].get(s, 0.0):8.4f}" for s in (*STAGES, "other"))
        rows.append(f"{name:<12} {w['rtf']:7.4f} {base / w['rtf']:7.2f} {r['cold']['rtf']:7.4f} "
                    f"{w['peak_rss_mb']:8.0f} {stages}")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", default="festival-slt")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--engines", default="torch,onnx,onnx-int8,onnx-pitch2")
    ap.add_argument("--minutes", type=float, default=3.5)
    ap.add_argument("--hour-minutes", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine (interleaved); the fastest is reported")
    ap.add_argument("--no-hour", action="store_true")
    ap.add_argument("--no-quality", action="store_true", help="skip melisma evaluate's scores of the outputs")
    ap.add_argument("--hour-engines", default="onnx", help="engines run on the long input (torch,onnx)")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "benchmarks" / "speed.json")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--input", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--output", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.engine = args.worker
        print(json.dumps(worker(args)))
        return
    from melisma.atomic import write_text_atomic

    load_before = os.getloadavg()
    song = looped_input(args.minutes, WORK / f"song-{args.minutes:g}min.flac")
    seconds = args.minutes * 60
    folders = exports(args.voice)
    engines = args.engines.split(",")
    voices = {e: args.voice if e == "torch" else str(folders[e]) for e in engines}
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    for _ in range(args.repeat):  # engines interleaved, so a busy spell of the shared machine hits them alike
        for engine in engines:
            runs[engine].append({"warm": run_worker(kind(engine), voices[engine], song, args.threads, engine),
                                 "cold": run_cold(kind(engine), voices[engine], song, args.threads, seconds)})
            print(engine, json.dumps(runs[engine][-1]["warm"]["stage_rtf"]), flush=True)
    results = {e: fastest(r) for e, r in runs.items()}
    hour = None
    if not args.no_hour:
        long_input = looped_input(args.hour_minutes, WORK / f"song-{args.hour_minutes:g}min.flac")
        hour = {"minutes": args.hour_minutes}
        for engine in args.hour_engines.split(","):
            voice = args.voice if engine == "torch" else str(folders["onnx"])
            hour[engine] = run_worker(engine, voice, long_input, args.threads, "long")
    scores = None if args.no_quality else quality(list(results), args.voice, song, 60.0)
    report = {"input_minutes": args.minutes, "voice": args.voice, "threads": args.threads, "cpus": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "engines": results,
              "long_input": hour, "quality_first_60s": scores}
    print(table(results))
    for engine in args.hour_engines.split(",") if hour else ():
        r = hour[engine]
        print(f"{args.hour_minutes:g}-minute input ({engine}): RTF {r['rtf']:.4f}, peak RSS {r['peak_rss_mb']:.0f} MB")
    for engine, q in (scores or {}).items():
        print(f"{engine:<12} " + " ".join(f"{k} {v:.4f}" for k, v in q.items() if v is not None))
    print(f"load average before {load_before}, after {os.getloadavg()}")
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
