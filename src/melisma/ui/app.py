"""The web UI (Gradio): the cover-artist workflow in a browser, a thin client of melisma's Python API.

Convert and Evaluate call the library directly; Prepare, Train and Cover run as jobs of the same job store as
``melisma serve`` (``--data-dir``), so a training started here resumes when the UI is started again.
One-shot converts to the voice of uploaded reference clips (``melisma.oneshot.reference_voice``), no training.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from melisma.service.jobs import FINISHED, JobStore
from melisma.service.voices import VoiceCache, available_voices
from melisma.service.worker import JobRunner

F0_METHODS = ["dio", "harvest", "fcpe", "crepe"]


class Workflow:
    """What the UI's buttons call: the job store, the voices, and a folder for the UI's own outputs."""

    def __init__(self, data_dir: Path):
        self.data = Path(data_dir).resolve()
        self.store = JobStore(self.data)
        self.voices = VoiceCache()
        self.out = self.data / "ui"

    def voice_names(self) -> list[str]:
        return [v["name"] for v in available_voices(self.data)]

    def submit(self, kind: str, params: dict[str, Any], files: list[str]) -> str:
        """A job with ``files`` copied into its inputs (as POST /v1/jobs does); returns its id."""
        from melisma.atomic import copy_atomic
        from melisma.service.jobs import new_job_id
        from melisma.service.tasks import validate_job

        validate_job(kind, params, len(files), self.data)
        job_id = new_job_id()
        for f in files:
            copy_atomic(f, self.store.job_dir(job_id) / "inputs" / Path(f).name)
        return self.store.create(kind, params, job_id).id

    def wait(self, job_id: str, every_s: float = 1.0) -> Iterator[dict[str, Any]]:
        """The job's row every ``every_s`` until it finishes (the last one yielded is the finished row)."""
        while True:
            job = self.store.get(job_id)
            if job is None:
                raise gr.Error(f"no job {job_id}")
            yield job.to_dict()
            if job.state in FINISHED:
                return
            time.sleep(every_s)

    def output_path(self, suffix: str) -> Path:
        return self.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}{suffix}"


def _one_line(exc: Exception) -> gr.Error:
    return gr.Error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


# --- tabs ------------------------------------------------------------------------------------------------------
def prepare_tab(w: Workflow) -> None:
    songs = gr.File(label="songs", file_count="multiple", type="filepath", elem_id="prepare-songs")
    separate = gr.Dropdown(["auto", "learned", "dsp", "demucs", "none"], value="auto", label="vocal separation")
    go = gr.Button("Prepare", variant="primary", elem_id="prepare-button")
    status = gr.Textbox(label="status", interactive=False)
    report = gr.Textbox(label="quality report", lines=10, interactive=False, elem_id="prepare-report")
    kept = gr.Dataframe(label="kept clips", interactive=False)
    rejected = gr.Dataframe(label="rejected clips", interactive=False)
    first = gr.Audio(label="first kept clip", type="filepath", interactive=False)

    def run(files, method):
        try:
            job_id = w.submit("prepare", {"separate": method}, list(files or []))
        except Exception as exc:
            raise _one_line(exc) from None
        for job in w.wait(job_id):
            yield f"job {job_id}: {job['state']}", "", None, None, None
        if job["state"] != "done":
            raise gr.Error(job["error"] or job["state"])
        rows = job["result"]["clips"]
        table = [[c["path"], round(c["duration_s"], 2), ", ".join(c.get("flags", []))] for c in rows]
        good = [r for r, c in zip(table, rows, strict=True) if c["status"] == "kept"]
        bad = [r for r, c in zip(table, rows, strict=True) if c["status"] != "kept"]
        folder = w.store.job_dir(job_id) / "dataset"
        audio = str(folder / good[0][0]) if good else None
        yield (f"job {job_id}: done (use this id as the dataset in Train)", job["result"]["report"],
               good, bad, audio)

    go.click(run, [songs, separate], [status, report, kept, rejected, first])


def train_tab(w: Workflow) -> None:
    with gr.Row():
        name = gr.Textbox(label="voice name", value="my-voice")
        dataset = gr.Textbox(label="dataset (id of a finished Prepare job), or upload clips below")
    clips = gr.File(label="clips", file_count="multiple", type="filepath")
    with gr.Row():
        teacher = gr.Number(label="teacher steps", value=5000, precision=0)
        distill = gr.Number(label="distillation steps", value=2500, precision=0)
        minutes = gr.Number(label="max minutes (0: no limit)", value=0)
    go = gr.Button("Start training", variant="primary")
    job_id = gr.Textbox(label="training job (a restarted UI resumes it; paste an id to follow it)",
                        value=lambda: _latest(w, "train"))
    status = gr.Textbox(label="progress", interactive=False, elem_id="train-progress")
    curve = gr.LinePlot(x="step", y="loss", color="phase", label="losses")
    preview = gr.Audio(label="preview: a training clip sung by the new voice", type="filepath", interactive=False)
    cancel = gr.Button("Cancel")
    timer = gr.Timer(2.0)

    def start(voice, data, files, t, d, m):
        params = {"name": voice, "dataset": data or None, "teacher_steps": int(t), "distill_steps": int(d),
                  "max_minutes": float(m or 0)}
        try:
            return w.submit("train", params, list(files or []))
        except Exception as exc:
            raise _one_line(exc) from None

    go.click(start, [name, dataset, clips, teacher, distill, minutes], job_id)
    timer.tick(lambda jid: _train_status(w, jid), job_id, [status, curve, preview])
    cancel.click(lambda jid: w.store.request_cancel(jid) and None, job_id, None)


def _latest(w: Workflow, kind: str) -> str:
    return next((j.id for j in w.store.recent(50) if j.kind == kind), "")


def _train_status(w: Workflow, job_id: str):
    import pandas as pd

    job = w.store.get(job_id.strip()) if job_id else None
    if job is None:
        return "no training job", None, None
    p = job.progress
    eta = f", ETA {p['eta_s']:.0f} s" if p.get("eta_s") is not None else ""
    text = f"{job.state} (attempt {job.attempts}): {p.get('stage', 'waiting')}"
    if "step" in p:
        text += f" step {p['step']}/{p['phase_steps']}, loss {p['loss']:.4f}, {100 * p['fraction']:.0f} % done{eta}"
    if job.error:
        text += f" - {job.error}"
    losses = pd.DataFrame(p.get("losses", []), columns=["phase", "step", "loss"])
    preview = job.result.get("preview")
    return text, losses, str(w.store.job_dir(job.id) / preview) if preview else None


def voice_controls(w: Workflow, prefix: str):
    names = w.voice_names()
    voice = gr.Dropdown(names, value=names[0] if names else None, label="voice", elem_id=f"{prefix}-voice")
    with gr.Row():
        transpose = gr.Slider(-24, 24, value=0, step=1, label="transpose (semitones)")
        auto = gr.Checkbox(label="auto-transpose into the singer's range")
        steps = gr.Slider(1, 8, value=1, step=1, label="sampling steps")
        f0 = gr.Dropdown(F0_METHODS, value="dio", label="F0 method")
    return voice, transpose, auto, steps, f0


def convert_tab(w: Workflow) -> None:
    source = gr.Audio(label="vocal (upload or record)", sources=["upload", "microphone"], type="filepath",
                      elem_id="convert-input")
    voice, transpose, auto, steps, f0 = voice_controls(w, "convert")
    go = gr.Button("Convert", variant="primary", elem_id="convert-button")
    out = gr.Audio(label="converted", type="filepath", interactive=False, elem_id="convert-output")
    download = gr.File(label="download", interactive=False)

    def run(path, name, t, a, s, method):
        from melisma.audio.io import load_audio, save_audio
        from melisma.service.tasks import resolve_voice

        if not path:
            raise gr.Error("upload or record a vocal first")
        try:
            audio, sr = load_audio(path, None)
            done = w.voices.get(resolve_voice(w.data, name or ""), method).convert_detailed(
                audio, sr, transpose=float(t), auto_transpose=bool(a), steps=int(s))
            dest = save_audio(w.output_path(".wav"), done.audio, done.sr)
        except Exception as exc:
            raise _one_line(exc) from None
        return str(dest), str(dest)

    go.click(run, [source, voice, transpose, auto, steps, f0], [out, download])


def cover_tab(w: Workflow) -> None:
    song = gr.Audio(label="song (a mix)", sources=["upload"], type="filepath")
    voice, transpose, auto, steps, f0 = voice_controls(w, "cover")
    separate = gr.Dropdown(["auto", "learned", "dsp", "demucs"], value="auto", label="vocal separation")
    go = gr.Button("Make the cover", variant="primary")
    status = gr.Textbox(label="status", interactive=False)
    out = gr.Audio(label="cover", type="filepath", interactive=False)
    stems = gr.File(label="cover and stems", file_count="multiple", interactive=False)

    def run(path, name, t, a, s, method, sep):
        params = {"voice": name, "transpose": t, "auto_transpose": a, "steps": int(s), "f0": method, "separate": sep}
        try:
            job_id = w.submit("cover", params, [path] if path else [])
        except Exception as exc:
            raise _one_line(exc) from None
        for job in w.wait(job_id):
            yield f"job {job_id}: {job['state']} {job['progress'].get('stage', '')}", None, None
        if job["state"] != "done":
            raise gr.Error(job["error"] or job["state"])
        folder = w.store.job_dir(job_id)
        files = [str(folder / f) for f in [job["result"]["cover"], *job["result"]["stems"]]]
        yield f"job {job_id}: done", files[0], files

    go.click(run, [song, voice, transpose, auto, steps, f0, separate], [status, out, stems])


def one_shot(w: Workflow, vocal: str | None, references: list[str] | None, transpose: float,
             auto_transpose: bool) -> str:
    """Convert ``vocal`` into the voice of the ``references`` (averaged); the path of the converted file."""
    from melisma.audio.io import load_audio, save_audio
    from melisma.oneshot import reference_voice

    if not vocal or not references:
        raise gr.Error("upload a vocal and at least one reference clip first")
    try:
        audio, sr = load_audio(vocal, None)
        done = reference_voice(list(references)).convert_detailed(audio, sr, transpose=float(transpose),
                                                                   auto_transpose=bool(auto_transpose))
        return str(save_audio(w.output_path(".wav"), done.audio, done.sr))
    except Exception as exc:
        raise _one_line(exc) from None


def one_shot_tab(w: Workflow) -> None:
    gr.Markdown("**One-shot conversion**: sing in the voice of one or a few reference clips (speech or singing, "
                "at least 1 s each), without training. A trained voice still sounds closer to its singer.")
    refs = gr.File(label="reference clips", file_count="multiple", type="filepath", elem_id="oneshot-refs")
    vocal = gr.Audio(label="vocal (upload or record)", sources=["upload", "microphone"], type="filepath",
                     elem_id="oneshot-input")
    with gr.Row():
        transpose = gr.Slider(-24, 24, value=0, step=1, label="transpose (semitones)")
        auto = gr.Checkbox(label="auto-transpose into the references' range")
    go = gr.Button("Convert to the reference voice", variant="primary", elem_id="oneshot-button")
    out = gr.Audio(label="converted", type="filepath", interactive=False, elem_id="oneshot-output")
    go.click(lambda v, r, t, a: one_shot(w, v, r, t, a), [vocal, refs, transpose, auto], [out])


def evaluate_tab(w: Workflow) -> None:
    converted = gr.File(label="converted clips", file_count="multiple", type="filepath")
    refs = gr.File(label="target voice references", file_count="multiple", type="filepath")
    sources = gr.File(label="sources (one, or one per converted clip)", file_count="multiple", type="filepath")
    transpose = gr.Number(label="transpose applied (semitones)", value=0)
    go = gr.Button("Evaluate", variant="primary")
    table = gr.Dataframe(label="scores", interactive=False)
    plots = gr.Gallery(label="spectrograms and pitch", columns=2)

    def run(conv, ref, src, t):
        from melisma.evaluate import evaluate_clips
        from melisma.evaluate.report import write_report

        if not conv:
            raise gr.Error("upload converted clips first")
        try:
            result = evaluate_clips(list(conv), list(ref or []), sources=list(src or []) or None,
                                    transpose=float(t or 0), keep_details=True)
            page = write_report(result, w.output_path("-evaluation"), list(ref or []))
        except Exception as exc:
            raise _one_line(exc) from None
        doc = result.to_dict()
        rows = [[Path(c["clip"]).name, *(_round(c.get(k)) for k in SCORE_COLUMNS)] for c in doc["clips"]]
        import pandas as pd

        return (pd.DataFrame(rows, columns=["clip", *SCORE_COLUMNS]),
                sorted(str(p) for p in (page.parent / "plots").glob("*.png")))

    go.click(run, [converted, refs, sources, transpose], [table, plots])


SCORE_COLUMNS = ["target_similarity", "similarity_margin", "cents_error_median", "f0_correlation",
                 "vuv_agreement", "dnsmos_ovrl"]


def _round(v: object) -> object:
    return round(v, 3) if isinstance(v, float) else v


# --- the app ---------------------------------------------------------------------------------------------------
def build_ui(data_dir: Path) -> gr.Blocks:
    """The Blocks app over the jobs and voices of ``data_dir`` (start a ``JobRunner`` to run its jobs)."""
    w = Workflow(data_dir)
    with gr.Blocks(title="melisma") as ui:
        gr.Markdown("# melisma\nPrepare songs, train a voice, convert, make covers, evaluate.")
        for label, tab in (("Prepare", prepare_tab), ("Train", train_tab), ("Convert", convert_tab),
                           ("One-shot", one_shot_tab), ("Cover", cover_tab), ("Evaluate", evaluate_tab)):
            with gr.Tab(label, elem_id=f"tab-{label.lower()}"):
                tab(w)
    return ui


def launch(host: str, port: int, data_dir: Path) -> None:
    """Serve the UI until interrupted; jobs run in worker processes and survive a restart."""
    data = Path(data_dir)
    runner = JobRunner(JobStore(data))
    runner.start()
    try:
        build_ui(data).queue(default_concurrency_limit=1).launch(
            server_name=host, server_port=port, allowed_paths=[str(data.resolve())], quiet=True)
    finally:
        runner.stop()
