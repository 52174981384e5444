"""One versioning scheme for every file melisma writes, checked the same way by every reader.

Each document (JSON file, voice pack header, safetensors metadata) carries::

    {"format": "melisma.<kind>", "format_version": N}

``stamp(kind)`` makes that pair; ``check(doc, kind, source)`` reads it back and raises a one-line error for a
document with no stamp, a stamp of another kind, or a version newer than this melisma writes (or older than the
reader still understands).  Bump a kind's number in ``CURRENT`` whenever what its readers must understand changes,
and say why in the comment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from melisma.errors import MelismaError

CURRENT: dict[str, int] = {
    "voice": 2,  # voice packs (.melisma); 2: component identities carry a hash of the weights
    "checkpoint": 2,  # training checkpoints (melisma.training.singer); 2: the teacher's EMA is kept too
    "dataset": 1,  # manifest.json of a ``melisma prepare`` dataset
    "evaluation": 1,  # ``melisma evaluate`` JSON results
    "timings": 1,  # ``melisma convert --timings`` JSON
    "vocoder-weights": 1,  # builtin vocoder weights (safetensors metadata)
    "content-weights": 1,  # builtin content encoder weights (safetensors metadata)
    "features": 2,  # feature cache entries (melisma.features.cache); 2: pieces, content variants
    "corpus": 2,  # corpus.json of a generated corpus (melisma.corpus.manifest); 2: clips carry phones, phone end
    # times, their phone set and (WORLD-sung) a time map; version-1 manifests still load (no phones)
    "separation-data": 1,  # data.json of generated separation songs (melisma.separation.data)
    "separator-weights": 1,  # learned vocal separator weights (safetensors metadata, melisma.separation.model)
    "oneshot-weights": 1,  # the one-shot model (melisma.oneshot.weights; safetensors metadata)
    "speaker-embedding": 1,  # a reference voice's speaker embedding (``melisma voices embed``; JSON)
    "service-db": 1,  # the job database of ``melisma serve`` / ``melisma ui`` (SQLite, melisma.service.jobs)
    "onnx-export": 1,  # manifest.json of a ``melisma export`` folder (ONNX graphs for ``convert --engine onnx``)
    "stream-weights": 1,  # a causal streaming network (melisma.live.weights; safetensors metadata)
}

LABELS = {"voice": "voice pack", "checkpoint": "training checkpoint", "dataset": "dataset manifest",
          "evaluation": "evaluation result", "timings": "timings file", "vocoder-weights": "vocoder weights file",
          "content-weights": "content encoder weights file", "features": "feature cache entry",
          "corpus": "corpus manifest", "service-db": "service job database",
          "separation-data": "separation data manifest", "separator-weights": "separator weights file",
          "oneshot-weights": "one-shot model weights file", "speaker-embedding": "speaker embedding file",
          "onnx-export": "ONNX export manifest", "stream-weights": "streaming model weights file"}

# format names written before this scheme; their documents keep the version numbers they had
LEGACY_NAMES = {"melisma-voice": "voice", "melisma-dataset": "dataset", "melisma-vocoder-builtin": "vocoder-weights",
                "melisma-features": "features", "melisma-corpus": "corpus"}
# kinds whose documents were once written with a version but no format name at all
UNNAMED_BEFORE = {"checkpoint", "corpus"}


class FormatError(MelismaError):
    """A file is not of the expected melisma format, or of a version this melisma cannot read."""


def format_name(kind: str) -> str:
    """``"voice"`` -> ``"melisma.voice"`` (KeyError for a kind not in CURRENT)."""
    CURRENT[kind]
    return f"melisma.{kind}"


def stamp(kind: str) -> dict[str, Any]:
    """The stamp a writer puts first in a document of ``kind``: {"format": "melisma.<kind>", "format_version": N}."""
    return {"format": format_name(kind), "format_version": CURRENT[kind]}


def stamp_metadata(kind: str) -> dict[str, str]:
    """``stamp(kind)`` with string values, as safetensors metadata must be."""
    return {k: str(v) for k, v in stamp(kind).items()}


def check(doc: Mapping[str, Any], kind: str, source: str | os.PathLike, *, oldest: int = 1,
          error: type[MelismaError] = FormatError) -> int:
    """The format version of ``doc``, a document of ``kind`` read from ``source`` (named in messages).

    Raises ``error`` (one line) when the stamp is missing, names another format, or its version is newer than
    ``CURRENT[kind]`` or older than ``oldest`` (the oldest version this reader still understands).
    Versions may be ints or digit strings (safetensors metadata).
    """
    label, current = LABELS[kind], CURRENT[kind]
    if not isinstance(doc, Mapping):
        raise error(f"{source}: not a melisma {label} (no format stamp)")
    name = doc.get("format")
    raw = doc.get("format_version", doc.get("version"))
    if name is None and not (kind in UNNAMED_BEFORE and raw is not None):
        raise error(f"{source}: not a melisma {label} (no format stamp)")
    if name is not None and name != format_name(kind) and LEGACY_NAMES.get(str(name)) != kind:
        raise error(f"{source}: not a melisma {label} (format {name!r}, expected {format_name(kind)!r})")
    version = _as_version(raw)
    if version is None:
        raise error(f"{source}: {label} has no valid format_version ({raw!r})")
    if version > current:
        raise error(f"{source}: {label} format version {version} is newer than this melisma reads ({current}); "
                    "upgrade melisma")
    if version < oldest:
        raise error(f"{source}: {label} format version {version} is no longer supported (this melisma reads "
                    f"{oldest}..{current})")
    return version


def is_current(doc: Mapping[str, Any], kind: str) -> bool:
    """True when ``doc`` is stamped as ``kind`` at exactly the current version (for caches: else recompute)."""
    try:
        return check(doc, kind, "", oldest=CURRENT[kind]) == CURRENT[kind]
    except MelismaError:
        return False


def _as_version(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


def safetensors_metadata(path: str | os.PathLike, kind: str, *, error: type[MelismaError] = FormatError) -> dict:
    """The metadata of the safetensors file ``path``, checked to be stamped as ``kind`` (see ``check``).

    Anything that is not a safetensors file (a pickle checkpoint, a truncated download, random bytes), or one
    without metadata, raises ``error`` with one line instead of safetensors' own exception."""
    from pathlib import Path

    from safetensors import safe_open

    p, label = Path(path), LABELS[kind]
    if not p.is_file():
        raise error(f"{p}: no such {label}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata()
    except Exception as exc:  # safetensors raises several types for a file that is not its format
        raise error(f"{p}: not a melisma {label} (not a safetensors file: {str(exc)[:80]})") from None
    if not meta:
        raise error(f"{p}: not a melisma {label} (no metadata)")
    return dict(meta)
