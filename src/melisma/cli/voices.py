"""``melisma voices embed REF... -o NAME``: keep a voice given by reference clips; ``melisma voices list``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voices", help="one-shot voices: save a reference's speaker embedding, list saved ones",
                       description="Speaker embeddings of the one-shot model: a voice from reference clips, "
                                   "usable as `-v NAME` in convert and cover, mixable as a:0.6,b:0.4.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = actions.add_parser("embed", help="embed reference clips (averaged) and save the voice",
                           description="Embed one or more reference clips of one voice (averaged) and save the "
                                       "embedding: a bare NAME goes to the user's voices folder ($MELISMA_VOICES, "
                                       "default ~/.local/share/melisma/voices), a path is written as PATH.speaker.")
    e.add_argument("references", nargs="+", metavar="REF", help="audio clips of the voice (speech or singing)")
    e.add_argument("-o", "--output", required=True, metavar="NAME", help="name or path of the embedding")
    e.add_argument("--force", action="store_true", help="replace an embedding of that name")
    e.set_defaults(func=run_embed)
    ls = actions.add_parser("list", help="list the saved speaker embeddings")
    ls.set_defaults(func=run_list)


def run_embed(args: argparse.Namespace) -> int:
    from melisma.atomic import check_output_file
    from melisma.errors import MelismaError
    from melisma.oneshot import load_oneshot_model, save_embedding
    from melisma.oneshot.voice import embedding_path
    from melisma.progress import say

    out = embedding_path(args.output)
    if out.exists() and not args.force:
        raise MelismaError(f"{out}: an embedding of that name exists (--force replaces it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output_file(out)
    emb = load_oneshot_model().embed(args.references)
    save_embedding(emb, out)
    name = out.stem if out.parent.resolve() == embedding_path("x").parent.resolve() else str(out)
    say(f"wrote {out} ({emb.seconds:.1f} s of reference, median F0 {emb.median_f0:.0f} Hz); use it as -v {name}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from melisma.errors import MelismaError
    from melisma.oneshot import load_embedding
    from melisma.oneshot.voice import SPEAKER_SUFFIX, user_voices_dir

    folder = user_voices_dir()
    files = sorted(folder.glob(f"*{SPEAKER_SUFFIX}")) if folder.is_dir() else []
    if not files:
        print(f"no saved voices in {folder}")
    for f in files:
        try:
            emb = load_embedding(f)
            print(f"{f.stem:<24} {emb.seconds:6.1f} s  median F0 {emb.median_f0:5.0f} Hz  {', '.join(emb.sources)}")
        except MelismaError as exc:
            print(f"{f.stem:<24} unreadable: {exc}")
    return 0
