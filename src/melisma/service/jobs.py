"""The job store: long work (prepare, train, cover) as rows of an embedded SQLite database.

A job's row holds its kind, parameters, state, progress and result; its files live in ``DATA/jobs/<id>/``
(``inputs/`` as uploaded, outputs beside them, ``log.txt``).  Every change is one committed transaction, so a
service killed at any moment restarts with every job it had: ``requeue_interrupted`` puts the ones that were
running back in the queue, and a training job then resumes from its checkpoint.

States: queued -> running -> done | failed | cancelled (a queued job can be cancelled before it runs).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from melisma.formats import check, stamp

KINDS = ("prepare", "train", "cover")
STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
DB_NAME = "jobs.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}', result TEXT NOT NULL DEFAULT '{}', error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER, cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
"""


@dataclass
class Job:
    """One row of the store. ``progress`` and ``result`` are JSON objects the worker fills."""

    id: str
    kind: str
    state: str
    params: dict[str, Any]
    created: float
    updated: float
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    pid: int | None = None
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("pid")
        return d


class JobStore:
    """The SQLite job table under ``data_dir``; safe to use from several threads and processes at once."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        setup = sqlite3.connect(self.path, timeout=30.0)
        try:
            setup.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            setup.executescript(_SCHEMA)
        finally:
            setup.close()
        with self._db() as db:
            self._check_stamp(db)

    def _check_stamp(self, db: sqlite3.Connection) -> None:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in stamp("service-db").items()])
        else:
            check(rows, "service-db", self.path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def job_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    # --- rows ---------------------------------------------------------------------------------------------
    def create(self, kind: str, params: dict[str, Any], job_id: str | None = None) -> Job:
        """A new queued job; pass ``job_id`` (from ``new_job_id``) when its input files are written first."""
        now = time.time()
        job = Job(job_id or new_job_id(), kind, "queued", params, now, now)
        with self._db() as db:
            db.execute("INSERT INTO jobs (id, kind, state, params, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                       (job.id, kind, job.state, json.dumps(params), now, now))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._db() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def recent(self, limit: int = 100) -> list[Job]:
        with self._db() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [_job(r) for r in rows]

    def count_unfinished(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0])

    def update(self, job_id: str, **values: Any) -> None:
        """Set columns of one job (``progress``/``result``/``params`` as dicts)."""
        sets = {k: json.dumps(v) if k in ("progress", "result", "params") else v for k, v in values.items()}
        sets["updated"] = time.time()
        columns = ", ".join(f"{k} = ?" for k in sets)
        with self._db() as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*sets.values(), job_id))

    # --- the queue ----------------------------------------------------------------------------------------
    def claim_next(self) -> Job | None:
        """The oldest queued job, now marked running (one transaction, so two runners never take the same)."""
        with self._db() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, updated = ? WHERE id = ?",
                       (time.time(), row[0]))
        job = _job(row)
        job.state, job.attempts = "running", job.attempts + 1
        return job

    def requeue_interrupted(self) -> list[Job]:
        """Jobs left running by a service that stopped (or was killed): queued again, oldest first.

        Returns them with the pid of the worker they had, so the runner can wait for it to be gone."""
        with self._db() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state = 'running' ORDER BY created").fetchall()
            db.execute("UPDATE jobs SET state = 'queued', updated = ? WHERE state = 'running'", (time.time(),))
        return [_job(r) for r in rows]

    def request_cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is flagged and its runner stops the worker."""
        with self._db() as db:
            db.execute("UPDATE jobs SET state = 'cancelled', updated = ? WHERE id = ? AND state = 'queued'",
                       (time.time(), job_id))
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'", (job_id,))
        return self.get(job_id)


def new_job_id() -> str:
    """12 hex digits, random."""
    return secrets.token_hex(6)


_COLUMNS = "id, kind, state, params, created, updated, progress, result, error, attempts, pid, cancel_requested"


def _job(row: tuple) -> Job:
    (id_, kind, state, params, created, updated, progress, result, error, attempts, pid, cancel) = row
    return Job(id_, kind, state, json.loads(params), created, updated, json.loads(progress), json.loads(result),
               error, int(attempts), pid, bool(cancel))
