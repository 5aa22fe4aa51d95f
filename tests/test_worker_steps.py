"""Step bookkeeping of a running job, as another reader of the job database sees it: one
write per step (its start with the end of the step before), the last step's end with the
outcome; a running step reads as running, a step that ended as what it ended in, and a
retry after a crash knows which steps got through."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.plugins.paths import ROOT
from wod.errors import Permanent
from wod.lifecycle.context import reported_earlier
from wod.queue import Job, JobQueue
from wod.requests import Request, Verb
from wod.settings import Settings
from wod.worker import JobContext, Worker


class CountingQueue(JobQueue):
    """The real queue, counting its write transactions."""

    writes = 0

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator:
        self.writes += 1
        with super()._write(durable) as db:
            yield db


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, retry_max_attempts=3, workers=1)


def seen(reader: JobQueue, job_id: int) -> list[tuple[str, str, str]]:
    return [(s.name, s.status, s.output) for s in reader.job(job_id).steps]


def test_each_step_reads_as_running_while_it_runs_and_as_ended_once_the_next_begins(settings):
    queue = JobQueue(settings.db_path)
    reader = JobQueue(settings.db_path)  # another connection, as the dashboard's
    job_id = queue.submit(Request(Verb.CREATE, 1, 11, "WKSHP-API101"))
    during: list[list[tuple[str, str, str]]] = []

    def runner(job: Job, ctx: JobContext) -> None:
        with ctx.step("workshop"):
            ctx.log("found")
            during.append(seen(reader, job.id))
        with ctx.step("report"):
            during.append(seen(reader, job.id))
        with ctx.step("hub"):
            during.append(seen(reader, job.id))
            raise Permanent("hub refused")

    job = queue.claim("w")
    assert Worker(settings, queue, runner).run_one(job) == "failed"
    assert during == [
        [("workshop", "running", "")],
        [("workshop", "done", "found"), ("report", "running", "")],
        [("workshop", "done", "found"), ("report", "done", ""), ("hub", "running", "")],
    ]
    assert seen(reader, job_id)[-1] == ("hub", "failed", "error: hub refused")
    assert reader.job(job_id).status == "failed"


def test_a_job_of_three_steps_takes_one_write_per_step_and_one_for_its_outcome(settings):
    queue = CountingQueue(settings.db_path)
    job_id = queue.submit(Request(Verb.CLEANUP, 1, 11, "WKSHP-API101"))

    def runner(job: Job, ctx: JobContext) -> None:
        for name in ("workshop", "password", "report"):
            with ctx.step(name):
                ctx.log(name)

    job = queue.claim("w")
    before = queue.writes
    assert Worker(settings, queue, runner).run_one(job) == "done"
    assert queue.writes - before == 4
    assert seen(queue, job_id) == [
        ("workshop", "done", "workshop"),
        ("password", "done", "password"),
        ("report", "done", "report"),
    ]
    assert queue.job(job_id).status == "done"


# A worker process that reports, then hangs in the next step until it is killed.
CRASHING = """
import sys, threading
from pathlib import Path
from wod.queue import JobQueue
from wod.settings import Settings
from wod.worker import Worker

def runner(job, ctx):
    with ctx.step("report"):
        ctx.log("password reported")
    with ctx.step("hub"):
        print("in hub", flush=True)
        threading.Event().wait()

settings = Settings(state_dir=Path(sys.argv[1]), workers=1)
queue = JobQueue(settings.db_path)
Worker(settings, queue, runner).run_one(queue.claim("doomed"))
"""


def test_a_crash_after_the_report_step_leaves_a_retry_that_knows_it_got_through(settings):
    queue = JobQueue(settings.db_path)
    job_id = queue.submit(Request(Verb.CREATE, 1, 11, "WKSHP-API101"))
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING, str(settings.state_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "in hub"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert queue.resume_interrupted() == 1
    job = queue.claim("w")
    assert job is not None and job.id == job_id and job.attempts == 2
    assert seen(queue, job_id) == [
        ("report", "done", "password reported"),
        ("hub", "interrupted", ""),
    ]
    assert reported_earlier(JobContext(queue, job, settings))
