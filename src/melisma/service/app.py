"""The HTTP service (FastAPI): a thin client of melisma's Python API.

    POST /v1/convert          audio in (multipart ``audio``), audio out; voice and options as form fields
    GET  /v1/voices           built-in voices and the voices this service trained
    POST /v1/evaluate         ``melisma evaluate``'s scores (JSON) of uploaded conversions
    POST /v1/jobs             prepare / train / cover as a job (files + JSON ``params``); GET /v1/jobs lists
    GET  /v1/jobs/{id}        state, progress (training: phase, step, loss, ETA), result, error
    POST /v1/jobs/{id}/cancel and GET /v1/jobs/{id}/files/{name} (outputs)
    GET  /healthz             liveness and queue state (no token needed);  /openapi.json, /docs

Every error is a JSON body ``{"error": "<one line>"}`` with a 4xx/5xx status.  Conversions and evaluations go
through a bounded ``WorkQueue`` (429 / 503 with Retry-After when full); long work goes to the job store.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import ipaddress
import json
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from melisma import __version__
from melisma.errors import MelismaError
from melisma.service.jobs import KINDS, JobStore, new_job_id
from melisma.service.queue import Busy, WorkQueue
from melisma.service.voices import VoiceCache, available_voices
from melisma.service.worker import JobRunner

OUTPUT_FORMATS = {"wav": "audio/wav", "flac": "audio/flac"}


@dataclass(frozen=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = Path("melisma-service")
    token: str | None = None  # required of every /v1 request when set; must be set off loopback
    workers: int = 1  # conversions at once (each uses torch's threads)
    waiting: int = 4  # conversions that may wait for a worker; more get 429
    wait_s: float = 60.0  # longest wait for a worker before 503
    max_upload_mb: float = 50.0  # request body limit (413)
    max_audio_s: float = 600.0  # longest audio a request may carry (413)
    max_jobs: int = 16  # queued + running jobs; more get 429
    run_jobs: bool = True  # start the job runner (off: jobs are only stored)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(s: ServiceSettings) -> None:
    """One-line errors for settings the service must refuse (a public address without a token)."""
    if not is_loopback(s.host) and not s.token:
        raise MelismaError(f"binding to {s.host} (not loopback) needs a token: pass --token or set "
                           "MELISMA_SERVICE_TOKEN")
    for name, value, low in (("workers", s.workers, 1), ("waiting", s.waiting, 0), ("max_jobs", s.max_jobs, 1)):
        if value < low:
            raise MelismaError(f"{name} {value}: must be at least {low}")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before (or while) it is read."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _drain(receive, 10 * self.limit)
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # a body without Content-Length, or longer than it said
                raise StarletteHTTPException(413, _too_large_text(self.limit))
            return message

        await self.app(scope, counted, send)


async def _drain(receive, most: int) -> None:
    """Read (and drop) a refused body, up to ``most`` bytes: a client still sending when the answer comes and the
    connection closes would see a broken pipe instead of the 413."""
    seen = 0
    while seen <= most:
        message = await receive()
        seen += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _too_large_text(limit: int) -> str:
    return f"request body larger than the limit of {limit / 1e6:g} MB"


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": _too_large_text(limit)}, status_code=413)


def create_app(settings: ServiceSettings) -> FastAPI:
    """The FastAPI application of ``settings`` (the job runner starts with it and stops with it)."""
    check_settings(settings)
    data = settings.data_dir.resolve()
    store = JobStore(data)
    queue = WorkQueue(settings.workers, settings.waiting, settings.wait_s)
    runner = JobRunner(store)
    voices = VoiceCache()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.run_jobs:
            runner.start()
        yield
        if settings.run_jobs:
            await asyncio.to_thread(runner.stop)
        queue.close()

    app = FastAPI(title="melisma", version=__version__, lifespan=lifespan,
                  description="Singing voice conversion: convert, evaluate, and jobs to prepare, train and cover.")
    app.state.settings, app.state.store, app.state.queue = settings, store, queue
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=int(settings.max_upload_mb * 1e6))

    @app.get("/healthz", summary="liveness, version and queue state (no token needed)")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "queue": queue.state(),
                "jobs_unfinished": store.count_unfinished()}

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_token_check(settings.token))])
    _conversion_routes(v1, settings, data, queue, voices)
    _job_routes(v1, settings, data, store)
    app.include_router(v1)
    return app


def _token_check(token: str | None):
    def check(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if not given:
            raise HTTPError(401, "missing token: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPError(401, "wrong token", {"WWW-Authenticate": "Bearer"})
    return check


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPError)
    async def http_error(_: Request, exc: HTTPError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"error": str(exc), "retry_after": exc.retry_after}, status_code=exc.status,
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(MelismaError)
    async def bad_input(_: Request, exc: MelismaError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                 for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_exc(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


# --- conversion and evaluation -------------------------------------------------------------------------------
def _conversion_routes(v1: APIRouter, s: ServiceSettings, data: Path, queue: WorkQueue, voices: VoiceCache) -> None:
    from melisma.service.tasks import resolve_voice

    @v1.get("/voices", summary="voices to convert with: built-in ones and those trained by this service")
    def list_voices() -> dict[str, Any]:
        return {"voices": available_voices(data)}

    @v1.post("/convert", summary="convert a vocal to a voice: audio in, audio out",
             response_class=Response, responses={200: {"content": {"audio/wav": {}, "audio/flac": {}}}})
    async def convert(audio: Annotated[UploadFile, File(description="the vocal (wav, flac, ogg, mp3)")],
                      voice: Annotated[str, Form()], transpose: Annotated[float, Form()] = 0.0,
                      auto_transpose: Annotated[bool, Form()] = False, steps: Annotated[int, Form()] = 1,
                      f0: Annotated[str, Form()] = "dio", singer: Annotated[str | None, Form()] = None,
                      seed: Annotated[int, Form()] = 0, format: Annotated[str, Form()] = "wav") -> Response:
        if format not in OUTPUT_FORMATS:
            raise HTTPError(400, f"format {format!r}: use {' or '.join(OUTPUT_FORMATS)}")
        with tempfile.TemporaryDirectory(dir=_tmp(data)) as tmp:
            path = await _save_upload(audio, Path(tmp), s.max_audio_s)
            name = resolve_voice(data, voice)
            options = dict(transpose=transpose, auto_transpose=auto_transpose, steps=steps, singer=singer or None,
                           seed=seed)
            body, shift, took = await queue.run(_convert_file, voices, name, f0, path, options, format)
        return Response(body, media_type=OUTPUT_FORMATS[format],
                        headers={"X-Melisma-Transpose": f"{shift:g}", "X-Melisma-Seconds": f"{took:.3f}"})

    @v1.post("/evaluate", summary="objective scores of conversions (melisma evaluate), as JSON")
    async def evaluate(converted: Annotated[list[UploadFile], File()],
                       references: Annotated[list[UploadFile] | None, File()] = None,
                       sources: Annotated[list[UploadFile] | None, File()] = None,
                       transpose: Annotated[float, Form()] = 0.0, metrics: Annotated[str, Form()] = "all") -> dict[str, Any]:
        from melisma.evaluate import METRICS

        chosen = METRICS if metrics == "all" else tuple(m.strip() for m in metrics.split(",") if m.strip())
        with tempfile.TemporaryDirectory(dir=_tmp(data)) as tmp:
            groups = {}
            for group, files in (("converted", converted), ("references", references or []),
                                 ("sources", sources or [])):
                folder = Path(tmp) / group
                groups[group] = [str(await _save_upload(f, folder, s.max_audio_s)) for f in files]
            return await queue.run(_evaluate_files, groups, transpose, chosen)


def _tmp(data: Path) -> Path:
    folder = data / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _save_upload(upload: UploadFile, folder: Path, max_audio_s: float) -> Path:
    """Write an uploaded audio file under ``folder``; 400 when it is not audio, 413 when it is too long."""
    from melisma.audio.io import probe_audio

    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(upload.filename or "upload.wav")
    path = folder / name
    with open(path, "wb") as out:
        await asyncio.to_thread(shutil.copyfileobj, upload.file, out)
    try:
        info = probe_audio(path)
    except MelismaError as exc:  # name the upload, not where the service keeps it
        raise MelismaError(str(exc).replace(str(path), name)) from None
    if info.duration > max_audio_s:
        raise HTTPError(413, f"{name}: {info.duration:.1f} s of audio is longer than the limit of {max_audio_s:g} s")
    return path


def safe_name(filename: str) -> str:
    """A file name with no folders and only harmless characters (uploads keep their suffix)."""
    base = Path(filename.replace("\\", "/")).name
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip(".")
    return cleaned[:100] or "upload.wav"


def _convert_file(voices: VoiceCache, voice: str, f0: str, path: Path, options: dict[str, Any],
                  fmt: str) -> tuple[bytes, float, float]:
    """Runs on a worker thread: load, convert, encode; (encoded audio, transposition, seconds)."""
    import time

    import soundfile as sf

    from melisma.audio.io import load_audio

    audio, sr = load_audio(path, None)
    t0 = time.monotonic()
    done = voices.get(voice, f0).convert_detailed(audio, sr, **options)
    took = time.monotonic() - t0
    buf = io.BytesIO()
    sf.write(buf, done.audio, done.sr, format=fmt.upper())
    return buf.getvalue(), done.transpose, took


def _evaluate_files(groups: dict[str, list[str]], transpose: float, metrics: tuple[str, ...]) -> dict[str, Any]:
    from melisma.evaluate import evaluate_clips

    result = evaluate_clips(groups["converted"], groups["references"], sources=groups["sources"] or None,
                            transpose=transpose, metrics=metrics)
    doc = json.loads(result.to_json())
    for clip in doc["clips"]:  # the upload's name, not where the service kept it
        clip["clip"] = Path(clip["clip"]).name
    doc["settings"]["target_refs"] = [Path(p).name for p in doc["settings"].get("target_refs", [])]
    return doc


# --- jobs ----------------------------------------------------------------------------------------------------
def _job_routes(v1: APIRouter, s: ServiceSettings, data: Path, store: JobStore) -> None:
    from melisma.service.tasks import validate_job

    @v1.post("/jobs", status_code=202, summary="start a prepare, train or cover job (files + JSON params)")
    async def create_job(kind: Annotated[str, Form(description=" | ".join(KINDS))],
                         params: Annotated[str, Form(description="JSON object of the job's options")] = "{}",
                         files: Annotated[list[UploadFile] | None, File()] = None) -> dict[str, Any]:
        files = files or []
        try:
            options = json.loads(params)
        except json.JSONDecodeError as exc:
            raise HTTPError(400, f"params: not valid JSON ({exc.msg})") from None
        if not isinstance(options, dict):
            raise HTTPError(400, "params: must be a JSON object")
        validate_job(kind, options, len(files), data)
        if store.count_unfinished() >= s.max_jobs:
            raise HTTPError(429, f"{s.max_jobs} jobs are queued or running; retry later", {"Retry-After": "30"})
        job_id = new_job_id()
        inputs = store.job_dir(job_id) / "inputs"
        try:
            for f in files:
                await _save_upload(f, inputs, s.max_audio_s)
        except BaseException:
            shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
            raise
        return store.create(kind, options, job_id).to_dict()

    @v1.get("/jobs", summary="the latest jobs, newest first")
    def list_jobs(limit: int = 50) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in store.recent(max(1, min(limit, 500)))]}

    @v1.get("/jobs/{job_id}", summary="a job's state, progress, result and error")
    def get_job(job_id: str) -> dict[str, Any]:
        return _job_or_404(store, job_id).to_dict()

    @v1.post("/jobs/{job_id}/cancel", summary="cancel a job (a training job stops at a checkpoint)")
    def cancel_job(job_id: str) -> dict[str, Any]:
        _job_or_404(store, job_id)
        job = store.request_cancel(job_id)
        return job.to_dict() if job else {}

    @v1.get("/jobs/{job_id}/files/{name:path}", summary="a file a job wrote (cover.wav, preview.wav, ...)")
    def job_file(job_id: str, name: str) -> FileResponse:
        folder = store.job_dir(_job_or_404(store, job_id).id).resolve()
        path = (folder / name).resolve()
        if folder not in path.parents or not path.is_file():
            raise HTTPError(404, f"job {job_id} has no file {name!r}")
        return FileResponse(path)


def _job_or_404(store: JobStore, job_id: str):
    job = store.get(job_id)
    if job is None:
        raise HTTPError(404, f"no job {job_id!r}")
    return job


def serve(settings: ServiceSettings) -> None:
    """Run the service until interrupted (uvicorn; SIGINT / SIGTERM stop it cleanly, jobs kept)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                timeout_graceful_shutdown=10)
