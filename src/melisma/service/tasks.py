"""What each kind of job does: prepare, train and cover, as calls of melisma's library.

Each task reads its parameters and the job's ``inputs/`` folder and writes its outputs into the job folder;
it returns the job's result (JSON).  Tasks run in a worker process (``melisma.service.worker``), never in the
service itself, so a crash or a cancel never takes the service down.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from melisma.errors import MelismaError

VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Progress = Callable[[dict[str, Any]], None]


def voices_dir(data_dir: Path) -> Path:
    """Where finished training jobs put their voice packs (``<name>.melisma``), listed by GET /v1/voices."""
    return data_dir / "voices"


def trained_voice(data_dir: Path, name: str) -> Path | None:
    """The pack a training job of the service made under ``name``, if any."""
    path = voices_dir(data_dir) / f"{name}.melisma"
    return path if VOICE_NAME.match(name) and path.is_file() else None


def resolve_voice(data_dir: Path, name: str) -> str:
    """A voice trained by the service (its pack path) or a built-in voice name; MelismaError otherwise."""
    from melisma.singer.convert import builtin_voices

    path = trained_voice(data_dir, name)
    if path is not None:
        return str(path)
    if name in builtin_voices():
        return name
    raise MelismaError(f"voice {name!r}: not a trained or built-in voice (GET /v1/voices lists them)")


def check_voice_name(name: str) -> str:
    if not VOICE_NAME.match(name):
        raise MelismaError(f"voice name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


# --- prepare -----------------------------------------------------------------------------------------------
def run_prepare(job_dir: Path, params: dict[str, Any], data_dir: Path, progress: Progress) -> dict[str, Any]:
    """The uploaded songs -> ``dataset/`` (``melisma prepare``); the result lists kept and rejected clips."""
    from melisma.prepare.manifest import read_manifest
    from melisma.prepare.pipeline import PrepareSettings, prepare_dataset

    settings = PrepareSettings(separate=str(params.get("separate", "auto")), strict=bool(params.get("strict")))
    progress({"stage": "preparing"})
    ds = prepare_dataset([job_dir / "inputs"], job_dir / "dataset", settings, force=True)
    manifest = read_manifest(job_dir / "dataset" / "manifest.json")
    return {"dataset": "dataset", "totals": ds.totals(), "report": (job_dir / "dataset" / "report.txt").read_text(),
            "clips": manifest.get("clips", [])}


# --- train -------------------------------------------------------------------------------------------------
TRAIN_OPTIONS = ("teacher_steps", "distill_steps", "batch_size", "max_minutes", "seed", "checkpoint_every",
                 "log_every")


def train_config(params: dict[str, Any]):
    """The TrainConfig of a job's parameters; losses logged every ``log_every`` steps (25 unless given) and at
    least about 20 times a phase, so progress moves."""
    from melisma.training.singer import TrainConfig

    cfg = TrainConfig()
    for key in TRAIN_OPTIONS:
        if params.get(key) is not None:
            cfg = replace(cfg, **{key: type(getattr(cfg, key))(params[key])})
    if params.get("pitch_shifts") is not None:
        cfg = replace(cfg, pitch_shifts=tuple(float(s) for s in params["pitch_shifts"]))
    cfg = replace(cfg, from_scratch=bool(params.get("from_scratch", False)))
    return replace(cfg, log_every=max(1, min(cfg.log_every, cfg.teacher_steps // 20 or 1)))


def dataset_folder(job_dir: Path, params: dict[str, Any], data_dir: Path) -> Path:
    """The clips to train on: a finished prepare job's dataset (``params["dataset"]`` = its id), else uploads."""
    source = params.get("dataset")
    if source:
        folder = data_dir / "jobs" / str(source) / "dataset"
        if not re.fullmatch(r"[0-9a-f]{12}", str(source)) or not (folder / "manifest.json").is_file():
            raise MelismaError(f"dataset {source!r}: not a finished prepare job of this service")
        return folder
    return job_dir / "inputs"


def run_train(job_dir: Path, params: dict[str, Any], data_dir: Path, progress: Progress) -> dict[str, Any]:
    """Train (or resume) ``voice.melisma`` in the job folder, publish it as ``voices/<name>.melisma`` and
    convert the first training clip with it as a preview."""
    from melisma.atomic import copy_atomic
    from melisma.training.singer import train_voice

    name = check_voice_name(str(params.get("name", "")))
    cfg = train_config(params)
    out = job_dir / "voice.melisma"
    folder = dataset_folder(job_dir, params, data_dir)
    watcher = TrainingLogWatcher(out.with_name(out.name + ".work") / "log.jsonl", cfg, progress)
    with watcher:
        train_voice([(name, folder)], out, cfg, f0_method=str(params.get("f0", "dio")))
    copy_atomic(out, voices_dir(data_dir) / f"{name}.melisma")
    preview = make_preview(out, folder, job_dir / "preview.wav")
    return {"voice": name, "pack": "voice.melisma", "preview": preview, "losses": watcher.losses()}


def make_preview(pack: Path, folder: Path, dest: Path) -> str | None:
    """The first 8 s of the first training clip sung by the new voice (``dest``), or None without clips."""
    from melisma.audio.io import audio_files_below, load_audio, save_audio
    from melisma.singer.convert import load_voice

    clips = audio_files_below(folder / "clips" if (folder / "clips").is_dir() else folder)
    if not clips:
        return None
    audio, sr = load_audio(clips[0], duration=None)
    audio = audio[: 8 * sr]
    out, out_sr = load_voice(pack).convert(audio, sr)
    save_audio(dest, out, out_sr)
    return dest.name


class TrainingLogWatcher:
    """Reads the training log (``OUTPUT.work/log.jsonl``) while training runs and reports phase, step, loss and
    ETA through ``progress`` (a background thread; ``with`` starts and stops it)."""

    def __init__(self, log: Path, cfg, progress: Progress, every_s: float = 0.5):
        import threading

        self.log, self.progress, self.every_s = log, progress, every_s
        self.totals = {"teacher": cfg.teacher_steps, "distill": cfg.distill_steps}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.started = time.time()

    def __enter__(self) -> TrainingLogWatcher:
        self.progress({"stage": "features"})
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._report()

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            self._report()

    def rows(self) -> list[dict[str, Any]]:
        try:
            lines = self.log.read_text().splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def losses(self) -> list[dict[str, Any]]:
        return [{"phase": r["phase"], "step": r["step"], "loss": r["loss"]} for r in self.rows() if "loss" in r]

    def _report(self) -> None:
        rows = [r for r in self.rows() if "loss" in r]
        if rows:
            self.progress(training_progress(rows, self.totals))


def training_progress(rows: list[dict[str, Any]], totals: dict[str, int]) -> dict[str, Any]:
    """Progress of a training run from its loss rows: phase, step, fraction done, last loss, ETA (s) from the
    pace of the last rows of this phase, and the last 200 losses (for a curve)."""
    last = rows[-1]
    phase, step = last["phase"], int(last["step"])
    done = step + (totals["teacher"] if phase == "distill" else 0)
    total = max(1, totals["teacher"] + totals["distill"])
    same = [r for r in rows if r["phase"] == phase][-10:]
    eta = None
    if len(same) >= 2 and same[-1]["step"] > same[0]["step"]:
        pace = (same[-1]["time"] - same[0]["time"]) / (same[-1]["step"] - same[0]["step"])
        eta = round(max(0.0, (total - done) * pace), 1)
    return {"stage": phase, "step": step, "phase_steps": totals[phase], "fraction": round(min(1.0, done / total), 4),
            "loss": last["loss"], "eta_s": eta,
            "losses": [{"phase": r["phase"], "step": r["step"], "loss": r["loss"]} for r in rows[-200:]]}


# --- cover -------------------------------------------------------------------------------------------------
def run_cover(job_dir: Path, params: dict[str, Any], data_dir: Path, progress: Progress) -> dict[str, Any]:
    """The uploaded song -> ``cover.wav`` (``melisma cover``) with the stems beside it."""
    from melisma.audio.io import audio_files_below
    from melisma.singer.convert import load_voice
    from melisma.singer.cover import make_cover

    songs = audio_files_below(job_dir / "inputs")
    if len(songs) != 1:
        raise MelismaError(f"a cover job takes one song; got {len(songs)} audio files")
    voice = load_voice(resolve_voice(data_dir, str(params.get("voice", ""))), f0=str(params.get("f0", "dio")))
    progress({"stage": "separating and converting"})
    make_cover(songs[0], job_dir / "cover.wav", voice, separate=str(params.get("separate", "auto")),
               keep_stems=True, **convert_options(params))
    stems = [f"cover.{s}.wav" for s in ("vocal", "accompaniment", "converted")]
    return {"cover": "cover.wav", "stems": stems}


def convert_options(params: dict[str, Any]) -> dict[str, Any]:
    """Voice.convert's options from request fields (the ones given)."""
    out: dict[str, Any] = {}
    for key, kind in (("transpose", float), ("auto_transpose", bool), ("steps", int), ("singer", str),
                      ("seed", int)):
        if params.get(key) not in (None, ""):
            out[key] = kind(params[key])
    return out


TASKS: dict[str, Callable[[Path, dict[str, Any], Path, Progress], dict[str, Any]]] = {
    "prepare": run_prepare, "train": run_train, "cover": run_cover}


def validate_job(kind: str, params: dict[str, Any], n_files: int, data_dir: Path) -> None:
    """One-line errors for a job that cannot run, before anything is stored."""
    if kind not in TASKS:
        raise MelismaError(f"job kind {kind!r}: use {', '.join(TASKS)}")
    if kind == "prepare" and n_files == 0:
        raise MelismaError("a prepare job needs at least one song (files)")
    if kind == "cover":
        if n_files != 1:
            raise MelismaError(f"a cover job takes exactly one song (files); got {n_files}")
        resolve_voice(data_dir, str(params.get("voice", "")))
    if kind == "train":
        check_voice_name(str(params.get("name", "")))
        if params.get("dataset"):
            dataset_folder(data_dir / "jobs" / "-", params, data_dir)
        elif n_files == 0:
            raise MelismaError("a train job needs clips (files) or the id of a finished prepare job (dataset)")
        try:
            train_config(params)
        except (TypeError, ValueError) as exc:
            raise MelismaError(f"train params: {exc}") from None
