"""Workers running real jobs from a real SQLite queue: per-student order with parallel
students, retry with backoff, permanent failures, waiting for an earlier job, metrics."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.plugins.lifecycle import write_hook
from tests.plugins.paths import ROOT
from wod import proc
from wod.errors import Permanent, Transient, Wait
from wod.queue import Job, JobQueue
from wod.requests import Request, Verb
from wod.settings import Settings
from wod.worker import JobContext, Worker, WorkerMetrics, kill_leftovers


def req(verb: str, stdid: int | None, customer: int = 1, **kw) -> Request:
    return Request(Verb(verb), stdid, customer, "WKSHP-API101", **kw)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        retry_base_delay=0.1,
        retry_max_delay=1.0,
        retry_max_attempts=3,
        workers=3,
    )


@pytest.fixture
def queue(settings: Settings) -> JobQueue:
    return JobQueue(settings.db_path)


def run_worker(settings, queue, runner, **kw) -> Worker:
    worker = Worker(settings, queue, runner, **kw)
    worker.start()
    return worker


def test_one_student_in_order_different_students_in_parallel(settings, queue):
    spans: list[tuple[int, int, float, float]] = []
    lock = threading.Lock()

    def runner(job: Job, ctx: JobContext) -> None:
        with ctx.step("work"):
            start = time.monotonic()
            time.sleep(0.08)
            ctx.log(f"worked on student {job.request.stdid}")
        with lock:
            spans.append((job.request.stdid, job.id, start, time.monotonic()))

    plan = [1, 1, 2, 3, 1, 2, 3, 2, 1]
    ids = [queue.submit(req("CREATE", s)) for s in plan]
    worker = run_worker(settings, queue, runner, workers=3)
    try:
        assert worker.drain(15)
    finally:
        assert worker.stop(5)
    assert all(queue.job(i).status == "done" for i in ids)
    for student in (1, 2, 3):
        mine = sorted((s for s in spans if s[0] == student), key=lambda s: s[2])
        assert [s[1] for s in mine] == sorted(s[1] for s in mine)  # arrival order
        for before, after in zip(mine, mine[1:], strict=False):
            assert before[3] <= after[2]  # never overlapping
    # Different students really ran at the same time.
    overlaps = sum(1 for a in spans for b in spans if a[0] < b[0] and a[2] < b[3] and b[2] < a[3])
    assert overlaps >= 3
    assert queue.job(ids[0]).steps[0].output == "worked on student 1"


def test_transient_failure_is_retried_with_backoff(settings, queue):
    runs: list[float] = []

    def runner(job: Job, ctx: JobContext) -> None:
        runs.append(time.monotonic())
        with ctx.step("report"):
            if len(runs) < 3:
                raise Transient("api-db unreachable")
            ctx.log("reported")

    job_id = queue.submit(req("CREATE", 1))
    worker = run_worker(settings, queue, runner, workers=1)
    try:
        assert worker.drain(10)
    finally:
        worker.stop(5)
    job = queue.job(job_id)
    assert job.status == "done" and job.attempts == 3
    gaps = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # base delay, then doubled
    assert [(s.attempt, s.status) for s in job.steps] == [(1, "retry"), (2, "retry"), (3, "done")]
    assert "api-db unreachable" in job.steps[0].output


def test_transient_failure_gives_up_after_max_attempts(settings, queue):
    def runner(job: Job, ctx: JobContext) -> None:
        raise Transient("hub unreachable", output="connect refused")

    job_id = queue.submit(req("CREATE", 1))
    worker = run_worker(settings, queue, runner, workers=1)
    try:
        assert worker.drain(10)
    finally:
        worker.stop(5)
    job = queue.job(job_id)
    assert job.status == "failed" and job.attempts == 3
    assert job.reason == "gave up after 3 attempts: hub unreachable"
    assert job.output == "connect refused"


def test_permanent_failure_records_reason_and_output(settings, queue):
    def runner(job: Job, ctx: JobContext) -> None:
        with ctx.step("workshop"):
            ctx.log("WKSHP-API101 (id 3)")
        with ctx.step("create-hooks"):
            ctx.log("running create-WKSHP-API101.sh")
            raise Permanent(
                "hook create-WKSHP-API101.sh: exited with status 3", output="appliance down"
            )

    job_id = queue.submit(req("CREATE", 2))
    worker = run_worker(settings, queue, runner, workers=1)
    try:
        assert worker.drain(5)
    finally:
        worker.stop(5)
    job = queue.job(job_id)
    assert job.status == "failed" and job.attempts == 1
    assert job.reason == "hook create-WKSHP-API101.sh: exited with status 3"
    assert job.output == "appliance down"
    assert [(s.name, s.status) for s in job.steps] == [
        ("workshop", "done"),
        ("create-hooks", "failed"),
    ]
    assert "running create-WKSHP-API101.sh" in job.steps[1].output
    assert "appliance down" in job.steps[1].output


def test_unexpected_exception_fails_the_job_with_its_class(settings, queue):
    def runner(job: Job, ctx: JobContext) -> None:
        raise KeyError("range")

    job_id = queue.submit(req("CLEANUP", 2))
    worker = run_worker(settings, queue, runner, workers=1)
    try:
        assert worker.drain(5)
    finally:
        worker.stop(5)
    job = queue.job(job_id)
    assert job.status == "failed" and job.reason == "KeyError: 'range'"


def test_recovered_student_waits_for_earlier_job(settings, queue):
    release = threading.Event()
    order: list[tuple[int, str]] = []

    def runner(job: Job, ctx: JobContext) -> None:
        if job.request.recover_stdid and job.request.stdid is None:
            with ctx.step("recover-student"):
                ctx.set_stdid(4)
        if job.request.verb is Verb.CREATE:
            release.wait(5)
        order.append((job.id, job.request.verb.value))

    create = queue.submit(req("CREATE", 4))
    purge = queue.submit(req("PURGE", None, 9, recover_stdid=True))
    worker = run_worker(settings, queue, runner, workers=2)
    try:
        deadline = time.monotonic() + 5
        while queue.job(purge).reason != "waiting for an earlier job of student 4":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert queue.job(purge).status == "queued"
        release.set()
        assert worker.drain(5)
    finally:
        worker.stop(5)
    assert order == [(create, "CREATE"), (purge, "PURGE")]
    job = queue.job(purge)
    assert job.status == "done" and job.attempts == 1 and job.request.stdid == 4
    assert job.steps[0].status == "waiting"


def test_worker_wakes_at_once_on_submit(settings, queue):
    done = threading.Event()

    def runner(job: Job, ctx: JobContext) -> None:
        done.set()

    worker = run_worker(settings, queue, runner, workers=1, poll_interval=10)
    try:
        time.sleep(0.1)  # the thread is asleep now
        started = time.monotonic()
        queue.submit(req("CREATE", 1))
        assert done.wait(2)
        assert time.monotonic() - started < 1
    finally:
        assert worker.stop(5)


def test_worker_sees_jobs_from_another_process_by_polling(settings, queue):
    done = threading.Event()
    worker = run_worker(settings, queue, lambda job, ctx: done.set(), workers=1, poll_interval=0.1)
    try:
        JobQueue(settings.db_path).submit(req("CREATE", 1))  # not this queue object
        assert done.wait(2)
    finally:
        worker.stop(5)


def test_metrics_count_outcomes_and_steps(settings, queue):
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)

    def runner(job: Job, ctx: JobContext) -> None:
        with ctx.step("deploy"):
            pass
        if job.request.stdid == 2:
            raise Permanent("no such workshop")

    queue.submit(req("CREATE", 1))
    queue.submit(req("CREATE", 2))
    worker = run_worker(settings, queue, runner, workers=2, metrics=metrics)
    try:
        assert worker.drain(5)
    finally:
        worker.stop(5)
    get = registry.get_sample_value
    assert get("wod_jobs_total", {"verb": "CREATE", "outcome": "done"}) == 1
    assert get("wod_jobs_total", {"verb": "CREATE", "outcome": "failed"}) == 1
    assert get("wod_step_seconds_count", {"step": "deploy"}) == 2


@pytest.mark.parametrize("when", ["during a step", "at the outcome"])
def test_busy_job_database_never_leaves_a_job_running(settings, tmp_path, when):
    """Another process holds the job database longer than the busy timeout: the job is
    retried (a step) or its outcome recorded once the database is free; it never stays
    'running' (which would block the student's later jobs until a restart)."""
    queue = JobQueue(settings.db_path, timeout=0.2)
    blocker = sqlite3.connect(settings.db_path, isolation_level=None, check_same_thread=False)
    released = threading.Event()

    def release() -> None:
        blocker.execute("ROLLBACK")
        released.set()

    def runner(job: Job, ctx: JobContext) -> None:
        with ctx.step("first"):
            pass
        if job.attempts == 1:
            blocker.execute("BEGIN EXCLUSIVE")
            threading.Timer(0.8, release).start()
        if when == "during a step":
            with ctx.step("second"):
                pass

    job_id = queue.submit(req("CLEANUP", 7))
    later = queue.submit(req("PURGE", 7))
    worker = run_worker(settings, queue, runner, workers=1, poll_interval=0.05)
    try:
        assert worker.drain(10)
    finally:
        worker.stop(5)
        released.wait(5)
        blocker.close()
    job = queue.job(job_id)
    assert job.status == "done"
    assert queue.job(later).status == "done"
    if when == "during a step":
        assert job.attempts == 2 and [s.name for s in job.steps if s.attempt == 2] == [
            "first",
            "second",
        ]


# -- process groups left by a killed server ------------------------------------------------
def _serve(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wod", "-c", str(config), "serve", "--no-smtp", "--no-http"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(config.parent)},
    )


def _wait_for(predicate, timeout: float, what: str, server: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if server is not None and server.poll() is not None:
            raise AssertionError(f"wod serve exited: {server.stderr.read()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_hook_left_running_by_a_killed_server_is_killed_before_its_job_resumes(install):
    """kill -9 of ``wod serve`` while a CREATE hook sleeps: the hook (its own session) and
    its child survive the server; the next start kills them before the job runs again."""
    logs = install.root / "hook-log"
    logs.mkdir()
    mark = logs / "first-run"
    write_hook(
        install.settings.scripts_dir,
        "create",
        "WKSHP-Sample101",
        f'if [ ! -e "{mark}" ]; then\n'
        f'  touch "{mark}"\n'
        f'  sleep 300 &\n  echo $! > "{logs}/child.pid"\n  echo $$ > "{logs}/first.pid"\n'
        "  wait\n  exit 0\nfi\n"
        "for f in first child; do\n"
        f'  p=$(cat "{logs}/$f.pid")\n'
        "  s=$(awk '{print $3}' /proc/$p/stat 2>/dev/null)\n"
        f'  echo "$f ${{s:-gone}}" >> "{logs}/seen"\n'
        "done",
    )
    cust = install.registry.create_customer("WKSHP-Sample101")
    stdid = cust["studentId"] - install.settings.base_stdid
    queue = JobQueue(install.settings.db_path)
    job_id = queue.submit(
        Request(Verb.CREATE, stdid, cust["id"], "WKSHP-Sample101", email=cust["email"])
    )
    first = _serve(install.config)
    hook_pids: list[int] = []
    try:
        _wait_for(lambda: (logs / "first.pid").is_file(), 60, "the hook to start", first)
        hook_pids = [int((logs / f"{f}.pid").read_text()) for f in ("first", "child")]
        _wait_for(
            lambda: [(r.job_id, r.pgid) for r in queue.processes()] == [(job_id, hook_pids[0])],
            10,
            "the hook's process group on record",
            first,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert all(proc.alive(pid) for pid in hook_pids)  # orphaned, still running

    second = _serve(install.config)
    try:
        _wait_for(lambda: queue.job(job_id).status in ("done", "failed"), 60, "the job", second)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    job = queue.job(job_id)
    assert job.status == "done", (job.reason, job.output)
    assert job.attempts == 2
    # When the resumed attempt's hook ran, the first attempt's processes were gone.
    seen = dict(line.split() for line in (logs / "seen").read_text().splitlines())
    assert seen["first"] in ("Z", "gone") and seen["child"] in ("Z", "gone"), seen
    assert not any(proc.alive(pid) for pid in hook_pids)
    assert queue.processes() == []
    assert "killed 2 process(es) of hook create-WKSHP-Sample101.sh" in second.stderr.read()


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(queue):
    """pid reuse: the recorded leader's start time differs, so nothing is killed."""
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ticks = proc.start_ticks(other.pid)
        queue.add_process(1, other.pid, ticks - 1, proc.boot_id(), "hook x.sh")
        queue.add_process(1, other.pid, ticks, "another-boot", "hook x.sh")
        assert kill_leftovers(queue) == 0
        assert other.poll() is None and queue.processes() == []
        queue.add_process(1, other.pid, ticks, proc.boot_id(), "hook x.sh")
        assert kill_leftovers(queue) == 1
        assert other.wait(5) == -signal.SIGKILL
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_a_job_that_waits_many_times_keeps_one_waiting_step_with_count_and_duration(
    settings, queue
):
    """The RESET/PURGE ``cleaned`` poll: every wait re-runs the job; the record keeps one
    ``waiting`` row (how many waits, from the first to the last) instead of two rows a poll."""
    runs: list[float] = []

    def runner(job: Job, ctx: JobContext) -> None:
        with ctx.step("workshop"):
            pass
        with ctx.step("wait-cleaned"):
            runs.append(time.monotonic())
            if len(runs) <= 5:
                raise Wait(f"customer 1 not cleaned yet (poll {len(runs)})", delay=0.05)
        with ctx.step("release"):
            pass

    job_id = queue.submit(req("PURGE", 1))
    worker = run_worker(settings, queue, runner, workers=1, poll_interval=0.02)
    try:
        assert worker.drain(10)
    finally:
        worker.stop(5)
    job = queue.job(job_id)
    assert job.status == "done" and job.attempts == 1
    assert [(s.name, s.status, s.count) for s in job.steps] == [
        ("wait-cleaned", "waiting", 5),
        ("workshop", "done", 1),
        ("wait-cleaned", "done", 1),
        ("release", "done", 1),
    ]
    waited = job.steps[0]
    assert waited.seconds >= runs[4] - runs[0] >= 4 * 0.05
    assert waited.output == "waiting: customer 1 not cleaned yet (poll 5)"
