"""``melisma export VOICE -o DIR``: a voice's networks as ONNX graphs, for ``melisma convert --engine onnx``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a voice to ONNX (convert --engine onnx runs it without torch)",
                       description="Write a voice's content encoder, one-step singer model and vocoder network as "
                                   "ONNX graphs with a manifest; 'melisma convert --engine onnx -v DIR' runs them "
                                   "on onnxruntime without importing torch.")
    p.add_argument("voice", help="voice pack file or built-in voice name")
    p.add_argument("-o", "--output", required=True, help="export folder (created; an earlier export is replaced)")
    p.add_argument("--singer", default=None, help="default singer of the export (a multi-singer pack's name)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="int8 dynamic quantisation of the weights (smaller; measure its cost with melisma evaluate)")
    p.add_argument("--pitch-speed", type=int, default=1, metavar="N",
                   help="dio's decimation of the input (1: the torch engine's pitch exactly; 2: half the pitch time, "
                        "measured the same F0 to 0.1 cent on 99%% of frames)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.onnx.export import export_voice
    from melisma.progress import say

    manifest = export_voice(args.voice, args.output, singer=args.singer, quantize=args.quantize,
                            pitch_speed=args.pitch_speed)
    errors = ", ".join(f"{name} {g['max_abs_error']:.1e}" for name, g in manifest["graphs"].items())
    say(f"wrote {args.output} ({len(manifest['graphs'])} graphs; largest difference from torch: {errors})")
    return 0
