"""The durable job queue: every accepted request becomes a row here before it is acknowledged.

One SQLite file (``settings.db_path``) in WAL mode.  The writes that are promises
(:meth:`JobQueue.submit`, :meth:`reject`, :meth:`retry`) commit with ``synchronous=FULL``:
a request returned by :meth:`submit` has reached the disk.  Bookkeeping writes (claims,
step records, outcomes) commit with ``synchronous=NORMAL``: durable if the process dies,
possibly rolled back by an OS crash or power loss, which only makes a job run again (its
steps are idempotent) — and saves an fsync per step on the CREATE hot path.  A step costs
one write: :meth:`JobQueue.start_step` also records how the job's previous steps ended, and
the outcome (:meth:`complete`, :meth:`fail`, :meth:`defer`) the end of its last.  Each thread
gets its own connection; every write is one short ``BEGIN IMMEDIATE`` transaction, and a
worker claims its job inside such a transaction, so several workers (threads or processes)
never take the same job.  Writers of one process queue on a lock first, so they wait for
each other without SQLite's sleeping busy-retry loop.

Ordering: :meth:`JobQueue.claim` hands out the oldest runnable ``queued`` job such that no
*earlier* unfinished job (``queued`` or ``running``) touches one of its students; a RESET
range ``min,max`` touches every student inside it.  Jobs of one student therefore run in
arrival order, different students in parallel.  One exception keeps a participant's
completion report: a CLEANUP runs before an earlier PURGE or RESET of the same customer on
its seat that is still queued (not running; typically waiting for the api-db to report the
customer ``cleaned``, which only that CLEANUP will do), and such a PURGE or RESET waits for
the CLEANUP.  A CLEANUP held back by anything else (a CREATE in between, a running job)
does not overtake.  A job whose student is not known yet
(``[object Promise]`` from the api-db, ``stdid`` None) is runnable at once; the runner pins
the student with :meth:`set_stdid` and, if :meth:`earlier_unfinished` says an earlier job
of that student is still pending, gives the job back with ``defer(id, 0, ...,
attempt_used=False)``.

Tables: ``jobs`` (the request, its state, attempts and outcome), ``steps`` (one row per
step of each attempt, with timing and output), ``rejections`` (refused requests, for the
audit trail), ``processes`` (the process group of each command a job is running, so that
the next start can kill what a killed server left behind).  The queue does not deduplicate:
every lifecycle step is idempotent (and a repeated CREATE is recognised by the lifecycle).

Secrets: step output and failure output are stored as given.  Callers must pass text that
is already safe (no password, no token); the queue cannot tell.

Errors: a database that cannot be written raises :class:`wod.errors.Transient` from
:meth:`submit` / :meth:`reject` (intake answers "try later": SMTP 451, HTTP 503, exit 75).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wod import __version__
from wod.errors import Transient, WodError
from wod.requests import Request, Verb, verb_hint

log = logging.getLogger(__name__)

MAX_RAW = 64 * 1024
MAX_OUTPUT = 64 * 1024
UNFINISHED = ("queued", "running")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
#: Statuses a job never leaves by itself (``cancelled``: stopped by an admin, kept on record).
FINISHED = ("done", "failed", "cancelled")

#: The schema this release writes (``PRAGMA user_version``).  Version 1 is the schema from
#: before versions were recorded (its databases say 0).
SCHEMA_VERSION = 3

#: The latest schema.  Every statement is idempotent (``IF NOT EXISTS``): a migration may
#: run it to add what an older database lacks.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    verb        TEXT    NOT NULL,
    stdid_min   INTEGER,
    stdid_max   INTEGER,
    customer    INTEGER NOT NULL,
    workshop    TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    request     TEXT    NOT NULL,
    raw         BLOB,
    status      TEXT    NOT NULL DEFAULT 'queued',
    attempts    INTEGER NOT NULL DEFAULT 0,
    budget_from INTEGER NOT NULL DEFAULT 0,
    not_before  REAL    NOT NULL,
    created     REAL    NOT NULL,
    started     REAL,
    finished    REAL,
    worker      TEXT,
    reason      TEXT    NOT NULL DEFAULT '',
    output      TEXT    NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id)",
    "CREATE INDEX IF NOT EXISTS jobs_verb ON jobs (verb, id)",
    "CREATE INDEX IF NOT EXISTS jobs_workshop ON jobs (workshop, id)",
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished) WHERE status = 'failed'",
    # A seat's latest job (_latest_touching): jobs by their first student, and the few
    # that name a range.
    "CREATE INDEX IF NOT EXISTS jobs_seat ON jobs (stdid_min, id)",
    "CREATE INDEX IF NOT EXISTS jobs_ranges ON jobs (id) WHERE stdid_max > stdid_min",
    """CREATE TABLE IF NOT EXISTS steps (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   INTEGER NOT NULL REFERENCES jobs (id),
    attempt  INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    started  REAL    NOT NULL,
    seconds  REAL,
    output   TEXT    NOT NULL DEFAULT '',
    count    INTEGER NOT NULL DEFAULT 1
)""",
    "CREATE INDEX IF NOT EXISTS steps_job ON steps (job_id, id)",
    """CREATE TABLE IF NOT EXISTS rejections (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    channel TEXT NOT NULL,
    reason  TEXT NOT NULL,
    raw     BLOB
)""",
    """CREATE TABLE IF NOT EXISTS intake_counts (
    channel TEXT    NOT NULL,
    verb    TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    n       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, verb, outcome)
)""",
    """CREATE TABLE IF NOT EXISTS processes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL,
    pgid        INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL,
    boot_id     TEXT    NOT NULL,
    what        TEXT    NOT NULL,
    at          REAL    NOT NULL
)""",
)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _to_2(db: sqlite3.Connection) -> None:
    """Version 2: ``steps.count`` (one row per waiting step, however often it waited), the
    ``processes`` table (process groups of running commands), intake counters, indexes for
    the job list.  Jobs, steps and rejections are kept as they are."""
    if "count" not in _columns(db, "steps"):
        db.execute("ALTER TABLE steps ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
    for statement in SCHEMA:
        db.execute(statement)


def _to_3(db: sqlite3.Connection) -> None:
    """Version 3: the ``jobs_seat`` and ``jobs_ranges`` indexes (a seat's latest job is
    found without reading the history back to it)."""
    for statement in SCHEMA:
        db.execute(statement)


#: ``MIGRATIONS[n]`` takes a database of version ``n - 1`` to version ``n``; all of them
#: run in one transaction with the version change.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _to_2, 3: _to_3}


JOB_COLUMNS = (
    "id, verb, stdid_min, stdid_max, customer, workshop, channel, request, status, attempts, "
    "budget_from, not_before, created, started, finished, worker, reason, output"
)


def _overlap(a: str, b: str) -> str:
    """SQL: jobs ``a`` and ``b`` touch a common student (both known)."""
    return (
        f"{a}.stdid_min IS NOT NULL AND {b}.stdid_min IS NOT NULL"
        f" AND {a}.stdid_min <= {b}.stdid_max AND {b}.stdid_min <= {a}.stdid_max"
    )


def _waits_for(j: str, e: str) -> str:
    """SQL: job ``j`` must wait for the earlier job ``e`` (module docstring, "Ordering"):
    ``e`` is unfinished and touches one of ``j``'s students, unless ``j`` is a CLEANUP and
    ``e`` a PURGE or RESET of the same customer that is only queued."""
    return (
        f"{e}.id < {j}.id AND {e}.status IN ('queued', 'running') AND {_overlap(j, e)}"
        f" AND NOT ({j}.verb = 'CLEANUP' AND {e}.status = 'queued'"
        f" AND {e}.verb IN ('PURGE', 'RESET') AND {e}.customer = {j}.customer)"
    )


def _touching(*, single: bool) -> tuple[str, str]:
    """The jobs ``e`` touching a student of ``[:lo, :hi]``, as two ``FROM ... WHERE``
    parts each read through its index: those whose first student is one of them
    (``jobs_seat``; ``single``: ``:lo`` only, an index seek that also gives the id order),
    and the ranges that start below ``:lo`` and reach it (``jobs_ranges``).  Together they
    are exactly the jobs that overlap, never a walk back over the history."""
    seats = "e.stdid_min = :lo" if single else "e.stdid_min BETWEEN :lo AND :hi"
    return (
        f"FROM jobs e INDEXED BY jobs_seat WHERE {seats}",
        "FROM jobs e INDEXED BY jobs_ranges"
        " WHERE e.stdid_max > e.stdid_min AND e.stdid_min < :lo AND e.stdid_max >= :lo",
    )


#: SQL over the job ``j``: it cannot run now.  Either an earlier job holds one of its
#: students, or ``j`` is a PURGE/RESET and a CLEANUP of the same customer on one of its
#: students, queued behind it, may run first (nothing else holds that CLEANUP back).
_BLOCKED = (
    f"EXISTS (SELECT 1 FROM jobs e WHERE {_waits_for('j', 'e')})"
    " OR (j.verb IN ('PURGE', 'RESET') AND EXISTS ("
    "  SELECT 1 FROM jobs c WHERE c.id > j.id AND c.verb = 'CLEANUP'"
    f"  AND c.status IN ('queued', 'running') AND c.customer = j.customer AND {_overlap('j', 'c')}"
    f"  AND NOT EXISTS (SELECT 1 FROM jobs e2 WHERE {_waits_for('c', 'e2')})))"
)


class DatabaseTooNew(WodError):
    """The job database was written by a newer release (a downgrade): refuse to touch it."""

    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"job database {path} has schema version {version}, but this wod-backend "
            f"{__version__} knows versions up to {SCHEMA_VERSION}: it was written by a newer "
            "release. Run that release again (downgrades are not supported) or move the "
            "database aside."
        )
        self.version = version


class UnknownJob(LookupError):
    """No job has this id."""


class NotRetryable(ValueError):
    """Only a failed job can be retried."""


class NotCancellable(ValueError):
    """Only a queued job can be cancelled."""


@dataclass(frozen=True)
class Step:
    id: int
    job_id: int
    attempt: int
    name: str
    status: str
    started: float
    seconds: float | None
    output: str
    #: How many runs this row stands for: a step that waited (``waiting``) is one row
    #: however often the job waited; ``seconds`` then spans the first wait to the last.
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "name": self.name,
            "status": self.status,
            "started": self.started,
            "seconds": self.seconds,
            "output": self.output,
            "count": self.count,
        }


@dataclass(frozen=True)
class StepEnd:
    """How a step started with :meth:`JobQueue.start_step` ended, kept by the worker until
    the job's next write (the next step's start or the job's outcome) records it."""

    step_id: int
    status: str
    seconds: float
    output: str = ""


@dataclass(frozen=True)
class Job:
    """One job as stored.  ``attempts`` counts every run; ``tries`` those since the last
    manual retry (what the backoff and ``retry_max_attempts`` look at)."""

    id: int
    request: Request
    status: str
    attempts: int
    tries: int
    not_before: float
    created: float
    started: float | None
    finished: float | None
    worker: str | None
    reason: str
    output: str
    steps: tuple[Step, ...] = field(default=())

    @property
    def verb(self) -> str:
        return self.request.verb.value

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_dict(self, steps: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "verb": self.verb,
            "stdid": self.request.stdid,
            "stdid_max": self.request.stdid_max,
            "customer": self.request.customer,
            "workshop": self.request.workshop,
            "email": self.request.email,
            "channel": self.request.channel,
            "attempts": self.attempts,
            "not_before": self.not_before,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "seconds": self.seconds,
            "worker": self.worker,
            "reason": self.reason,
            "output": self.output,
            "notes": list(self.request.notes),
        }
        if steps:
            out["steps"] = [s.to_dict() for s in self.steps]
        return out


@dataclass(frozen=True)
class ProcessRecord:
    """A command's process group recorded while it ran for a job (see :mod:`wod.proc`)."""

    id: int
    job_id: int
    pgid: int
    start_ticks: int
    boot_id: str
    what: str
    at: float


@dataclass(frozen=True)
class Rejection:
    id: int
    at: float
    channel: str
    reason: str
    raw: bytes | None

    def to_dict(self) -> dict[str, Any]:
        excerpt = (self.raw or b"")[:200].decode("utf-8", errors="replace")
        return {
            "id": self.id,
            "at": self.at,
            "channel": self.channel,
            "reason": self.reason,
            "raw": excerpt,
        }


def _clip(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) > limit:
        return "[… output truncated …]\n" + text[-limit:]
    return text


def _clip_raw(raw: bytes | None) -> bytes | None:
    return None if raw is None else bytes(raw[:MAX_RAW])


def _end_steps(db: sqlite3.Connection, ended: Iterable[StepEnd]) -> None:
    """Record how ``ended`` steps ended (in the caller's transaction)."""
    db.executemany(
        "UPDATE steps SET status = ?, seconds = ?, output = ? WHERE id = ?",
        [(e.status, e.seconds, _clip(e.output), e.step_id) for e in ended],
    )


def _check_id(job_id: int) -> None:
    """A job id SQLite cannot even hold (from a URL or the command line) names no job."""
    if not 0 < job_id < 2**63:
        raise UnknownJob(job_id)


def _stored_request(row: sqlite3.Row) -> Request:
    """The request a job row holds; ValueError if it cannot be read back whole."""
    try:
        return Request.from_dict(json.loads(row["request"]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {str(exc)[:80]}") from None


#: Rejection reason classes for the intake counters, first match wins (a label for
#: metrics only; nothing decides anything on it).
REASON_CLASSES = (
    ("client", ("client address", "not in allowed_clients")),
    ("sender", ("sender",)),
    ("auth", ("token",)),
    ("size", ("larger than", "too large", "too long")),
    ("verb", ("verb",)),
    ("student", ("student", "stdid", "out of range", "range")),
    ("workshop", ("workshop",)),
    ("customer", ("customer",)),
)


def reason_class(reason: str) -> str:
    """The coarse class of a rejection reason (client, sender, auth, size, verb, student,
    workshop, customer, or malformed)."""
    text = reason.lower()
    for name, needles in REASON_CLASSES:
        if any(n in text for n in needles):
            return name
    return "malformed"


def _count_intake(db: sqlite3.Connection, channel: str, verb: str, outcome: str) -> None:
    db.execute(
        "INSERT INTO intake_counts (channel, verb, outcome, n) VALUES (?,?,?,1)"
        " ON CONFLICT (channel, verb, outcome) DO UPDATE SET n = n + 1",
        (channel[:20], verb[:20], outcome[:40]),
    )


class JobQueue:
    """The queue over one SQLite file; safe to share between threads and processes."""

    def __init__(self, db_path: Path | str, *, timeout: float = 30.0) -> None:
        self.db_path = Path(db_path)
        self.timeout = timeout
        self._local = threading.local()
        self._changed = threading.Condition()
        self._write_lock = threading.Lock()
        self._generation = 0
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._upgrade()
        except sqlite3.Error as exc:
            raise Transient(f"job database {self.db_path}: {exc}") from None

    def _upgrade(self) -> None:
        """Create the schema, or migrate an older one in place (one transaction); refuse a
        database written by a newer release (:class:`DatabaseTooNew`)."""
        db = self._conn()
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self._write(durable=True):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version == 0 and "jobs" in tables:
                version = 1  # written before the schema had a version
            if version > SCHEMA_VERSION:
                raise DatabaseTooNew(self.db_path, version)
            if version == 0:
                for statement in SCHEMA:
                    db.execute(statement)
            else:
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[target](db)
                    log.warning(
                        "job database %s migrated from schema %d to %d",
                        self.db_path,
                        target - 1,
                        target,
                    )
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connections --------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.db_path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            self._local.durable = True
        return conn

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One short ``BEGIN IMMEDIATE`` transaction; fsynced on commit when ``durable``."""
        db = self._conn()
        with self._write_lock:
            if self._local.durable != durable:
                db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._local.durable = durable
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- waking workers -----------------------------------------------------------------
    def wake(self) -> None:
        """Wake the threads of this process sleeping in :meth:`wait`."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until this process changes the queue, or ``timeout`` seconds pass (other
        processes are noticed by the caller's next poll)."""
        with self._changed:
            seen = self._generation
            self._changed.wait_for(lambda: self._generation != seen, timeout=timeout)

    # -- intake -------------------------------------------------------------------------
    def submit(self, request: Request, raw: bytes | None = None) -> int:
        """Persist ``request`` (and its raw message, truncated) as a queued job; return its id
        once committed to disk."""
        now = time.time()
        low = request.stdid
        high = request.stdid_max if request.stdid_max is not None else request.stdid
        try:
            with self._write(durable=True) as db:
                cur = db.execute(
                    "INSERT INTO jobs (verb, stdid_min, stdid_max, customer, workshop, channel,"
                    " request, raw, not_before, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        request.verb.value,
                        low,
                        high,
                        request.customer,
                        request.workshop,
                        request.channel,
                        json.dumps(request.to_dict()),
                        _clip_raw(raw),
                        now,
                        now,
                    ),
                )
                job_id = int(cur.lastrowid or 0)
                _count_intake(db, request.channel, request.verb.value, "accepted")
        except (sqlite3.Error, OSError) as exc:
            raise Transient(f"could not persist the request: {exc}") from None
        self.wake()
        return job_id

    def reject(self, channel: str, reason: str, raw: bytes | None = None, *, verb: str = "") -> int:
        """Record a refused request for the audit trail; return the rejection's id.
        ``verb`` is the request's verb when the refusal came after it was read; else the
        counters take the one the raw request names, if any (:func:`verb_hint`)."""
        verb = verb or verb_hint(raw)
        try:
            with self._write(durable=True) as db:
                cur = db.execute(
                    "INSERT INTO rejections (at, channel, reason, raw) VALUES (?,?,?,?)",
                    (time.time(), channel, reason, _clip_raw(raw)),
                )
                _count_intake(db, channel, verb, "rejected:" + reason_class(reason))
                return int(cur.lastrowid or 0)
        except (sqlite3.Error, OSError) as exc:
            raise Transient(f"could not record the rejection: {exc}") from None

    # -- the worker's side --------------------------------------------------------------
    def claim(self, worker: str = "") -> Job | None:
        """Take the oldest runnable job (see the module docstring) and mark it running."""
        now = time.time()
        unreadable = False
        with self._write() as db:
            while True:
                row = db.execute(
                    f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.status = 'queued'"
                    f" AND j.not_before <= ? AND NOT ({_BLOCKED})"
                    " ORDER BY j.id LIMIT 1",
                    (now,),
                ).fetchone()
                if row is None:
                    break
                try:
                    _stored_request(row)
                except ValueError as exc:
                    # Never act on a request that cannot be read back whole; fail it so
                    # it neither loops nor blocks the student's later jobs.
                    unreadable = True
                    db.execute(
                        "UPDATE jobs SET status = 'failed', finished = ?, reason = ? WHERE id = ?",
                        (now, f"stored request is unreadable: {exc}", row["id"]),
                    )
                    continue
                break
            if row is None:
                if unreadable:
                    self.wake()
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started = ?,"
                " finished = NULL, worker = ? WHERE id = ?",
                (now, worker, row["id"]),
            )
            row = db.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (row["id"],)
            ).fetchone()
        return self._job(row)

    def start_step(self, job_id: int, name: str, ended: Iterable[StepEnd] = ()) -> int:
        """Record that step ``name`` of the job's current attempt started; return its id.
        ``ended``: steps of the job that ended since its last write, recorded in the same
        transaction (so a step's end reaches the database before the next step begins).
        Their ``output`` must be safe text."""
        with self._write() as db:
            _end_steps(db, ended)
            cur = db.execute(
                "INSERT INTO steps (job_id, attempt, name, status, started)"
                " SELECT id, attempts, ?, 'running', ? FROM jobs WHERE id = ?",
                (name, time.time(), job_id),
            )
            return int(cur.lastrowid or 0)

    def record_step(
        self,
        job_id: int,
        name: str,
        status: str,
        started: float,
        seconds: float,
        output: str = "",
    ) -> int:
        """Record one finished step of the job's current attempt in one go.  ``output`` is
        stored as given: callers pass text that is already safe (no password, no token)."""
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO steps (job_id, attempt, name, status, started, seconds, output)"
                " SELECT id, attempts, ?, ?, ?, ?, ? FROM jobs WHERE id = ?",
                (name, status, started, seconds, _clip(output), job_id),
            )
            return int(cur.lastrowid or 0)

    def complete(self, job_id: int, output: str = "", *, ended: Iterable[StepEnd] = ()) -> None:
        """The job is ``done``; ``ended``: its steps not recorded as ended yet."""
        with self._write() as db:
            _end_steps(db, ended)
            db.execute(
                "UPDATE jobs SET status = 'done', finished = ?, reason = '', output = ?"
                " WHERE id = ?",
                (time.time(), _clip(output), job_id),
            )
        self.wake()

    def fail(
        self, job_id: int, reason: str, output: str = "", *, ended: Iterable[StepEnd] = ()
    ) -> None:
        """The job is ``failed``; ``ended``: its steps not recorded as ended yet."""
        with self._write() as db:
            _end_steps(db, ended)
            db.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, reason = ?, output = ?"
                " WHERE id = ?",
                (time.time(), reason, _clip(output), job_id),
            )
        self.wake()

    def defer(
        self,
        job_id: int,
        delay: float,
        reason: str,
        *,
        output: str = "",
        attempt_used: bool = True,
        ended: Iterable[StepEnd] = (),
    ) -> None:
        """Put a running job back in the queue, runnable after ``delay`` seconds.  With
        ``attempt_used=False`` the run does not count against the retry budget (the job
        only waited) and leaves no new step rows: its ``waiting`` step is folded into the
        one the previous wait left (``count`` + 1, ``seconds`` from the first wait to this
        one), and the steps it completed before waiting are dropped (the next run does
        them again and records them).  ``ended``: its steps not recorded as ended yet."""
        with self._write() as db:
            _end_steps(db, ended)
            if not attempt_used:
                self._fold_waiting(db, job_id)
            db.execute(
                "UPDATE jobs SET status = 'queued', not_before = ?, reason = ?, output = ?,"
                " attempts = attempts - ? WHERE id = ?",
                (
                    time.time() + max(delay, 0.0),
                    reason,
                    _clip(output),
                    0 if attempt_used else 1,
                    job_id,
                ),
            )
        self.wake()

    @staticmethod
    def _fold_waiting(db: sqlite3.Connection, job_id: int) -> None:
        job = db.execute("SELECT attempts, started FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if job is None or job["started"] is None:
            return
        run = db.execute(
            "SELECT * FROM steps WHERE job_id = ? AND attempt = ? AND started >= ? ORDER BY id",
            (job_id, job["attempts"], job["started"]),
        ).fetchall()
        waiting = [r for r in run if r["status"] == "waiting"]
        if not waiting:
            return
        first_of_run = run[0]["id"]
        for row in waiting:
            earlier = db.execute(
                "SELECT id, started, count FROM steps WHERE job_id = ? AND attempt = ?"
                " AND name = ? AND status = 'waiting' AND id < ? ORDER BY id DESC LIMIT 1",
                (job_id, job["attempts"], row["name"], first_of_run),
            ).fetchone()
            if earlier is None:
                continue
            ended = row["started"] + (row["seconds"] or 0.0)
            db.execute(
                "UPDATE steps SET count = count + ?, seconds = ?, output = ? WHERE id = ?",
                (row["count"], max(ended - earlier["started"], 0.0), row["output"], earlier["id"]),
            )
            db.execute("DELETE FROM steps WHERE id = ?", (row["id"],))
        db.execute(
            "DELETE FROM steps WHERE job_id = ? AND attempt = ? AND started >= ?"
            " AND status = 'done'",
            (job_id, job["attempts"], job["started"]),
        )

    def set_stdid(self, job_id: int, stdid: int) -> None:
        """Pin the student of a job whose id was recovered from the customer."""
        with self._write() as db:
            row = db.execute("SELECT request FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            data = json.loads(row["request"])
            data["stdid"] = stdid
            data["stdid_max"] = stdid
            data["notes"] = [*data.get("notes", []), f"student {stdid} recovered from customer"]
            db.execute(
                "UPDATE jobs SET stdid_min = ?, stdid_max = ?, request = ? WHERE id = ?",
                (stdid, stdid, json.dumps(data), job_id),
            )

    def earlier_unfinished(self, job_id: int) -> bool:
        """Whether this job must wait for another one of its students (the claim's rule:
        an earlier unfinished job, or a CLEANUP of its customer queued behind a PURGE or
        RESET)."""
        row = (
            self._conn()
            .execute(f"SELECT {_BLOCKED} FROM jobs j WHERE j.id = ?", (job_id,))
            .fetchone()
        )
        return bool(row[0])

    def previous_for_student(self, job_id: int) -> Job | None:
        """The latest earlier job touching one of this job's students, if any."""
        row = self._latest_touching(job_id, "1")
        return self._job(row) if row is not None else None

    def _latest_touching(self, job_id: int, condition: str) -> sqlite3.Row | None:
        """The latest job before ``job_id`` that touches one of its students and meets the
        SQL ``condition`` (over ``e``); None when there is none or the job has no student.

        Read through two indexes, never by going back over the history: ``jobs_seat`` for
        jobs whose first student is one of the job's (a single seat: one index seek), and
        ``jobs_ranges`` for the ranges that start below it.  A seat first used after
        100,000 jobs of others took 30 ms by the plain overlap query."""
        db = self._conn()
        job = db.execute("SELECT stdid_min, stdid_max FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if job is None or job["stdid_min"] is None or job["stdid_max"] is None:
            return None
        seat_part, range_part = _touching(single=job[0] == job[1])
        latest = f"AND e.id < :id AND ({condition}) ORDER BY e.id DESC LIMIT 1"
        sql = (
            f"SELECT * FROM (SELECT {JOB_COLUMNS} {seat_part} {latest})"
            f" UNION ALL SELECT * FROM (SELECT {JOB_COLUMNS} {range_part} {latest})"
            " ORDER BY id DESC LIMIT 1"
        )
        return db.execute(sql, {"id": job_id, "lo": job[0], "hi": job[1]}).fetchone()

    # -- process groups of running commands (killed at the next start after a crash) -----
    def add_process(self, job_id: int, pgid: int, start_ticks: int, boot_id: str, what: str) -> int:
        """Record a command's process group while it runs for ``job_id``; returns its id."""
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO processes (job_id, pgid, start_ticks, boot_id, what, at)"
                " VALUES (?,?,?,?,?,?)",
                (job_id, pgid, start_ticks, boot_id, what, time.time()),
            )
            return int(cur.lastrowid or 0)

    def remove_process(self, process_id: int) -> None:
        """The command recorded as ``process_id`` has ended."""
        with self._write() as db:
            db.execute("DELETE FROM processes WHERE id = ?", (process_id,))

    def processes(self) -> list[ProcessRecord]:
        """Process groups recorded and not known to have ended, oldest first."""
        return [
            ProcessRecord(
                r["id"], r["job_id"], r["pgid"], r["start_ticks"], r["boot_id"], r["what"], r["at"]
            )
            for r in self._conn().execute("SELECT * FROM processes ORDER BY id")
        ]

    def seat_customer(self, job_id: int) -> int | None:
        """The customer whose session this job's student holds, as the earlier jobs left
        it: the customer of the last CREATE that prepared the seat (done, or failed after
        changing it), unless a CLEANUP, RESET or PURGE finished after it; None when the
        seat is free or the job has no single known student."""
        row = self._latest_touching(
            job_id,
            "e.status = 'done' OR (e.verb = 'CREATE' AND e.status = 'failed' AND EXISTS ("
            "SELECT 1 FROM steps s WHERE s.job_id = e.id"
            " AND s.name NOT IN ('recover-student', 'workshop', 'seat')))",
        )
        if row is None or row["verb"] != "CREATE":
            return None
        return int(row["customer"])

    def prune(self, before: float) -> tuple[int, int]:
        """Forget finished jobs (with their steps) and rejections older than ``before``
        (a ``time.time()`` value); queued and running jobs are always kept.  Returns
        (jobs, rejections) removed."""
        with self._write() as db:
            done = "status IN ('done', 'failed', 'cancelled') AND created < ?"
            db.execute(
                f"DELETE FROM steps WHERE job_id IN (SELECT id FROM jobs WHERE {done})", (before,)
            )
            jobs = db.execute(f"DELETE FROM jobs WHERE {done}", (before,)).rowcount
            rejections = db.execute("DELETE FROM rejections WHERE at < ?", (before,)).rowcount
        return jobs, rejections

    def resume_interrupted(self) -> int:
        """At start: jobs left ``running`` by a crash go back to ``queued`` (their steps are
        idempotent).  Returns how many were resumed."""
        with self._write() as db:
            db.execute(
                "UPDATE steps SET status = 'interrupted' WHERE status = 'running' AND job_id IN"
                " (SELECT id FROM jobs WHERE status = 'running')"
            )
            cur = db.execute(
                "UPDATE jobs SET status = 'queued', not_before = ?,"
                " reason = 'resumed after an interruption' WHERE status = 'running'",
                (time.time(),),
            )
            count = cur.rowcount
        if count:
            self.wake()
        return count

    def retry(self, job_id: int) -> Job:
        """Queue a failed job again, with a fresh retry budget."""
        _check_id(job_id)
        with self._write(durable=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            if row["status"] != "failed":
                raise NotRetryable(
                    f"job {job_id} is {row['status']}; only a failed job can be retried"
                )
            db.execute(
                "UPDATE jobs SET status = 'queued', not_before = ?, budget_from = attempts,"
                " finished = NULL, reason = 'retried by an admin' WHERE id = ?",
                (time.time(), job_id),
            )
        self.wake()
        return self.job(job_id)

    def cancel(self, job_id: int, by: str = "an admin") -> Job:
        """Stop a queued job from running: it stays on record as ``cancelled`` (with who
        cancelled it), and no longer holds back its student's later jobs."""
        _check_id(job_id)
        with self._write(durable=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            if row["status"] != "queued":
                raise NotCancellable(
                    f"job {job_id} is {row['status']}; only a queued job can be cancelled"
                )
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished = ?, reason = ? WHERE id = ?",
                (time.time(), f"cancelled by {by}"[:200], job_id),
            )
        self.wake()
        return self.job(job_id)

    # -- reading ------------------------------------------------------------------------
    def _job(self, row: sqlite3.Row, steps: tuple[Step, ...] = ()) -> Job:
        try:
            request = _stored_request(row)
        except ValueError as exc:  # still listable: rebuilt from the indexed columns
            request = Request(
                verb=Verb(row["verb"]) if row["verb"] in Verb.__members__ else Verb.CREATE,
                stdid=row["stdid_min"],
                stdid_max=row["stdid_max"],
                customer=row["customer"],
                workshop=row["workshop"],
                channel=row["channel"],
                notes=(f"stored request is unreadable: {exc}",),
            )
        return Job(
            id=row["id"],
            request=request,
            status=row["status"],
            attempts=row["attempts"],
            tries=row["attempts"] - row["budget_from"],
            not_before=row["not_before"],
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            worker=row["worker"],
            reason=row["reason"],
            output=row["output"],
            steps=steps,
        )

    def job(self, job_id: int) -> Job:
        """One job with its steps; :class:`UnknownJob` if there is none."""
        _check_id(job_id)
        db = self._conn()
        row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        steps = tuple(
            Step(
                r["id"],
                r["job_id"],
                r["attempt"],
                r["name"],
                r["status"],
                r["started"],
                r["seconds"],
                r["output"],
                r["count"],
            )
            for r in db.execute("SELECT * FROM steps WHERE job_id = ? ORDER BY id", (job_id,))
        )
        return self._job(row, steps)

    def raw(self, job_id: int) -> bytes | None:
        """The raw message a job came from (truncated to ``MAX_RAW``)."""
        _check_id(job_id)
        row = self._conn().execute("SELECT raw FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        return row["raw"]

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first, optionally only those with ``status``."""
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"
        args: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [self._job(r) for r in self._conn().execute(sql, args)]

    def search(
        self,
        *,
        status: str | None = None,
        verb: str | None = None,
        stdid: int | None = None,
        workshop: str | None = None,
        text: str | None = None,
        before_id: int | None = None,
        from_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first, with ids below ``before_id``
        (keyset pagination: pass the last id of a page to get the next one) and, with
        ``from_id``, at or above it.  ``stdid``
        matches a RESET range covering it; ``text`` is a substring of the request (e-mail,
        customer, workshop…) or of the reason (case-insensitive for ASCII)."""
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append("status = ?")
            args.append(status)
        if verb:
            where.append("verb = ?")
            args.append(verb)
        if stdid is not None:
            where.append("stdid_min <= ? AND stdid_max >= ?")
            args += [stdid, stdid]
        if workshop:
            where.append("workshop = ?")
            args.append(workshop)
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(request LIKE ? ESCAPE '\\' OR reason LIKE ? ESCAPE '\\')")
            args += [like, like]
        if before_id is not None:
            where.append("id < ?")
            args.append(min(before_id, 2**63 - 1))
        if from_id is not None:  # a window of ids: bounds the cost of a text search
            where.append("id >= ?")
            args.append(max(from_id, 0))
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(max(1, limit))
        return [self._job(r) for r in self._conn().execute(sql, args)]

    def newest_id(self) -> int:
        """The id of the newest job (0 when there is none)."""
        row = self._conn().execute("SELECT MAX(id) FROM jobs").fetchone()
        return int(row[0] or 0)

    def oldest_waiting(self) -> Job | None:
        """The oldest queued job (what the queue is slowest to serve)."""
        row = (
            self._conn()
            .execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1")
            .fetchone()
        )
        return self._job(row) if row is not None else None

    def failed_since(self, since: float) -> int:
        """Jobs that failed at or after ``since`` (a ``time.time()`` value)."""
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'failed' AND finished >= ?", (since,)
            )
            .fetchone()
        )
        return int(row[0])

    def intake_counts(self) -> list[tuple[str, str, str, int]]:
        """Requests ever received, as ``(channel, verb, outcome, n)``; outcome is
        ``accepted`` or ``rejected:<class>`` (kept across restarts and pruning)."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._conn().execute(
                "SELECT channel, verb, outcome, n FROM intake_counts ORDER BY 1, 2, 3"
            )
        ]

    def history(self, stdid_min: int, stdid_max: int) -> list[Job]:
        """Jobs touching any student in ``[stdid_min, stdid_max]``, oldest first (read
        through the ``jobs_seat`` and ``jobs_ranges`` indexes, as :meth:`_latest_touching`)."""
        seat_part, range_part = _touching(single=False)
        sql = (
            f"SELECT {JOB_COLUMNS} {seat_part}"
            f" UNION ALL SELECT {JOB_COLUMNS} {range_part} ORDER BY id"
        )
        rows = self._conn().execute(sql, {"lo": stdid_min, "hi": stdid_max})
        return [self._job(r) for r in rows]

    def outline_newest_first(
        self, stdid_min: int, stdid_max: int
    ) -> Iterator[tuple[int, str, str, int, int]]:
        """``(id, verb, status, stdid_min, stdid_max)`` of the jobs touching the students,
        newest first, read lazily: a caller that has seen enough stops reading (nothing
        is parsed for the rows it skips)."""
        yield from self._conn().execute(
            "SELECT id, verb, status, stdid_min, stdid_max FROM jobs"
            " WHERE stdid_min <= ? AND stdid_max >= ? ORDER BY id DESC",
            (stdid_max, stdid_min),
        )

    def jobs_by_id(self, ids: Iterable[int]) -> list[Job]:
        """The jobs ``ids`` (without their steps), oldest first."""
        wanted = sorted(set(ids))
        found: list[Job] = []
        db = self._conn()
        for at in range(0, len(wanted), 500):
            chunk = wanted[at : at + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks}) ORDER BY id"
            found += [self._job(r) for r in db.execute(sql, chunk)]
        return found

    def rejections(self, limit: int = 100) -> list[Rejection]:
        """Refused requests, newest first."""
        return [
            Rejection(r["id"], r["at"], r["channel"], r["reason"], r["raw"])
            for r in self._conn().execute(
                "SELECT * FROM rejections ORDER BY id DESC LIMIT ?", (limit,)
            )
        ]

    def counts(self) -> dict[str, int]:
        """Number of jobs in each status."""
        out = dict.fromkeys(STATUSES[:4], 0)  # cancelled only once there is one
        for row in self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
            out[row[0]] = row[1]
        return out

    def pending(self) -> int:
        """Jobs still queued or running."""
        row = (
            self._conn()
            .execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
            .fetchone()
        )
        return int(row[0])

    def next_due(self) -> float | None:
        """Earliest ``not_before`` among queued jobs (for a worker's sleep)."""
        row = (
            self._conn()
            .execute("SELECT MIN(not_before) FROM jobs WHERE status = 'queued'")
            .fetchone()
        )
        return row[0]
