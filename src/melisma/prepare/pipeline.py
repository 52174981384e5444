"""Songs -> dataset: decode, separate, slice, check, normalise, write (atomically).

Memory stays bounded whatever the song length: each song is decoded and separated in windows of
``window_s`` seconds (plus the separator's context on each side), the vocal is streamed to a
temporary file, slicing works on a 10 ms envelope, and each clip is read back on its own.
Everything is written into a hidden temporary folder next to the destination, renamed into place at
the end; a run that fails or finds nothing usable leaves no output behind.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from melisma.atomic import check_output_folder
from melisma.audio.constants import SAMPLE_RATE, TARGET_LUFS
from melisma.audio.io import AUDIO_SUFFIXES, audio_files_below, load_audio, probe_audio
from melisma.audio.loudness import normalize_loudness
from melisma.errors import AudioInputError, MelismaError
from melisma.prepare.manifest import ClipRecord, Dataset, SourceRecord, finite_or_none, report_text, to_json
from melisma.prepare.quality import CLIP_LEVEL, QualityThresholds, assess_clip
from melisma.prepare.separate import LeakageMeter, Separator, get_separator
from melisma.prepare.slicer import ENVELOPE_HOP, SliceSettings, envelope_db, slice_envelope
from melisma.progress import track

SILENT_PEAK = 1e-5  # -100 dBFS: a song whose mix never exceeds this is pure silence


@dataclass(frozen=True)
class PrepareSettings:
    separate: str = "auto"  # auto | none | learned | dsp | demucs
    slicing: SliceSettings = field(default_factory=SliceSettings)
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    target_lufs: float = TARGET_LUFS
    strict: bool = False  # also set aside clips with warning flags (leakage)
    window_s: int = 30  # whole seconds decoded and separated at a time


def collect_inputs(paths: Sequence[str | os.PathLike], exclude: Path | None = None) -> list[Path]:
    """Files as given (checked later, one by one); folders expanded to the audio files inside, sorted.

    A folder with no audio file is kept as is, to be reported as skipped.  Files under ``exclude``
    (the output folder, when it lies inside an input folder) are left out of folder expansion.
    """
    skip = exclude.resolve() if exclude is not None else None
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [f for f in audio_files_below(p) if skip is None or skip not in f.resolve().parents]
            files += found or [p]
        else:
            files.append(p)
    return files


def prepare_dataset(
    inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, settings: PrepareSettings = PrepareSettings(),
    force: bool = False,
) -> Dataset:
    """Turn songs (files or folders) into a dataset folder ``out_dir``; returns what was written.

    Raises MelismaError (nothing written) when no input gives a usable clip, when ``out_dir`` exists
    and is not empty (unless ``force``), or when the separation method cannot run.
    """
    out = Path(out_dir)
    files = collect_inputs(inputs, exclude=out)
    _check_destination(out, files, force)
    separator = get_separator(settings.separate)
    settings_doc = {**asdict(settings), "separate": separator.name}
    made_parents = _make_parents(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _set_default_mode(tmp)
        ds = Dataset(settings_doc)
        for i, path in enumerate(files):
            _prepare_source(path, _unique_stem(path, i, files), tmp, separator, settings, ds)
        _require_usable(ds)
        (tmp / "manifest.json").write_text(to_json(ds))
        (tmp / "report.txt").write_text(report_text(ds))
        _move_into_place(tmp, out)
        made_parents = []
        return ds
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(made_parents):
            _rmdir_quietly(d)


def _prepare_source(path: Path, stem: str, tmp: Path, sep: Separator, s: PrepareSettings, ds: Dataset) -> None:
    """Add one song's clips to ``ds`` (files under ``tmp``), or a skipped source with its one-line reason."""
    try:
        if path.is_dir():
            raise AudioInputError(f"{path}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
        info = probe_audio(path)
        leakage = LeakageMeter()
        records = prepare_song(path, stem, tmp, sep, s, leakage)
    except AudioInputError as exc:
        ds.sources.append(SourceRecord(str(path), "skipped", str(exc)))
        return
    ds.sources.append(SourceRecord(str(path), "used", "", round(info.duration, 2), len(records),
                                   finite_or_none(leakage.db)))
    ds.clips += records


def prepare_song(path: Path, stem: str, root: Path, sep: Separator, s: PrepareSettings,
                 leakage: LeakageMeter | None = None) -> list[ClipRecord]:
    """Separate, slice and check one song; writes its clips under ``root``/clips and ``root``/rejected.

    ``leakage``, when given, accumulates the song's estimated vocal leakage (``LeakageMeter``)."""
    work = root / ".work"
    work.mkdir(exist_ok=True)
    vocal_path = work / f"{stem}.vocal.wav"
    try:
        env, clipped, peak = _separate_to_file(path, vocal_path, sep, s.window_s, leakage)
        if peak < SILENT_PEAK:
            raise AudioInputError(f"{path}: pure silence, nothing to prepare")
        segments = slice_envelope(env, s.slicing)
        if not segments:
            raise AudioInputError(f"{path}: no singing found above the silence threshold")
        return _write_clips(path, stem, root, vocal_path, segments, clipped, s)
    finally:
        vocal_path.unlink(missing_ok=True)


def _separate_to_file(path: Path, vocal_path: Path, sep: Separator, window_s: int,
                      leakage: LeakageMeter | None = None):
    """Stream ``path`` window by window through ``sep`` into a float WAV at SAMPLE_RATE.

    Returns (10 ms vocal envelope in dB, clipped-sample count of the mix per 10 ms frame, mix peak).
    """
    info = probe_audio(path)
    total = int(round(info.frames * SAMPLE_RATE / info.sample_rate))
    step, ctx = window_s * SAMPLE_RATE, sep.context_s * SAMPLE_RATE
    envs, clips, peak = [], [], 0.0
    n_windows = math.ceil(total / step)
    with sf.SoundFile(str(vocal_path), "w", SAMPLE_RATE, 1, subtype="FLOAT", format="WAV") as out:
        for i in track(range(n_windows), f"separating {path.name} ({sep.name})", total=n_windows):
            a, b = i * step, min(total, (i + 1) * step)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            mix = _read_window(path, lo, hi)
            vocal = sep.separate(mix)[a - lo: b - lo]
            core = mix[a - lo: b - lo]
            if leakage is not None and sep.name != "none":
                leakage.add(core, vocal)
            peak = max(peak, float(np.abs(core).max()))
            envs.append(envelope_db(vocal))
            clips.append(_frame_counts(np.abs(core) >= CLIP_LEVEL))
            out.write(vocal)
    return np.concatenate(envs), np.concatenate(clips), peak


def _read_window(path: Path, lo: int, hi: int) -> np.ndarray:
    """Samples [lo, hi) of ``path`` at SAMPLE_RATE (mono); a file shorter than its header says is truncated."""
    mix, _ = load_audio(path, SAMPLE_RATE, start=lo / SAMPLE_RATE, duration=(hi - lo) / SAMPLE_RATE)
    want = hi - lo
    if mix.size < want - 64:
        raise AudioInputError(f"{path}: file is truncated (decoding stopped at {(lo + mix.size) / SAMPLE_RATE:.1f} s)")
    return np.pad(mix, (0, max(0, want - mix.size)))[:want]


def _frame_counts(mask: np.ndarray) -> np.ndarray:
    """(n,) bool -> (ceil(n / 441),) count of True per 10 ms frame."""
    n = math.ceil(mask.size / ENVELOPE_HOP)
    padded = np.zeros(n * ENVELOPE_HOP, bool)
    padded[: mask.size] = mask
    return padded.reshape(n, ENVELOPE_HOP).sum(axis=1).astype(np.int32)


def _write_clips(path, stem, root, vocal_path, segments, clipped, s: PrepareSettings) -> list[ClipRecord]:
    records = []
    with sf.SoundFile(str(vocal_path)) as vocal_file:
        for k, (a, b) in enumerate(segments, start=1):
            vocal_file.seek(a)
            vocal = vocal_file.read(b - a, dtype="float32")
            frames = clipped[a // ENVELOPE_HOP: math.ceil(b / ENVELOPE_HOP)]
            q = assess_clip(vocal, float(frames.sum()) / max(b - a, 1), s.quality)
            normalised, _ = normalize_loudness(vocal, SAMPLE_RATE, s.target_lufs)
            status = "rejected" if q.rejected(s.strict) else "kept"
            rel = f"{'clips' if status == 'kept' else 'rejected'}/{stem}_{k:04d}.flac"
            _write_flac(root / rel, normalised)
            records.append(ClipRecord(
                rel, status, str(path), round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3),
                round(q.duration, 3), finite_or_none(q.loudness_lufs), q.flags, round(q.voiced_fraction, 3),
                round(q.harmonic_ratio, 3), round(q.unvoiced_energy, 3), round(q.clipped_fraction, 5)))
    return records


def _write_flac(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_24")


def _require_usable(ds: Dataset) -> None:
    """One-line MelismaError when nothing usable came out of any input."""
    if ds.kept:
        return
    skipped = [s for s in ds.sources if s.status == "skipped"]
    if len(ds.sources) == 1 and skipped:
        raise AudioInputError(skipped[0].reason)
    if ds.clips:
        flags = sorted({f for c in ds.clips for f in c.flags})
        where = f"{ds.sources[0].path}: " if len(ds.sources) == 1 else ""
        raise MelismaError(f"{where}no usable clips: all {len(ds.clips)} clips failed the quality checks "
                           f"({', '.join(flags)}); nothing written")
    reasons = "; ".join(s.reason for s in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
    raise AudioInputError(f"nothing usable in {len(ds.sources)} inputs: {reasons}")


def _check_destination(out: Path, files: list[Path], force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MelismaError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise MelismaError(f"{out}: folder exists and is not empty (choose another or pass --force)")
    check_output_folder(out.parent, "dataset", make_parents=True)  # the dataset is built beside it, then renamed
    resolved = out.resolve()
    for f in files:
        if f.exists() and (f.resolve() == resolved or resolved in f.resolve().parents):
            raise MelismaError(f"{f}: input lies inside the output folder {out}")


def _make_parents(parent: Path) -> list[Path]:
    """Create missing parent folders; returns those created (outermost first) so a failure can remove them."""
    missing = []
    p = parent.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    missing.reverse()
    for d in missing:
        d.mkdir()
    return missing


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished temporary folder to ``out``; an old ``out`` (empty, or --force) is replaced."""
    shutil.rmtree(tmp / ".work", ignore_errors=True)
    old = None
    if out.is_dir():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _set_default_mode(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; the dataset gets the usual permissions instead."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def _rmdir_quietly(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass


def _unique_stem(path: Path, index: int, files: list[Path]) -> str:
    """A file-name-safe stem; songs sharing a name get their input index appended."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_")[:60] or "song"
    clash = sum(re.sub(r"[^A-Za-z0-9_-]+", "_", f.stem).strip("_")[:60] == stem for f in files) > 1
    return f"{stem}_{index + 1}" if clash else stem
