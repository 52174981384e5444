"""The timings file ``melisma convert --timings`` writes and ``melisma evaluate --rtf-json`` reads.

    {"format": "melisma.timings", "format_version": 1,
     "clips": {"out/a.wav": {"seconds": 1.9, "transpose": -12.0}, ...}}

``seconds``: wall time of the conversion (RTF = seconds / clip duration); ``transpose``: the semitones the
conversion moved the melody by (``--transpose`` plus the ``--auto-transpose`` shift), so the evaluation
knows the intended F0.  A plain ``{"clip.wav": seconds}`` map (the older form) is read too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from melisma.atomic import write_text_atomic
from melisma.errors import MelismaError
from melisma.formats import check, stamp


def write_timings(path: str | Path, clips: dict[str, dict[str, float]]) -> Path:
    """Write {output path: {"seconds": s, "transpose": semitones}} atomically."""
    doc = {**stamp("timings"), "clips": clips}
    write_text_atomic(Path(path), json.dumps(doc, indent=1) + "\n")
    return Path(path)


def read_timings(path: str | Path, converted: Sequence[str]) -> tuple[list[float | None], list[float | None]]:
    """(seconds, transpose) per converted clip, matched by path or file name; None where the file has none."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MelismaError(f"{path}: not a readable JSON file ({exc})") from None
    if isinstance(doc, dict) and "format" in doc:  # else the older plain map
        check(doc, "timings", path)
        doc = doc.get("clips")
    if not isinstance(doc, dict):
        raise MelismaError(f'{path}: expected {{"clips": {{"clip.wav": {{"seconds": s}}, ...}}}}')
    seconds: list[float | None] = []
    transposes: list[float | None] = []
    for clip in converted:
        entry = doc.get(str(clip), doc.get(Path(clip).name))
        if not isinstance(entry, dict):
            entry = {"seconds": entry}
        try:
            seconds.append(None if entry.get("seconds") is None else float(entry["seconds"]))
            transposes.append(None if entry.get("transpose") is None else float(entry["transpose"]))
        except (TypeError, ValueError):
            raise MelismaError(f"{path}: the entry of {clip} is not a number of seconds") from None
    return seconds, transposes
