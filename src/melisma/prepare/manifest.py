"""The dataset manifest (``manifest.json``, versioned) and the human-readable ``report.txt``.

Layout of a dataset folder written by ``melisma prepare``::

    clips/*.flac      44.1 kHz mono clips, loudness-normalised: the training set
    rejected/*.flac   clips set aside, each with its flags in the manifest and the report
    manifest.json     format "melisma.dataset", format_version, settings, sources, clips, totals
    report.txt        what was done, why anything was skipped or set aside, total usable minutes
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from melisma import __version__
from melisma.audio.constants import SAMPLE_RATE, TARGET_LUFS
from melisma.errors import MelismaError
from melisma.formats import CURRENT, check, stamp

MANIFEST = "manifest.json"


@dataclass
class SourceRecord:
    path: str
    status: str  # "used" or "skipped"
    reason: str = ""  # why it was skipped
    duration_s: float = 0.0
    clips: int = 0
    leakage_db: float | None = None  # estimated vocal leakage (melisma.prepare.separate.LeakageMeter); None: unseparated


@dataclass
class ClipRecord:
    path: str  # relative to the dataset folder
    status: str  # "kept" or "rejected"
    source: str
    start_s: float
    end_s: float
    duration_s: float
    loudness_lufs: float | None  # before normalisation; None for silence
    flags: list[str] = field(default_factory=list)
    voiced_fraction: float = 0.0
    harmonic_ratio: float = 0.0
    unvoiced_energy: float = 0.0
    clipped_fraction: float = 0.0


@dataclass
class Dataset:
    settings: dict[str, Any]
    sources: list[SourceRecord] = field(default_factory=list)
    clips: list[ClipRecord] = field(default_factory=list)

    @property
    def kept(self) -> list[ClipRecord]:
        return [c for c in self.clips if c.status == "kept"]

    @property
    def usable_seconds(self) -> float:
        return sum(c.duration_s for c in self.kept)

    def totals(self) -> dict[str, Any]:
        return {
            "clips_kept": len(self.kept),
            "clips_rejected": len(self.clips) - len(self.kept),
            "sources_used": sum(s.status == "used" for s in self.sources),
            "sources_skipped": sum(s.status == "skipped" for s in self.sources),
            "usable_seconds": round(self.usable_seconds, 2),
            "usable_minutes": round(self.usable_seconds / 60.0, 2),
        }


def to_json(ds: Dataset) -> str:
    doc = {
        **stamp("dataset"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "melisma_version": __version__,
        "sample_rate": SAMPLE_RATE,
        "target_lufs": TARGET_LUFS,
        "settings": ds.settings,
        "totals": ds.totals(),
        "sources": [asdict(s) for s in ds.sources],
        "clips": [asdict(c) for c in ds.clips],
    }
    return json.dumps(doc, indent=1, allow_nan=False)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a dataset (its folder or its ``manifest.json``), its format stamp checked.

    MelismaError (one line) when it is unreadable, not a melisma dataset manifest, or of a newer version."""
    p = Path(path)
    p = p / MANIFEST if p.is_dir() else p
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MelismaError(f"{p}: not a readable JSON file ({exc})") from None
    check(doc, "dataset", p)
    if not isinstance(doc.get("clips"), list):
        raise MelismaError(f"{p}: dataset manifest has no list of clips")
    return doc


def finite_or_none(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def report_text(ds: Dataset) -> str:
    """A plain-text summary: totals first, then every skipped input and every set-aside clip with reasons."""
    t = ds.totals()
    lines = [
        f"melisma prepare report (dataset format {CURRENT['dataset']}, melisma {__version__})",
        f"usable audio: {t['usable_minutes']:.2f} minutes in {t['clips_kept']} clips "
        f"({t['clips_rejected']} set aside in rejected/)",
        f"inputs: {t['sources_used']} used, {t['sources_skipped']} skipped",
        f"separation: {ds.settings.get('separate')}",
        "",
    ]
    flags = Counter(f for c in ds.clips for f in c.flags)
    if flags:
        lines.append("flags: " + ", ".join(f"{name} x{n}" for name, n in sorted(flags.items())))
        lines.append("")
    lines.append("inputs:")
    for s in ds.sources:
        detail = f"{s.clips} clips, {s.duration_s:.1f} s" if s.status == "used" else f"skipped: {s.reason}"
        if s.leakage_db is not None:
            detail += f", estimated vocal leakage {s.leakage_db:.1f} dB"
        lines.append(f"  {s.path}: {detail}")
    rejected = [c for c in ds.clips if c.status == "rejected"]
    if rejected:
        lines += ["", "set aside:"]
        lines += [f"  {c.path} ({c.duration_s:.1f} s from {Path(c.source).name}): {', '.join(c.flags)}"
                  for c in rejected]
    warned = [c for c in ds.kept if c.flags]
    if warned:
        lines += ["", "kept with warnings:"]
        lines += [f"  {c.path}: {', '.join(c.flags)}" for c in warned]
    return "\n".join(lines) + "\n"
