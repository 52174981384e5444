"""``melisma cover SONG -v VOICE -o OUT``: separate the vocal, convert it, remix with the accompaniment."""

from __future__ import annotations

import argparse

from melisma.cli.convert import add_voice_options, check_output_options, open_voice, voice_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cover", help="make a cover: separate, convert the vocal, remix",
                       description="Separate a song, convert its vocal to a voice and remix at matched loudness.")
    p.add_argument("song", help="song file (a mix), or a dry vocal with --separate none")
    p.add_argument("-o", "--output", required=True, help="output audio file")
    add_voice_options(p)
    p.add_argument("--separate", default="auto", help="separation method: auto, learned, dsp, demucs, none")
    p.add_argument("--keep-stems", action="store_true", help="also write the vocal, accompaniment, converted stems")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.atomic import check_output_file
    from melisma.audio.io import probe_audio
    from melisma.singer.cover import make_cover

    probe_audio(args.song)
    check_output_options(check_output_file(args.output), args)
    voice = open_voice(args)
    make_cover(args.song, args.output, voice, separate=args.separate, keep_stems=args.keep_stems,
               **voice_kwargs(args))
    return 0
