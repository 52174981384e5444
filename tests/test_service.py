"""melisma serve, used as programs use it: a real service process on a loopback port, real HTTP requests."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from extras import needs
from service_client import Service
from singer_standins import write_clip

from melisma.errors import MelismaError

needs_server = needs("fastapi", "uvicorn", "multipart")
VOICE = "festival-slt"  # a built-in voice: converts a 1-2 s clip in about a second
TOKEN = "s3cret-token"


def wav_bytes(seconds: float = 1.5, sr: int = 44100, f0: float = 220.0) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    audio = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format="WAV")
    return buf.getvalue()


def error_of(body: bytes) -> str:
    doc = json.loads(body)
    assert set(doc) >= {"error"} and "\n" not in doc["error"] and "Traceback" not in doc["error"]
    return doc["error"]


# --- units: no service process ---------------------------------------------------------------------------------
@needs_server
def test_job_store_claims_once_requeues_interrupted_and_cancels(tmp_path):
    from melisma.service.jobs import JobStore

    store = JobStore(tmp_path)
    a, b = store.create("prepare", {"x": 1}), store.create("train", {"name": "me"})
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == a.id and claimed.attempts == 1
    assert store.request_cancel(b.id).state == "cancelled"  # queued: cancelled at once
    assert store.claim_next() is None
    again = JobStore(tmp_path)  # a new service on the same folder
    assert [j.id for j in again.requeue_interrupted()] == [a.id]
    assert again.get(a.id).state == "queued" and again.get(a.id).params == {"x": 1}


@needs_server
def test_job_database_of_a_newer_melisma_is_refused(tmp_path):
    from melisma.service.jobs import JobStore

    JobStore(tmp_path)
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(MelismaError, match="newer than this melisma reads"):
        JobStore(tmp_path)


@needs_server
def test_work_queue_refuses_beyond_its_capacity_with_retry_after():
    from melisma.service.queue import Busy, WorkQueue

    gate = threading.Event()

    async def burst():
        q = WorkQueue(workers=1, waiting=1, wait_s=30)
        tasks = [asyncio.ensure_future(q.run(gate.wait, 5)) for _ in range(4)]
        await asyncio.sleep(0.1)
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(burst())
    assert results[:2] == [True, True]
    assert all(isinstance(r, Busy) and r.status == 429 and r.retry_after >= 1 for r in results[2:])


@needs_server
def test_a_public_address_needs_a_token():
    from melisma.service.app import ServiceSettings, check_settings

    with pytest.raises(MelismaError, match="needs a token"):
        check_settings(ServiceSettings(host="0.0.0.0"))
    check_settings(ServiceSettings(host="0.0.0.0", token="t"))
    check_settings(ServiceSettings(host="::1"))


def test_training_progress_gives_the_eta_from_the_pace():
    from melisma.service.tasks import training_progress

    rows = [{"phase": "teacher", "step": s, "time": 100.0 + 2 * s, "loss": 1.0 / s} for s in range(1, 6)]
    p = training_progress(rows, {"teacher": 10, "distill": 5})
    assert (p["stage"], p["step"], p["fraction"]) == ("teacher", 5, round(5 / 15, 4))
    assert p["eta_s"] == pytest.approx(20.0) and len(p["losses"]) == 5


def test_training_jobs_log_at_least_20_times_a_phase_or_as_often_as_asked():
    from melisma.service.tasks import train_config

    assert train_config({"teacher_steps": 100}).log_every == 5
    assert train_config({"teacher_steps": 100000}).log_every == 25
    assert train_config({"teacher_steps": 100000, "log_every": 2}).log_every == 2


# --- one service for the request tests -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    svc = Service(folder / "data", "--workers", "1", "--queue", "1", "--max-upload-mb", "2",
                  "--max-audio-seconds", "20", token=TOKEN).start()
    yield svc
    svc.stop()


@pytest.mark.slow
@needs_server
def test_convert_returns_audio_of_the_input_length(service, tmp_path):
    clip = tmp_path / "in.wav"
    write_clip(clip, seconds=1.5)
    before = hashlib.sha256(clip.read_bytes()).hexdigest()
    status, headers, body = service.post_form("/v1/convert", {"voice": VOICE, "transpose": "2"},
                                              [("audio", "in.wav", clip.read_bytes())])
    assert status == 200, body[:300]
    assert headers["content-type"] == "audio/wav" and float(headers["x-melisma-transpose"]) == 2.0
    audio, sr = sf.read(io.BytesIO(body))
    assert sr == 44100 and audio.shape == (int(1.5 * 44100),)
    assert np.sqrt(np.mean(audio**2)) > 0.01 and np.isfinite(audio).all()
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == before
    assert not list((service.data_dir / "tmp").iterdir())  # uploads are not kept


@pytest.mark.slow
@needs_server
def test_bad_requests_get_one_line_json_errors(service):
    audio = wav_bytes(1.0)
    cases = [
        ({"voice": VOICE}, [("audio", "notes.wav", b"this is not audio")], 400, "not a readable audio file"),
        ({"voice": VOICE}, [], 422, "audio"),
        ({}, [("audio", "a.wav", audio)], 422, "voice"),
        ({"voice": "nobody"}, [("audio", "a.wav", audio)], 400, "not a trained or built-in voice"),
        ({"voice": VOICE, "transpose": "99"}, [("audio", "a.wav", audio)], 400, "transpose"),
        ({"voice": VOICE, "steps": "many"}, [("audio", "a.wav", audio)], 422, "steps"),
        ({"voice": VOICE}, [("audio", "long.wav", wav_bytes(25.0, sr=8000))], 413, "longer than the limit"),
        ({"voice": VOICE}, [("audio", "big.wav", b"\0" * 3_000_000)], 413, "larger than the limit"),
    ]
    for fields, files, want, text in cases:
        status, _, body = service.post_form("/v1/convert", fields, files)
        assert (status, text in error_of(body)) == (want, True), (fields, status, body[:200])
    status, _, body = service.request("GET", "/v1/jobs/000000000000")
    assert status == 404 and "no job" in error_of(body)
    status, _, body = service.post_form("/v1/jobs", {"kind": "train", "params": "{not json"})
    assert status == 400 and "not valid JSON" in error_of(body)
    status, _, body = service.post_form("/v1/jobs", {"kind": "dance"})
    assert status == 400 and "job kind" in error_of(body)


@pytest.mark.slow
@needs_server
def test_a_missing_or_wrong_token_is_refused(service):
    assert service.request("GET", "/healthz", token=None)[0] == 200  # liveness needs no token
    for token, text in ((None, "missing token"), ("wrong", "wrong token")):
        status, headers, body = service.request("GET", "/v1/voices", token=token)
        assert status == 401 and text in error_of(body) and headers["www-authenticate"] == "Bearer"
    status, doc = service.get_json("/v1/voices")
    assert status == 200 and {"name": VOICE, "kind": "builtin"} in doc["voices"]
    status, schema = service.get_json("/openapi.json")
    assert status == 200 and {"/v1/convert", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/evaluate"} <= set(schema["paths"])


@pytest.mark.slow
@needs_server
def test_a_burst_beyond_the_queue_is_answered_429_never_dropped(service):
    audio = wav_bytes(1.0)

    def one(_):
        return service.post_form("/v1/convert", {"voice": VOICE}, [("audio", "a.wav", audio)])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))  # capacity is 2 (1 worker + 1 waiting)
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {200, 429, 503} and statuses.count(200) >= 1 and 429 in statuses
    for status, headers, body in answers:
        if status != 200:
            assert int(headers["retry-after"]) >= 1 and "busy" in error_of(body)
    status, health = service.get_json("/healthz")
    assert status == 200 and health["queue"]["admitted"] == 0


@pytest.mark.slow
@needs_server
def test_evaluate_scores_uploaded_conversions(service, tmp_path):
    write_clip(tmp_path / "s.wav", seconds=1.5)
    source = (tmp_path / "s.wav").read_bytes()
    _, _, converted = service.post_form("/v1/convert", {"voice": VOICE}, [("audio", "s.wav", source)])
    status, _, body = service.post_form("/v1/evaluate", {"metrics": "pitch"},
                                        [("converted", "c.wav", converted), ("sources", "s.wav", source)])
    assert status == 200, body[:300]
    doc = json.loads(body)
    assert doc["format"] == "melisma.evaluation" and len(doc["clips"]) == 1
    clip = doc["clips"][0]
    assert clip["clip"] == "c.wav" and clip["duration_s"] == pytest.approx(1.5, abs=0.01) and 0 <= clip["cents_error_median"] < 1200


# --- a training job across a restart of the service ------------------------------------------------------------
def wait_for(service: Service, job_id: str, done, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, job = service.get_json(f"/v1/jobs/{job_id}")
        assert status == 200
        if done(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} stuck: {job}")


@pytest.mark.slow
@needs_server
def test_a_training_job_survives_a_killed_service_and_its_voice_converts(tmp_path):
    clips = []
    for i in range(2):
        write_clip(tmp_path / f"c{i}.wav", seconds=2.5, f0=200.0 + 40 * i)
        clips.append(("files", f"c{i}.wav", (tmp_path / f"c{i}.wav").read_bytes()))
    params = {"name": "mine", "teacher_steps": 10, "distill_steps": 2, "batch_size": 2, "pitch_shifts": [],
              "checkpoint_every": 2}
    svc = Service(tmp_path / "data").start()
    try:
        status, _, body = svc.post_form("/v1/jobs", {"kind": "train", "params": json.dumps(params)}, clips)
        assert status == 202, body
        job_id = json.loads(body)["id"]
        status, _, body = svc.post_form("/v1/jobs", {"kind": "cover", "params": json.dumps({"voice": VOICE})},
                                        [("files", "song.wav", wav_bytes(2.0))])
        queued = json.loads(body)["id"]
        assert svc.get_json(f"/v1/jobs/{queued}")[1]["state"] == "queued"
        assert json.loads(svc.request("POST", f"/v1/jobs/{queued}/cancel")[2])["state"] == "cancelled"
        job = wait_for(svc, job_id, lambda j: j["progress"].get("step", 0) >= 3)
        assert job["state"] == "running" and job["progress"]["loss"] > 0 and job["progress"]["eta_s"] is not None
        svc.kill()
    finally:
        svc.stop()
    svc = Service(tmp_path / "data").start()  # the same data dir, a new process
    try:
        job = wait_for(svc, job_id, lambda j: j["state"] in ("done", "failed"))
        log = svc.data_dir / "jobs" / job_id / "log.txt"
        assert job["state"] == "done", f"{job['error']}\n--- worker log ---\n{log.read_text()[-4000:] if log.exists() else ''}"
        assert job["attempts"] == 2 and "resuming at teacher step" in (svc.data_dir / "jobs" / job_id / "log.txt").read_text()
        assert svc.get_json(f"/v1/jobs/{queued}")[1]["state"] == "cancelled"
        assert {"name": "mine", "kind": "trained"} in svc.get_json("/v1/voices")[1]["voices"]
        status, _, preview = svc.request("GET", f"/v1/jobs/{job_id}/files/{job['result']['preview']}")
        assert status == 200 and sf.info(io.BytesIO(preview)).duration == pytest.approx(2.5, abs=0.01)
        assert svc.request("GET", f"/v1/jobs/{job_id}/files/../../jobs.sqlite3")[0] == 404
        status, _, out = svc.post_form("/v1/convert", {"voice": "mine"}, [("audio", "a.wav", wav_bytes(1.0))])
        assert status == 200 and sf.info(io.BytesIO(out)).duration == pytest.approx(1.0, abs=0.01)
    finally:
        svc.stop()


# --- prepare, cover and cancel as jobs over HTTP ---------------------------------------------------------------
def song_bytes(phrases: tuple[float, ...], pause: float, seed: int = 0) -> tuple[bytes, float]:
    """A synthetic song (sung phrases over a drum loop) as 16-bit WAV bytes, and its duration in seconds."""
    from melisma.prepare.synthetic import SAMPLE_RATE, synthetic_song

    mix = synthetic_song(phrases, pause=pause, seed=seed).mix
    buf = io.BytesIO()
    sf.write(buf, mix, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue(), mix.size / SAMPLE_RATE


def start_job(service: Service, kind: str, params: dict, files: list[tuple[str, str, bytes]]) -> str:
    status, _, body = service.post_form("/v1/jobs", {"kind": kind, "params": json.dumps(params)}, files)
    assert status == 202, body[:300]
    doc = json.loads(body)
    assert doc["kind"] == kind and doc["state"] == "queued"
    return doc["id"]


def finished(job: dict) -> bool:
    return job["state"] in ("done", "failed", "cancelled")


@pytest.mark.slow
@needs_server
def test_a_prepare_job_keeps_clips_that_can_be_fetched(service):
    song, _ = song_bytes((3.0, 3.5), pause=1.0)
    job_id = start_job(service, "prepare", {"separate": "dsp"}, [("files", "song.wav", song)])
    job = wait_for(service, job_id, finished, timeout_s=180)
    assert job["state"] == "done", job["error"]
    result = job["result"]
    kept = [c for c in result["clips"] if c["status"] == "kept"]
    assert len(kept) >= 1 and result["totals"]["usable_minutes"] > 0 and "usable audio:" in result["report"]
    status, _, body = service.request("GET", f"/v1/jobs/{job_id}/files/{result['dataset']}/manifest.json")
    assert status == 200
    manifest = json.loads(body)
    assert manifest["format"] == "melisma.dataset" and manifest["clips"] == result["clips"]
    for clip in kept:
        status, _, body = service.request("GET", f"/v1/jobs/{job_id}/files/{result['dataset']}/{clip['path']}")
        assert status == 200, clip
        audio, sr = sf.read(io.BytesIO(body))
        assert sr == 44100 and audio.ndim == 1 and abs(audio.size / sr - clip["duration_s"]) < 0.01
        assert np.sqrt(np.mean(audio**2)) > 0.01
    status, _, body = service.request("GET", f"/v1/jobs/{job_id}/files/{result['dataset']}/clips/nothing.wav")
    assert status == 404 and "has no file" in error_of(body)


@pytest.mark.slow
@needs_server
def test_a_cover_job_sings_the_song_with_a_builtin_voice(service):
    song, seconds = song_bytes((2.0,), pause=0.5, seed=1)
    job_id = start_job(service, "cover", {"voice": VOICE, "separate": "dsp"}, [("files", "song.wav", song)])
    job = wait_for(service, job_id, finished, timeout_s=180)
    assert job["state"] == "done", job["error"]
    assert job["result"]["cover"] == "cover.wav" and job["progress"]["fraction"] == 1.0
    status, headers, body = service.request("GET", f"/v1/jobs/{job_id}/files/cover.wav")
    assert status == 200
    cover, sr = sf.read(io.BytesIO(body))
    assert abs(cover.shape[0] / sr - seconds) < 0.01 and np.isfinite(cover).all()
    assert np.sqrt(np.mean(cover**2)) > 0.01
    for stem in job["result"]["stems"]:
        status, _, body = service.request("GET", f"/v1/jobs/{job_id}/files/{stem}")
        assert status == 200 and abs(sf.info(io.BytesIO(body)).duration - seconds) < 0.01, stem


def worker_alive(pid: int) -> bool:
    try:
        return b"melisma.service.worker" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


@pytest.mark.slow
@needs_server
def test_cancelling_a_running_training_job_stops_its_worker(service, tmp_path):
    from melisma.service.jobs import JobStore

    write_clip(tmp_path / "c.wav", seconds=2.5)
    params = {"name": "never", "teacher_steps": 100000, "distill_steps": 10, "batch_size": 2, "pitch_shifts": [],
              "checkpoint_every": 1000, "log_every": 2}
    job_id = start_job(service, "train", params, [("files", "c.wav", (tmp_path / "c.wav").read_bytes())])
    job = wait_for(service, job_id, lambda j: finished(j) or j["progress"].get("step", 0) >= 2, timeout_s=180)
    assert job["state"] == "running", job["error"]
    pid = JobStore(service.data_dir).get(job_id).pid
    assert pid and worker_alive(pid)
    status, _, body = service.request("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 200 and json.loads(body)["cancel_requested"] is True
    job = wait_for(service, job_id, finished, timeout_s=60)
    assert job["state"] == "cancelled" and job["error"] is None and job["progress"]["step"] < 100000
    assert not worker_alive(pid)
    assert "interrupted: checkpoint saved" in (service.data_dir / "jobs" / job_id / "log.txt").read_text()
    assert not (service.data_dir / "voices" / "never.melisma").exists()
    status, health = service.get_json("/healthz")
    assert status == 200 and health["jobs_unfinished"] == 0
    assert {"name": "never", "kind": "trained"} not in service.get_json("/v1/voices")[1]["voices"]
