"""``melisma evaluate``: score converted clips (similarity, pitch, naturalness, MCD, PESQ/STOI, speed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from melisma.errors import MelismaError

HELP = "measure converted clips: speaker similarity, pitch error, DNSMOS, MCD, PESQ/STOI, speed"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP + ".")
    p.add_argument("converted", nargs="+", metavar="CONVERTED", help="converted clips to score")
    p.add_argument("--target-ref", nargs="+", default=[], metavar="REF",
                   help="clips of the target voice (speaker similarity)")
    p.add_argument("--source", nargs="+", metavar="SRC",
                   help="source clips, one per converted clip or one for all (intended F0, source similarity)")
    p.add_argument("--reference-f0", nargs="+", metavar="NPY",
                   help="true F0 .npy files (Hz on the shared grid, 0 = unvoiced) instead of the source's F0")
    p.add_argument("--parallel-ref", nargs="+", metavar="REF",
                   help="same text and melody sung by the target voice (mel-cepstral distortion)")
    p.add_argument("--original", nargs="+", metavar="ORIG",
                   help="reconstruction mode: the original recordings (PESQ-wb, STOI)")
    p.add_argument("--transpose", type=float, default=None, metavar="SEMITONES",
                   help="transpose used for the conversion: intended F0 = source F0 * 2^(t/12) "
                        "(default: what the --rtf-json timings file says of each clip, else 0)")
    p.add_argument("--judge-pitch", default="harvest", metavar="TRACKER",
                   help="pitch tracker that judges F0 (default harvest; dio, fcpe, crepe where installed)")
    p.add_argument("--rtf-json", type=Path, metavar="JSON",
                   help="the timings file of 'melisma convert --timings': conversion seconds (speed) and the "
                        "transposition of each clip, keyed by path or file name")
    p.add_argument("--metrics", default="all",
                   help="comma list of similarity,pitch,dnsmos,mcd,intrusive,speed (default all)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write per-clip and aggregate scores here")
    p.add_argument("--report", type=Path, metavar="DIR", help="write an HTML report with plots and players")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.audio.io import probe_audio
    from melisma.evaluate import METRICS, evaluate_clips
    from melisma.evaluate.timings import read_timings
    from melisma.progress import say

    metrics = METRICS if args.metrics == "all" else tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    for path in [*args.converted, *args.target_ref, *(args.source or []), *(args.parallel_ref or []),
                 *(args.original or [])]:
        probe_audio(path)  # fail on a bad file before any slow work
    for npy in args.reference_f0 or []:
        if not Path(npy).is_file():
            raise MelismaError(f"{npy}: no such F0 file")
    seconds, transpose = None, args.transpose if args.transpose is not None else 0.0
    if args.rtf_json:
        seconds, applied = read_timings(args.rtf_json, args.converted)
        if args.transpose is None and any(t is not None for t in applied):
            transpose = [t or 0.0 for t in applied]
    result = evaluate_clips(
        args.converted, args.target_ref, sources=args.source, reference_f0=args.reference_f0,
        parallel_refs=args.parallel_ref, originals=args.original, transpose=transpose,
        judge_tracker=args.judge_pitch, conversion_seconds=seconds, metrics=metrics,
        keep_details=args.report is not None,
    )
    if args.report is not None:
        from melisma.evaluate.report import write_report

        say(f"report: {write_report(result, args.report, args.target_ref)}")
    if args.json is not None:
        say(f"scores: {result.save(args.json)}")
    _print_summary(result)
    return 0


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(result.clips)} clip(s)")
    for col in ("metric", "mean", "median", "worst", "n"):
        table.add_column(col, justify="right")
    for name, agg in result.aggregate.items():
        table.add_row(name, f"{agg.mean:.3f}", f"{agg.median:.3f}", f"{agg.worst:.3f}", str(agg.n))
    Console().print(table)
