"""``melisma ui``: the web UI (Gradio; ``pip install melisma[ui]``), a thin client of the Python API."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="open the web UI: prepare, train, convert, cover, evaluate in a browser",
                       description="The cover-artist workflow in a browser. Training runs as a job under "
                                   "--data-dir, so it resumes after a restart.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--data-dir", type=Path, default=Path("melisma-service"),
                   help="jobs, their files and trained voices, shared with melisma serve (default ./melisma-service)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from melisma.errors import MelismaError, MissingDependencyError

    try:
        from melisma.ui.app import launch
    except ImportError as exc:
        raise MissingDependencyError(f"melisma ui needs the ui extra ({exc.name} is missing): "
                                     "pip install 'melisma[ui]'") from None
    from melisma.service.app import is_loopback

    if not is_loopback(args.host):
        raise MelismaError(f"melisma ui binds to loopback only ({args.host} refused); use melisma serve --token "
                           "for access from other machines")
    launch(args.host, args.port, args.data_dir)
    return 0
