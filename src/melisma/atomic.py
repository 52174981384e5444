"""Atomic file writes: every file melisma writes appears whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The parent folder is created. On any error the temporary file is removed and ``path`` is left as it was.
    The finished file gets the ordinary mode for new files (0666 less the umask), not mkstemp's 0600.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (``dst`` is whole or untouched); returns ``dst``."""
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def check_output_folder(folder: str | os.PathLike, what: str = "output", *, make_parents: bool = False) -> Path:
    """Refuse, before any work is done, a folder melisma could not write into: it (or, when it does not exist
    yet, its parent; with ``make_parents`` its nearest existing ancestor) must be an existing directory where a
    file can really be created. The test writes and removes a temporary file, so a read-only mount is seen even
    by root."""
    from melisma.errors import MelismaError

    p = Path(folder)
    probe = p if p.is_dir() else p.parent
    while make_parents and not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if p.exists() and not p.is_dir():
        raise MelismaError(f"{p}: {what} folder is a file")
    if not probe.is_dir():
        raise MelismaError(f"{p}: cannot write the {what} here: folder {probe} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=".melisma-probe.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise MelismaError(f"{p}: cannot write the {what} in {probe} ({exc.strerror or exc})") from None
    return p


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """``check_output_folder`` for the folder of the file ``path``, which must not itself be a folder."""
    from melisma.errors import MelismaError

    p = Path(path)
    if p.is_dir():
        raise MelismaError(f"{p}: {what} is a folder, expected a file name")
    check_output_folder(p.parent, what)
    return p
