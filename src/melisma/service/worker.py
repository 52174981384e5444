"""One job in its own process: ``python -m melisma.service.worker DATA_DIR JOB_ID``.

``JobRunner`` (in the service) starts it, watches it and stops it; the worker runs the job's task, writes
progress and the result to the job store, and prints its log (``DATA/jobs/<id>/log.txt``).  SIGINT stops a
training job at a checkpoint.  If the service dies, the worker notices its parent is gone and stops the same
way, so the restarted service resumes the job from that checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from melisma.errors import MelismaError
from melisma.service.jobs import Job, JobStore

CANCEL_GRACE_S = 30.0  # how long a worker may take to checkpoint and exit after SIGINT before it is killed


def run_job(data_dir: Path, job_id: str) -> int:
    """The worker's body: 0 done, 2 failed (one-line error in the store), 130 interrupted (left running)."""
    from melisma.service.tasks import TASKS

    store = JobStore(data_dir)
    job = store.get(job_id)
    if job is None:
        return 2
    _stop_when_orphaned()
    try:
        result = TASKS[job.kind](store.job_dir(job_id), job.params, data_dir,
                                 lambda p: store.update(job_id, progress=p))
    except KeyboardInterrupt:
        return 130
    except MelismaError as exc:
        store.update(job_id, state="failed", error=str(exc))
        print(f"melisma: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: the traceback goes to the job's log, one line to the store
        import traceback

        traceback.print_exc()
        store.update(job_id, state="failed", error=f"internal error: {type(exc).__name__}: {exc}")
        return 2
    store.update(job_id, state="done", result=result, progress={**store.get(job_id).progress, "fraction": 1.0})  # type: ignore[union-attr]
    return 0


def _stop_when_orphaned() -> None:
    """When the service that started this worker dies, interrupt ourselves (training checkpoints and exits)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


class JobRunner:
    """Runs queued jobs one at a time, each in a worker process; a thread of the service.

    ``stop()`` interrupts the running worker and leaves its job marked running, so the next start of the
    service queues it again (a training job resumes from its checkpoint)."""

    def __init__(self, store: JobStore, poll_s: float = 0.3):
        self.store, self.poll_s = store, poll_s
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="melisma-jobs", daemon=True)
        self.current: subprocess.Popen | None = None

    def start(self) -> None:
        for job in self.store.requeue_interrupted():
            _wait_gone(job.pid)
        self.thread.start()

    def stop(self) -> None:
        self.halt.set()
        if self.current is not None and self.current.poll() is None:
            self.current.send_signal(signal.SIGINT)
        self.thread.join(timeout=CANCEL_GRACE_S + 5)

    def _loop(self) -> None:
        while not self.halt.is_set():
            job = self.store.claim_next()
            if job is None:
                self.halt.wait(self.poll_s)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        folder = self.store.job_dir(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "melisma.service.worker", str(self.store.data_dir), job.id]
        with open(folder / "log.txt", "a", encoding="utf-8") as log:
            log.write(f"--- attempt {job.attempts} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.flush()
            self.current = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_worker_env())
            self.store.update(job.id, pid=self.current.pid)
            rc, cancelled = self._watch(job.id, self.current)
        self.current = None
        if self.halt.is_set() and not cancelled:
            return  # the service is stopping: the job stays running and is queued again at the next start
        state = self.store.get(job.id)
        if cancelled:
            self.store.update(job.id, state="cancelled")
        elif state is not None and state.state == "running":
            self.store.update(job.id, state="failed", error=_last_line(folder / "log.txt", rc))

    def _watch(self, job_id: str, proc: subprocess.Popen) -> tuple[int, bool]:
        """Wait for the worker; on a cancel request interrupt it (then kill it after the grace time)."""
        cancelled, deadline = False, None
        while proc.poll() is None:
            if not cancelled:
                job = self.store.get(job_id)
                if job is not None and job.cancel_requested:
                    cancelled, deadline = True, time.monotonic() + CANCEL_GRACE_S
                    proc.send_signal(signal.SIGINT)
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
            time.sleep(self.poll_s)
        return int(proc.returncode), cancelled


def _worker_env() -> dict[str, str]:
    """The service's environment, with this melisma importable by the worker and no progress bars."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def _wait_gone(pid: int | None, timeout_s: float = CANCEL_GRACE_S) -> None:
    """Wait for the worker of an earlier service to checkpoint and exit (it notices its parent died)."""
    if not pid:
        return
    deadline = time.monotonic() + timeout_s
    while _is_worker(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _is_worker(pid):
        os.kill(pid, signal.SIGKILL)


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"melisma.service.worker" in cmdline


def _last_line(log: Path, rc: int) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    tail = lines[-1] if lines and not lines[-1].startswith("---") else ""
    return f"worker exited with status {rc}" + (f": {tail[:300]}" if tail else "")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from melisma.progress import set_quiet

    set_quiet(False)
    return run_job(Path(args[0]), args[1])


if __name__ == "__main__":
    sys.exit(main())
