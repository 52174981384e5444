"""``melisma serve``: the HTTP API (FastAPI + uvicorn; ``pip install melisma[server]``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP API (convert, voices, evaluate, prepare/train/cover jobs)",
                       description="Serve melisma over HTTP. Jobs and trained voices live under --data-dir and "
                                   "survive a restart. Loopback only unless a token is given.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data-dir", type=Path, default=Path("melisma-service"),
                   help="job database, job files and trained voices (default ./melisma-service)")
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on /v1 (default: $MELISMA_SERVICE_TOKEN)")
    p.add_argument("--workers", type=int, default=1, help="conversions run at once (default 1)")
    p.add_argument("--queue", type=int, default=4, help="conversions that may wait; more get 429 (default 4)")
    p.add_argument("--wait-seconds", type=float, default=60.0,
                   help="longest wait for a free worker before 503 (default 60)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="request body limit (default 50)")
    p.add_argument("--max-audio-seconds", type=float, default=600.0, help="longest audio accepted (default 600)")
    p.add_argument("--max-jobs", type=int, default=16, help="queued + running jobs; more get 429 (default 16)")
    p.set_defaults(func=run)


def settings_of(args: argparse.Namespace):
    from melisma.service.app import ServiceSettings

    return ServiceSettings(host=args.host, port=args.port, data_dir=args.data_dir,
                           token=args.token or os.environ.get("MELISMA_SERVICE_TOKEN") or None,
                           workers=args.workers, waiting=args.queue, wait_s=args.wait_seconds,
                           max_upload_mb=args.max_upload_mb, max_audio_s=args.max_audio_seconds,
                           max_jobs=args.max_jobs)


def run(args: argparse.Namespace) -> int:
    from melisma.errors import MissingDependencyError

    try:
        from melisma.service.app import check_settings, serve
    except ImportError as exc:
        raise MissingDependencyError(f"melisma serve needs the server extra ({exc.name} is missing): "
                                     "pip install 'melisma[server]'") from None
    settings = settings_of(args)
    check_settings(settings)
    print(f"melisma serving on http://{settings.host}:{settings.port} (data in {settings.data_dir})", flush=True)
    serve(settings)
    return 0
