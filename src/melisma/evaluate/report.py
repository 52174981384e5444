"""Visual report: one folder with index.html, a PNG per clip and copies of the audio, to look and listen.

The page embeds ``<audio>`` players that point at copies inside the folder (relative paths), so the
folder can be moved or zipped.  The folder is built beside the destination and renamed into place, so a
failure leaves nothing half-written.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from melisma.audio.constants import SAMPLE_RATE
from melisma.audio.io import save_audio
from melisma.errors import MelismaError
from melisma.evaluate.api import ClipInput, load_clip
from melisma.evaluate.plots import clip_figure
from melisma.evaluate.result import FORMAT, FORMAT_VERSION, ClipDetail, ClipScores, EvaluationResult

MARKER = f'<meta name="generator" content="{FORMAT} report v{FORMAT_VERSION}">'
SCORE_FIELDS = [
    "target_similarity", "source_similarity", "similarity_margin", "cents_error_mean", "cents_error_median",
    "f0_correlation", "vuv_agreement", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "mcd_db", "pesq_wb",
    "stoi", "rtf",
]


def write_report(
    result: EvaluationResult, out_dir: str | os.PathLike, target_refs: Sequence[ClipInput] = ()
) -> Path:
    """Write ``out_dir``/index.html with plots and players; ``result`` needs ``keep_details=True``.

    ``target_refs`` (the target voice's reference clips) get players at the top, to compare by ear.
    """
    dest = Path(out_dir)
    if len(result.details) != len(result.clips):
        raise MelismaError("the report needs per-clip details: evaluate with keep_details=True")
    _check_destination(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        pairs = zip(result.clips, result.details, strict=True)
        sections = [_clip_section(tmp, i, s, d) for i, (s, d) in enumerate(pairs)]
        refs = [_copy_audio(tmp, f"target_{i:02d}", ref) for i, ref in enumerate(target_refs)]
        (tmp / "index.html").write_text(_page(result, sections, refs), encoding="utf-8")
        (tmp / "scores.json").write_text(result.to_json() + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "index.html"


def _check_destination(dest: Path) -> None:
    """Only an empty folder or an earlier melisma report may be replaced."""
    if not dest.exists():
        return
    index = dest / "index.html"
    if dest.is_dir() and (not any(dest.iterdir()) or (index.exists() and MARKER in index.read_text("utf-8"))):
        return
    raise MelismaError(f"{dest}: exists and is not a melisma report; choose another --report folder")


def _copy_audio(folder: Path, stem: str, clip: ClipInput) -> str:
    """Copy a clip next to the page (or write it, for in-memory audio); return its relative path."""
    (folder / "audio").mkdir(exist_ok=True)
    if isinstance(clip, tuple):
        rel = f"audio/{stem}.wav"
        save_audio(folder / rel, load_clip(clip), SAMPLE_RATE)
    else:
        rel = f"audio/{stem}{Path(clip).suffix.lower()}"
        shutil.copyfile(clip, folder / rel)
    return rel


def _clip_section(folder: Path, index: int, scores: ClipScores, detail: ClipDetail) -> str:
    stem = f"{index:03d}"
    players = [("output", _copy_audio(folder, f"{stem}_output", detail.converted))]
    source = None
    if detail.source is not None:
        players.insert(0, ("source", _copy_audio(folder, f"{stem}_source", detail.source)))
        source = load_clip(detail.source)
    (folder / "plots").mkdir(exist_ok=True)
    f0 = {"source": detail.source_f0, "intended": detail.intended_f0, "output": detail.output_f0}
    png = clip_figure(folder / "plots" / f"{stem}.png", scores.clip, load_clip(detail.converted), source, f0)
    audio_html = "".join(
        f'<figure><figcaption>{label}</figcaption><audio controls preload="none" src="{html.escape(rel)}">'
        f"</audio></figure>" for label, rel in players
    )
    rows = [(k, getattr(scores, k)) for k in SCORE_FIELDS if getattr(scores, k) is not None]
    return (
        f'<section><h2>{html.escape(scores.clip)}</h2><div class="players">{audio_html}</div>'
        f'<img src="plots/{png.name}" alt="spectrograms and pitch of {html.escape(scores.clip)}">'
        f"{_table(['metric', 'value'], [[k, _fmt(v)] for k, v in rows])}</section>"
    )


def _page(result: EvaluationResult, sections: list[str], refs: list[str]) -> str:
    agg = result.aggregate
    agg_rows = [[k, _fmt(a.mean), _fmt(a.median), _fmt(a.worst), str(a.n)] for k, a in agg.items()]
    settings = ", ".join(f"{k}: {html.escape(str(v))}" for k, v in result.settings.items())
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "img{max-width:100%}figure{display:inline-block;margin:0 1em 0 0}section{border-top:1px solid #888}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\">{MARKER}<title>melisma evaluation</title>"
        f"<style>{style}</style></head><body><h1>melisma evaluation</h1>"
        f"<p>{len(result.clips)} clip(s). {settings}</p>{_ref_players(refs)}<h2>Summary</h2>"
        f"{_table(['metric', 'mean', 'median', 'worst', 'n'], agg_rows)}{''.join(sections)}</body></html>\n"
    )


def _ref_players(refs: list[str]) -> str:
    if not refs:
        return ""
    players = "".join(f'<audio controls preload="none" src="{html.escape(r)}"></audio>' for r in refs)
    return f"<h2>Target voice</h2><div class=\"players\">{players}</div>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
