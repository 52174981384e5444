"""``melisma convert INPUT -v VOICE -o OUTPUT``: convert a vocal (file or folder) to a voice."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = ("wav", "flac", "ogg", "mp3")


def add_voice_options(p: argparse.ArgumentParser) -> None:
    """Options shared by convert and cover."""
    p.add_argument("-v", "--voice", default=None,
                   help="voice pack file, built-in voice name, or saved speaker embedding (`melisma voices "
                        "embed`; a mix a:0.6,b:0.4 of them)")
    p.add_argument("--reference", action="append", default=[], metavar="REF",
                   help="one-shot: sing in the voice of this clip (no training); repeat to average several")
    p.add_argument("--singer", default=None, help="singer of a multi-singer pack, or a mix: a:0.7,b:0.3")
    p.add_argument("-t", "--transpose", type=float, default=0.0, help="semitones to shift the melody")
    p.add_argument("--auto-transpose", action="store_true", help="move the melody into the singer's range")
    p.add_argument("--steps", type=int, default=1, help="sampling steps (1 = one-step student)")
    p.add_argument("--sampler", choices=("consistency", "teacher"), default="consistency",
                   help="for --steps > 1: multi-step consistency sampling or the EDM teacher")
    p.add_argument("--f0", default="dio",
                   help="pitch extractor: dio (default, fastest, with voicing recovery), fcpe (neural, the most "
                        "accurate pitch; pipeline about 2x slower), harvest, crepe")
    p.add_argument("--sample-rate", type=int, default=None, help="output rate in Hz (default 44100)")
    p.add_argument("--chunk-seconds", type=float, default=30.0, help="longest chunk converted at once")
    p.add_argument("--seed", type=int, default=0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a vocal (file or folder) to a voice",
                       description="Convert a dry vocal, or every audio file of a folder, to a voice.")
    p.add_argument("input", help="audio file or folder")
    p.add_argument("-o", "--output", required=True, help="output file (or folder when INPUT is a folder)")
    add_voice_options(p)
    p.add_argument("--format", choices=FORMATS, default=None, help="output format (default: from -o, else wav)")
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch",
                   help="onnx: -v is a 'melisma export' folder, run on onnxruntime without torch")
    p.add_argument("--threads", type=int, default=None, help="onnx engine: onnxruntime threads (default: cores)")
    p.add_argument("--timings", type=Path, default=None, metavar="JSON",
                   help="write the conversion seconds and the transposition applied to each output; "
                        "'melisma evaluate --rtf-json' reads it (speed, and the intended F0)")
    p.set_defaults(func=run)


def voice_kwargs(args: argparse.Namespace) -> dict:
    return dict(transpose=args.transpose, auto_transpose=args.auto_transpose, steps=args.steps,
                sampler=args.sampler, singer=args.singer, f0=args.f0, output_sr=args.sample_rate,
                max_chunk_s=args.chunk_seconds, seed=args.seed)


def plan_outputs(src: Path, dst: Path, fmt: str | None) -> list[tuple[Path, Path]]:
    """(input, output) pairs; refuses to write over an input."""
    from melisma.atomic import check_output_file, check_output_folder
    from melisma.audio.io import audio_files_below
    from melisma.errors import MelismaError

    if not src.exists():
        raise MelismaError(f"{src}: no such file or folder")
    if src.is_dir():
        files = audio_files_below(src, recursive=False)
        if not files:
            raise MelismaError(f"{src}: no audio files in this folder")
        if dst.exists() and not dst.is_dir():
            raise MelismaError(f"{dst}: INPUT is a folder, so -o must be a folder")
        pairs = [(f, dst / f"{f.stem}.{fmt or 'wav'}") for f in files]
    else:
        out = dst / f"{src.stem}.{fmt or 'wav'}" if dst.is_dir() else dst
        if fmt:
            out = out.with_suffix(f".{fmt}")
        elif not out.suffix:
            out = out.with_suffix(".wav")
        pairs = [(src, out)]
    for a, b in pairs:
        if b.exists() and b.resolve() == a.resolve():
            raise MelismaError(f"{b}: output would overwrite the input")
        if b.suffix.lstrip(".").lower() not in FORMATS:
            raise MelismaError(f"{b}: unsupported output format {b.suffix!r} (use {', '.join(FORMATS)})")
    if src.is_dir():
        check_output_folder(dst)
    else:
        check_output_file(pairs[0][1])
    return pairs


def check_output_options(path: Path, args: argparse.Namespace) -> None:
    """Refuse options no conversion could honour, before the voice is loaded or any audio converted."""
    from melisma.audio.constants import SAMPLE_RATE
    from melisma.audio.io import check_output_rate
    from melisma.singer.options import check_convert_options

    check_output_rate(path, args.sample_rate or SAMPLE_RATE)
    check_convert_options(args.transpose, args.steps, args.sampler, args.chunk_seconds)


def open_voice(args: argparse.Namespace) -> Any:
    """The voice ``-v`` names (a pack, a built-in voice, saved speaker embeddings; with ``--engine onnx`` an
    export folder, as an ``OnnxVoice`` that never imports torch) or ``--reference`` gives."""
    from melisma.errors import MelismaError

    onnx = getattr(args, "engine", "torch") == "onnx"
    if args.reference:
        if args.voice:
            raise MelismaError("give -v VOICE or --reference REF, not both")
        if onnx:
            raise MelismaError("--reference runs on the torch engine: leave out --engine onnx")
        from melisma.oneshot import reference_voice

        return reference_voice(args.reference, f0=args.f0)
    if not args.voice:
        raise MelismaError("give a voice: -v VOICE (a voice pack or saved speaker embedding) or --reference REF")
    if onnx:
        from melisma.onnx.runtime import load_onnx_voice

        return load_onnx_voice(args.voice, threads=args.threads, f0=args.f0)
    from melisma.oneshot import speaker_voice
    from melisma.singer.convert import load_voice

    voice = speaker_voice(args.voice, f0=args.f0)
    return voice if voice is not None else load_voice(args.voice, f0=args.f0)


def run(args: argparse.Namespace) -> int:
    from melisma.audio.io import load_audio, probe_audio, save_audio
    from melisma.evaluate.speed import real_time_factor, timed
    from melisma.evaluate.timings import write_timings
    from melisma.progress import say, track
    from melisma.singer.streaming import STREAM_ABOVE_S, convert_file

    pairs = plan_outputs(Path(args.input), Path(args.output), args.format)
    check_output_options(pairs[0][1], args)
    voice = open_voice(args)
    kwargs = voice_kwargs(args)
    timings: dict[str, dict[str, float]] = {}
    for src, dst in (track(pairs, "converting") if len(pairs) > 1 else pairs):
        seconds = probe_audio(src).duration
        if seconds > STREAM_ABOVE_S:  # long inputs: decoded, converted and written chunk by chunk
            applied, took = timed(convert_file, voice, src, dst, **kwargs)
        else:
            audio, sr = load_audio(src, None)
            done, took = timed(voice.convert_detailed, audio, sr, **kwargs)
            save_audio(dst, done.audio, done.sr)
            applied = done.transpose
        timings[str(dst)] = {"seconds": took, "transpose": applied}
        shift = f", transposed {applied:+g}" if applied else ""
        say(f"wrote {dst} (real-time factor {real_time_factor(took, seconds):.3f}{shift})")
    if args.timings is not None:
        write_timings(args.timings, timings)
    return 0
