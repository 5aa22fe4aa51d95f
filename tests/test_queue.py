"""The durable job queue against real SQLite files: persistence before the acknowledgement,
crash resume, per-student ordering and RESET ranges, retry, rejections."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wod.errors import Transient
from wod.queue import (
    MAX_RAW,
    SCHEMA_VERSION,
    DatabaseTooNew,
    JobQueue,
    NotRetryable,
    StepEnd,
    UnknownJob,
)
from wod.requests import Request, Verb

ROOT = Path(__file__).resolve().parents[1]


def req(
    verb: str, stdid: int | None, customer: int = 1, stdid_max: int | None = None, **kw
) -> Request:
    return Request(Verb(verb), stdid, customer, "WKSHP-API101", stdid_max=stdid_max, **kw)


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    q = JobQueue(tmp_path / "wod.db")
    yield q
    q.close()


def test_submitted_job_is_on_disk_before_submit_returns(tmp_path: Path, queue: JobQueue):
    raw = b"Subject: CREATE 3 7 a@example.com\nWKSHP-API101\n"
    job_id = queue.submit(req("CREATE", 3, 7, email="a@example.com"), raw)
    # Another process, with its own connection, sees the committed job at once.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]);"
            "print(db.execute('select verb, stdid_min, customer, status, raw from jobs"
            " where id=?', (int(sys.argv[2]),)).fetchone())",
            str(tmp_path / "wod.db"),
            str(job_id),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'CREATE', 3, 7, 'queued'" in out
    assert "CREATE 3 7" in out
    again = JobQueue(tmp_path / "wod.db").job(job_id)
    assert again.request.email == "a@example.com" and again.status == "queued"
    assert queue.raw(job_id) == raw
    mode = sqlite3.connect(tmp_path / "wod.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_raw_message_is_truncated(queue: JobQueue):
    job_id = queue.submit(req("CREATE", 1), b"x" * (MAX_RAW * 3))
    assert len(queue.raw(job_id)) == MAX_RAW


def test_database_that_cannot_be_written_raises_transient(tmp_path: Path):
    queue = JobQueue(tmp_path / "wod.db", timeout=0.2)
    blocker = sqlite3.connect(tmp_path / "wod.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Transient, match="could not persist"):
            queue.submit(req("CREATE", 1))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert queue.submit(req("CREATE", 1)) == 1


def test_crashed_worker_job_resumes(tmp_path: Path):
    db = tmp_path / "wod.db"
    queue = JobQueue(db)
    job_id = queue.submit(req("CREATE", 5))
    code = (
        "import sys, time\n"
        "from wod.queue import JobQueue\n"
        "job = JobQueue(sys.argv[1]).claim('doomed')\n"
        "print(job.id, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == str(job_id)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    fresh = JobQueue(db)
    assert fresh.job(job_id).status == "running"
    assert fresh.claim("w") is None  # still considered running until resumed
    assert fresh.resume_interrupted() == 1
    job = fresh.claim("w")
    assert job.id == job_id and job.attempts == 2 and job.status == "running"
    assert fresh.job(job_id).reason == "resumed after an interruption"


def test_job_with_unreadable_stored_request_fails_and_does_not_block(
    tmp_path: Path, queue: JobQueue
):
    bad = queue.submit(req("CLEANUP", 3))
    later = queue.submit(req("PURGE", 3))
    damage = sqlite3.connect(tmp_path / "wod.db")
    damage.execute("UPDATE jobs SET request = '{garbage' WHERE id = ?", (bad,))
    damage.commit()
    damage.close()
    # The damaged job is never acted on, never left running, and the next one of
    # that student is handed out.
    job = queue.claim("w")
    assert job is not None and job.id == later and job.verb == "PURGE"
    failed = queue.job(bad)
    assert failed.status == "failed"
    assert failed.reason.startswith("stored request is unreadable")
    # Listing still works and shows what the indexed columns hold.
    listed = {j.id: j for j in queue.jobs()}
    assert listed[bad].request.stdid == 3 and listed[bad].verb == "CLEANUP"
    assert listed[bad].request.notes[0].startswith("stored request is unreadable")


def test_one_students_jobs_are_claimed_in_order(queue: JobQueue):
    a = queue.submit(req("CLEANUP", 1))
    b = queue.submit(req("PURGE", 1))
    c = queue.submit(req("CREATE", 2))
    assert queue.claim("w").id == a
    assert queue.claim("w").id == c  # b waits for a; student 2 runs in parallel
    assert queue.claim("w") is None
    queue.complete(a)
    assert queue.claim("w").id == b


def test_reset_range_blocks_every_student_inside(queue: JobQueue):
    reset = queue.submit(req("RESET", 2, stdid_max=4))
    inside = queue.submit(req("CREATE", 3))
    outside = queue.submit(req("CREATE", 5))
    assert queue.claim("w").id == reset
    assert queue.claim("w").id == outside
    assert queue.claim("w") is None
    queue.fail(reset, "hook failed")  # a finished (even failed) job no longer blocks
    assert queue.claim("w").id == inside


def test_earlier_job_blocks_a_later_range(queue: JobQueue):
    create = queue.submit(req("CREATE", 4))
    reset = queue.submit(req("RESET", 1, stdid_max=10))
    assert queue.claim("w").id == create
    assert queue.claim("w") is None
    queue.complete(create)
    assert queue.claim("w").id == reset


def test_unknown_student_runs_then_waits_once_pinned(queue: JobQueue):
    create = queue.submit(req("CREATE", 7))
    purge = queue.submit(req("PURGE", None, 9, recover_stdid=True))
    assert queue.claim("w").id == create
    job = queue.claim("w")
    assert job.id == purge and job.request.stdid is None
    queue.set_stdid(purge, 7)
    assert queue.earlier_unfinished(purge)
    queue.defer(purge, 0, "waiting for earlier job", attempt_used=False)
    assert queue.claim("w") is None  # pinned behind the CREATE of student 7
    queue.complete(create)
    job = queue.claim("w")
    assert job.id == purge and job.request.stdid == 7 and job.attempts == 1
    assert "student 7 recovered from customer" in job.request.notes
    assert not queue.earlier_unfinished(purge)


def test_deferred_job_waits_for_not_before(queue: JobQueue):
    job_id = queue.submit(req("CREATE", 1))
    queue.claim("w")
    queue.defer(job_id, 0.3, "api-db unreachable")
    assert queue.claim("w") is None
    assert queue.job(job_id).reason == "api-db unreachable"
    time.sleep(0.35)
    assert queue.claim("w").attempts == 2


def test_retry_requeues_only_failed_jobs(queue: JobQueue):
    job_id = queue.submit(req("CREATE", 1))
    with pytest.raises(NotRetryable):
        queue.retry(job_id)
    with pytest.raises(UnknownJob):
        queue.retry(999)
    queue.claim("w")
    queue.fail(job_id, "hook create-WKSHP-API101.sh: exited with status 1", "boom")
    failed = queue.job(job_id)
    assert failed.status == "failed" and failed.output == "boom"
    retried = queue.retry(job_id)
    assert retried.status == "queued" and retried.tries == 0 and retried.attempts == 1
    assert queue.claim("w").tries == 1


def test_steps_and_listing(queue: JobQueue):
    job_id = queue.submit(req("CREATE", 1))
    queue.submit(req("CREATE", 2))
    queue.claim("w")
    deploy = queue.start_step(job_id, "deploy")
    assert [(s.name, s.status) for s in queue.job(job_id).steps] == [("deploy", "running")]
    report = queue.start_step(job_id, "report", [StepEnd(deploy, "done", 0.25, "12 files")])
    assert [(s.name, s.status) for s in queue.job(job_id).steps] == [
        ("deploy", "done"),
        ("report", "running"),
    ]
    queue.complete(job_id, ended=[StepEnd(report, "done", 0.01, "ok")])
    queue.record_step(job_id, "late", "done", time.time(), 0.01, "")
    job = queue.job(job_id)
    assert [(s.name, s.status, s.attempt, s.output) for s in job.steps] == [
        ("deploy", "done", 1, "12 files"),
        ("report", "done", 1, "ok"),
        ("late", "done", 1, ""),
    ]
    assert job.steps[0].seconds == 0.25
    assert [j.id for j in queue.jobs()] == [2, 1]
    assert [j.id for j in queue.jobs(status="done")] == [1]
    assert queue.counts() == {"queued": 1, "running": 0, "done": 1, "failed": 0}
    assert queue.pending() == 1


def test_rejections_are_recorded(queue: JobQueue):
    rid = queue.reject("smtp", "unknown verb 'DELETE'", b"Subject: DELETE 1 2\n")
    [rejection] = queue.rejections()
    assert rejection.id == rid and rejection.channel == "smtp"
    assert rejection.reason == "unknown verb 'DELETE'"
    assert rejection.to_dict()["raw"].startswith("Subject: DELETE")


def test_cleanup_runs_before_an_earlier_queued_purge_or_reset_of_its_customer(queue: JobQueue):
    """A PURGE (or RESET) received before the seat's CLEANUP would wait for the api-db to
    report the customer cleaned, which only that CLEANUP does: the CLEANUP goes first."""
    purge = queue.submit(req("PURGE", 1, 7))
    cleanup = queue.submit(req("CLEANUP", 1, 7))
    reset = queue.submit(req("RESET", 2, 8, stdid_max=3))
    cleanup_in_range = queue.submit(req("CLEANUP", 3, 8))
    assert queue.earlier_unfinished(purge) and queue.earlier_unfinished(reset)
    assert queue.claim("w").id == cleanup
    assert queue.claim("w").id == cleanup_in_range
    assert queue.claim("w") is None  # the PURGE and the RESET wait for their CLEANUPs
    queue.complete(cleanup)
    assert queue.claim("w").id == purge
    queue.complete(cleanup_in_range)
    assert queue.claim("w").id == reset


def test_cleanup_does_not_overtake_a_running_job_another_customer_or_a_create(
    queue: JobQueue,
):
    running_purge = queue.submit(req("PURGE", 1, 7))
    assert queue.claim("w").id == running_purge
    behind_running = queue.submit(req("CLEANUP", 1, 7))
    other_customer = queue.submit(req("PURGE", 2, 5))
    cleanup_2 = queue.submit(req("CLEANUP", 2, 6))
    purge_4 = queue.submit(req("PURGE", 4, 9))
    create_4 = queue.submit(req("CREATE", 4, 10))
    cleanup_4 = queue.submit(req("CLEANUP", 4, 9))
    # Arrival order everywhere: the first PURGE is running, student 2's PURGE is for
    # another customer, and student 4's CLEANUP is behind a CREATE.
    assert queue.claim("w").id == other_customer
    assert queue.claim("w").id == purge_4
    assert queue.claim("w") is None
    assert {behind_running, cleanup_2, create_4, cleanup_4} == {
        j.id for j in queue.jobs(status="queued")
    }


# -- schema versions ---------------------------------------------------------------------
#: The job database as releases before schema versions wrote it (version 1, user_version 0).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
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
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS steps (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   INTEGER NOT NULL REFERENCES jobs (id),
    attempt  INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    started  REAL    NOT NULL,
    seconds  REAL,
    output   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS steps_job ON steps (job_id, id);
CREATE TABLE IF NOT EXISTS rejections (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    channel TEXT NOT NULL,
    reason  TEXT NOT NULL,
    raw     BLOB
);
"""


def _v1_database(path: Path) -> None:
    """A job database written by the previous release: a failed CREATE with its steps, a
    queued CLEANUP, a rejection."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V1)
    now = time.time()
    for verb, status, stdid, reason in (
        ("CREATE", "failed", 3, "hook create-WKSHP-API101.sh exited with status 1"),
        ("CLEANUP", "queued", 4, ""),
    ):
        request = req(verb, stdid, 7, email="a@example.com" if verb == "CREATE" else None)
        db.execute(
            "INSERT INTO jobs (verb, stdid_min, stdid_max, customer, workshop, channel, request,"
            " status, attempts, not_before, created, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                verb,
                stdid,
                stdid,
                7,
                "WKSHP-API101",
                "smtp",
                json.dumps(request.to_dict()),
                status,
                1 if status == "failed" else 0,
                now,
                now,
                reason,
            ),
        )
    db.execute(
        "INSERT INTO steps (job_id, attempt, name, status, started, seconds, output)"
        " VALUES (1, 1, 'workshop', 'done', ?, 0.1, 'WKSHP-API101 (id 3)')",
        (now,),
    )
    db.execute(
        "INSERT INTO rejections (at, channel, reason) VALUES (?, 'smtp', 'unknown verb')", (now,)
    )
    db.commit()
    db.close()


def test_a_previous_release_database_is_migrated_keeping_queued_and_failed_jobs(tmp_path: Path):
    path = tmp_path / "wod.db"
    _v1_database(path)
    queue = JobQueue(path)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    check.close()
    failed = queue.job(1)
    assert failed.status == "failed" and failed.request.email == "a@example.com"
    assert failed.reason == "hook create-WKSHP-API101.sh exited with status 1"
    assert [(s.name, s.status, s.count, s.output) for s in failed.steps] == [
        ("workshop", "done", 1, "WKSHP-API101 (id 3)")
    ]
    assert [r.reason for r in queue.rejections()] == ["unknown verb"]
    # Both still work: the queued one runs, the failed one can be retried, new ones queue.
    assert queue.claim("w").id == 2
    assert queue.retry(1).status == "queued"
    assert queue.submit(req("CREATE", 5)) == 3
    queue.add_process(2, 12345, 1, "boot", "hook x.sh")
    assert [p.job_id for p in queue.processes()] == [2]
    # Opening it again changes nothing.
    assert JobQueue(path).job(2).status == "running"


def test_a_database_from_a_newer_release_is_refused_naming_both_versions(tmp_path: Path):
    path = tmp_path / "state" / "wod.db"
    JobQueue(path).submit(req("CREATE", 1))
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(DatabaseTooNew) as info:
        JobQueue(path)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"knows versions up to {SCHEMA_VERSION}" in message
    # wod serve refuses to start with that line, and leaves the database as it was.
    config = tmp_path / "wod.yml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nhttp_port: 0\nsmtp_port: 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "wod", "-c", str(config), "serve", "--no-smtp", "--no-http"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"schema version {SCHEMA_VERSION + 1}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1
    db.close()


# -- a seat's latest job -------------------------------------------------------------------
def _run_all(queue: JobQueue) -> None:
    while (job := queue.claim("t")) is not None:
        queue.complete(job.id)


def test_a_seats_latest_job_is_found_past_other_seats_history_and_through_ranges(queue):
    for n in range(300):  # other seats' history, newer than nothing on seat 3
        queue.submit(req("CREATE", 10 + n % 5, customer=n + 1))
    _run_all(queue)
    fresh = queue.submit(req("CREATE", 3, customer=900))
    assert queue.seat_customer(fresh) is None  # never used: free
    assert queue.previous_for_student(fresh) is None
    _run_all(queue)

    probe = queue.submit(req("CREATE", 3, customer=901))
    assert queue.seat_customer(probe) == 900  # the session the next CREATE would replace
    assert queue.previous_for_student(probe).id == fresh
    _run_all(queue)

    # A RESET of a range starting below the seat ends the seat's session; one of seats
    # beyond it does not.
    reset = queue.submit(req("RESET", 1, customer=0, stdid_max=4))
    _run_all(queue)
    queue.submit(req("RESET", 5, customer=0, stdid_max=9))
    _run_all(queue)
    after = queue.submit(req("CREATE", 3, customer=902))
    assert queue.previous_for_student(after).id == reset
    assert queue.seat_customer(after) is None
    # A range job asks for every seat it covers.
    _run_all(queue)
    wide = queue.submit(req("RESET", 2, customer=0, stdid_max=12))
    assert queue.previous_for_student(wide).id == after


def test_a_seats_latest_job_is_an_index_search_not_a_scan_of_the_history(queue):
    """What keeps a CREATE quick on a seat last used 100,000 jobs ago."""
    job = queue.submit(req("CREATE", 3, customer=1))
    plans = []
    real = queue._conn()

    class Spy:
        def execute(self, sql, params=()):
            if "UNION ALL" in sql:
                plans.extend(r[3] for r in real.execute("EXPLAIN QUERY PLAN " + sql, params))
            return real.execute(sql, params)

    queue._local.conn = Spy()
    try:
        queue.seat_customer(job)
        queue.previous_for_student(job)
    finally:
        queue._local.conn = real
    searches = [p for p in plans if p.startswith(("SEARCH e", "SCAN e"))]
    assert searches and all(p.startswith("SEARCH e USING INDEX jobs_") for p in searches), plans
