"""``melisma corpus``: build an offline multi-speaker speech + singing corpus, or list one."""

from __future__ import annotations

import argparse

from melisma.errors import MelismaError


def register(subparsers) -> None:
    p = subparsers.add_parser("corpus", help="build a synthetic multi-voice speech/singing corpus (offline)")
    sub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="render voices speaking and singing shared texts and melodies")
    b.add_argument("-o", "--out", required=True, help="corpus folder (created; an existing corpus is extended)")
    b.add_argument("--voices", nargs="+", metavar="ID",
                   help="voice ids, e.g. kokoro:jf_alpha kokoro:jf_alpha+jm_kumo@0.3 piper:joe festival:kal "
                        "festival:lp flite:rms espeak:en+f3:p60 (default: a mix of 12 training voices, unless "
                        "--espeak or --all-voices is given)")
    b.add_argument("--all-voices", action="store_true",
                   help="also every trainable offline voice family: kokoro and 10 blends, piper, festival and "
                        "festvox it/fi/cs, flite, 12 espeak-ng voices across languages")
    b.add_argument("--espeak", type=int, default=0, metavar="N",
                   help="also N espeak-ng voices (accent x variant x pitch), e.g. for the content encoder")
    b.add_argument("--clips-per-voice", type=int, default=10, metavar="N", help="clips per voice (default 10)")
    kind = b.add_mutually_exclusive_group()
    kind.add_argument("--spoken", action="store_true", help="spoken clips only")
    kind.add_argument("--sung", action="store_true", help="sung clips only")
    b.add_argument("--parallel", type=int, default=3, metavar="K", help="voices rendering each text (default 3)")
    b.add_argument("--festival-singing", action="store_true",
                   help="festival kal/ked voices also sing each melody in festival's own singing mode")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=build)
    info = sub.add_parser("info", help="summarise a corpus folder")
    info.add_argument("folder")
    info.set_defaults(func=show)


def build(args: argparse.Namespace) -> int:
    from melisma.corpus.builder import build_corpus
    from melisma.corpus.voices import all_offline_voices, default_voices, espeak_voices, parse_voice
    from melisma.progress import say

    if args.clips_per_voice < 1:
        raise MelismaError("--clips-per-voice must be at least 1")
    if args.parallel < 1:
        raise MelismaError("--parallel must be at least 1")
    if args.espeak < 0:
        raise MelismaError("--espeak must not be negative")
    voices = args.voices or ([] if args.espeak or args.all_voices else default_voices(12))
    voices = voices + espeak_voices(args.espeak, args.seed)
    voices = list(dict.fromkeys(voices + (all_offline_voices(seed=args.seed) if args.all_voices else [])))
    for v in voices:
        try:
            parse_voice(v)
        except ValueError as exc:
            raise MelismaError(str(exc)) from None
    kinds = ("speech",) if args.spoken else ("sung",) if args.sung else ("speech", "sung")
    clips = build_corpus(args.out, voices, args.clips_per_voice, kinds, args.parallel, args.seed,
                         native_singing=args.festival_singing)
    minutes = sum(c.duration for c in clips) / 60
    say(f"{args.out}: {len(clips)} clips, {minutes:.1f} min, {len({c.voice for c in clips})} voices")
    return 0


def show(args: argparse.Namespace) -> int:
    from melisma.corpus import is_held_out, load_corpus

    clips = load_corpus(args.folder)
    voices = sorted({c.voice for c in clips})
    print(f"{len(clips)} clips, {sum(c.duration for c in clips) / 60:.1f} min, {len(voices)} voices, "
          f"{len({c.parallel_group for c in clips})} parallel groups")
    for v in voices:
        mine = [c for c in clips if c.voice == v]
        tag = "  (held out)" if is_held_out(v) else ""
        print(f"  {v}: {len(mine)} clips, {sum(c.duration for c in mine) / 60:.1f} min{tag}")
    return 0
