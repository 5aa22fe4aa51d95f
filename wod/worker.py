"""Workers: threads that take jobs from the queue and run them, one story per job.

``Worker(settings, queue, runner)`` starts ``settings.workers`` threads.  Each claims the
next runnable job (the queue keeps one student's jobs in order) and calls
``runner(job, ctx)``.  The runner records its steps with ``with ctx.step("deploy"):`` and
adds text to the current step with ``ctx.log(...)``; both land in the job record that
``wod jobs show`` and the dashboard display.  Text given to ``ctx.log`` must be safe to
store: never a password or a token.

Outcome of a run, by what the runner raised:

- nothing: the job is ``done``;
- :class:`~wod.errors.Wait`: back to the queue after ``delay`` without using an attempt;
- :class:`~wod.errors.Transient`: back to the queue after ``retry_base_delay *
  2**(tries-1)`` seconds (capped at ``retry_max_delay``; the raiser's own ``delay`` wins),
  ``failed`` once ``retry_max_attempts`` runs have been used;
- :class:`~wod.errors.Permanent` / :class:`~wod.errors.Rejected`: ``failed`` with the
  reason and output;
- anything else: ``failed`` with the exception's class and message; the traceback is
  logged.

A job database too busy or full to record a step counts as a transient fault; recording the
outcome is retried until it succeeds (or the worker stops: the job then resumes at the next
start), so a job is never left ``running`` while the worker goes on.

Every command a job runs (through :func:`wod.proc.run`) has its process group recorded
with the job while it runs (:class:`JobProcesses`); :func:`kill_leftovers`, called at start
before interrupted jobs resume, kills what a killed server left running.

Threads wake at once when a job is submitted in this process, and poll every
``poll_interval`` seconds for jobs submitted by other processes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from wod import proc
from wod.errors import HookFailed, Permanent, Rejected, Transient, Wait
from wod.lifecycle.context import EarlierJob, StepRecord
from wod.queue import Job, JobQueue, StepEnd
from wod.requests import Request
from wod.settings import Settings

log = logging.getLogger(__name__)

Runner = Callable[[Job, "JobContext"], None]


class WorkerMetrics:
    """Prometheus metrics of job runs, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Counter(
            "wod_jobs_total",
            "Job runs by verb and outcome (done, failed, retry, wait).",
            ["verb", "outcome"],
            registry=registry,
        )
        self.job_seconds = Histogram(
            "wod_job_seconds",
            "Duration of one job run, by verb.",
            ["verb"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.step_seconds = Histogram(
            "wod_step_seconds",
            "Duration of one lifecycle step, by step name.",
            ["step"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.hook_failures = Counter(
            "wod_hook_failures_total",
            "Hook scripts that failed (non-zero exit or timeout), by kind.",
            ["kind"],
            registry=registry,
        )


@dataclass
class JobContext:
    """What a runner gets besides the job: step recording, the settings, and what the
    queue knows about the job (the lifecycle's typed view:
    :class:`wod.lifecycle.context.JobContext`, filled here so the lifecycle never reads
    the queue).  Earlier steps and the previous job are read once, when first asked."""

    queue: JobQueue
    job: Job
    settings: Settings
    metrics: WorkerMetrics | None = None
    _buffer: list[str] | None = field(default=None, repr=False)
    _orphan: list[str] = field(default_factory=list, repr=False)
    _earlier: tuple[StepRecord, ...] | None = field(default=None, repr=False)
    _previous: tuple[EarlierJob | None] | None = field(default=None, repr=False)
    _ended: list[StepEnd] = field(default_factory=list, repr=False)

    # -- the job, as the lifecycle sees it ---------------------------------------------
    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def request(self) -> Request:
        return self.job.request

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def tries(self) -> int:
        return self.job.tries

    @property
    def created(self) -> float:
        return self.job.created

    @property
    def earlier_steps(self) -> tuple[StepRecord, ...]:
        """Steps recorded by earlier attempts of this job, oldest first."""
        if self._earlier is None:
            self._earlier = tuple(
                StepRecord(s.attempt, s.name, s.status)
                for s in self.queue.job(self.job.id).steps
                if s.attempt < self.job.attempts
            )
        return self._earlier

    @property
    def previous(self) -> EarlierJob | None:
        """The student's latest earlier job, if any."""
        if self._previous is None:
            found = self.queue.previous_for_student(self.job.id)
            self._previous = (
                (EarlierJob(found.id, found.request, found.status) if found else None),
            )
        return self._previous[0]

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Record step ``name``: start, duration, status and the text logged inside it.

        One write per step: its start, together with how the steps before it ended.  The
        end of a step is so in the database before the job does anything in a later step
        (a retry sees a ``report`` that got through), and the end of the last one is
        written with the job's outcome (:attr:`ended`)."""
        step_id = self.queue.start_step(self.job.id, name, self._ended)
        self._ended = []
        outer, self._buffer = self._buffer, []
        started = time.monotonic()
        status = "done"
        try:
            yield
        except Wait as exc:
            status = "waiting"
            self._buffer.append(f"waiting: {exc.reason}")
            raise
        except Transient as exc:
            status = "retry"
            self._add_output(exc)
            raise
        except BaseException as exc:
            status = "failed"
            self._add_output(exc)
            if isinstance(exc, HookFailed) and self.metrics is not None:
                self.metrics.hook_failures.labels(exc.kind or "unknown").inc()
            raise
        finally:
            seconds = time.monotonic() - started
            output = "\n".join(self._buffer)
            self._buffer = outer
            self._ended.append(StepEnd(step_id, status, seconds, output))
            if self.metrics is not None:
                self.metrics.step_seconds.labels(name).observe(seconds)

    def _add_output(self, exc: BaseException) -> None:
        assert self._buffer is not None
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        self._buffer.append(f"error: {reason}")
        if getattr(exc, "output", ""):
            self._buffer.append(exc.output)  # type: ignore[attr-defined]

    def log(self, text: str) -> None:
        """Append ``text`` (safe to store: no secrets) to the current step's output."""
        if self._buffer is None:
            self._orphan.append(text)
        else:
            self._buffer.append(text)

    def set_stdid(self, stdid: int) -> None:
        """Pin the student of a job whose id was recovered; :class:`Wait` if an earlier
        job of that student has not finished yet."""
        self.queue.set_stdid(self.job.id, stdid)
        self.job = self.queue.job(self.job.id)
        self._previous = None  # the student is known now
        if self.queue.earlier_unfinished(self.job.id):
            raise Wait(f"waiting for an earlier job of student {stdid}", delay=0.0)

    def seat_customer(self) -> int | None:
        """The customer whose session the job's student holds, per the earlier jobs."""
        return self.queue.seat_customer(self.job.id)

    @property
    def output(self) -> str:
        """Text logged outside any step (kept as the job's output)."""
        return "\n".join(self._orphan)

    @property
    def ended(self) -> tuple[StepEnd, ...]:
        """Steps that ended since the job's last write: the outcome records them."""
        return tuple(self._ended)


class JobProcesses:
    """:class:`wod.proc.Watch` recording a job's running commands in the queue."""

    def __init__(self, queue: JobQueue, job_id: int) -> None:
        self.queue = queue
        self.job_id = job_id

    def started(self, pid: int, start_ticks: int, boot_id: str, what: str) -> object:
        return self.queue.add_process(self.job_id, pid, start_ticks, boot_id, what)

    def ended(self, token: object) -> None:
        try:
            self.queue.remove_process(int(token))  # type: ignore[call-overload]
        except sqlite3.Error as exc:  # harmless: the next start finds the group gone
            log.warning("job %s: end of a command not recorded (%s)", self.job_id, exc)


def kill_leftovers(queue: JobQueue) -> int:
    """At start, before interrupted jobs resume: kill the process groups (hooks and other
    commands) that jobs of a killed server were running, so that a resumed job never runs
    next to its previous attempt.  Returns how many processes were killed."""
    killed = 0
    records = queue.processes()
    for record in records:
        count = proc.kill_group(record.pgid, record.start_ticks, record.boot_id)
        if count:
            log.warning(
                "killed %d process(es) of %s left running by job %s (process group %d)",
                count,
                record.what,
                record.job_id,
                record.pgid,
            )
        killed += count
        queue.remove_process(record.id)
    return killed


class Worker:
    """``workers`` threads running jobs from ``queue`` through ``runner``."""

    def __init__(
        self,
        settings: Settings,
        queue: JobQueue,
        runner: Runner,
        *,
        workers: int | None = None,
        poll_interval: float = 0.5,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.runner = runner
        self.count = settings.workers if workers is None else workers
        self.poll_interval = poll_interval
        self.metrics = metrics
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the threads (idempotent)."""
        if self._threads:
            return
        self._stop.clear()
        for n in range(max(self.count, 1)):
            thread = threading.Thread(
                target=self._loop,
                args=(f"worker-{n + 1}",),
                name=f"wod-worker-{n + 1}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the threads to stop after their current job; wait up to ``timeout`` seconds.
        Returns False if some thread was still busy (its job resumes at the next start)."""
        self._stop.set()
        self.queue.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = alive
        return not alive

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no job is queued or running (deferred ones included); False on
        timeout."""
        deadline = time.monotonic() + timeout
        while self.queue.pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.queue.wait(min(remaining, 0.05))
        return True

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # -- one thread ---------------------------------------------------------------------
    def _loop(self, name: str) -> None:
        try:
            while not self._stop.is_set():
                try:
                    job = self.queue.claim(name)
                    if job is None:
                        self.queue.wait(self._sleep())
                        continue
                except Exception:  # a busy or broken database must not end the thread
                    log.exception("%s: cannot claim a job", name)
                    self._stop.wait(self.poll_interval)
                    continue
                try:
                    self.run_one(job)
                except Exception:
                    # The queue itself failed; the job stays running and resumes at restart.
                    log.exception("%s: job %s could not be recorded", name, job.id)
        finally:
            self.queue.close()

    def _sleep(self) -> float:
        due = self.queue.next_due()
        if due is None:
            return self.poll_interval
        return min(max(due - time.time(), 0.01), self.poll_interval)

    def backoff(self, tries: int) -> float:
        """Delay before the next run after ``tries`` transient failures."""
        s = self.settings
        return min(s.retry_base_delay * 2 ** max(tries - 1, 0), s.retry_max_delay)

    def _settle(self, job_id: int, record: Callable[..., None], *args: Any, **kw: Any) -> None:
        """Record a job's outcome, waiting out a busy or full job database (a job left
        ``running`` would block its student until the next start).  Gives up only when the
        worker is stopping: the job then resumes at the next start."""
        pause = self.poll_interval
        while True:
            try:
                record(*args, **kw)
                return
            except sqlite3.Error as exc:
                if self._stop.is_set():
                    raise
                log.warning("job %s: outcome not recorded yet (%s); trying again", job_id, exc)
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)

    def run_one(self, job: Job) -> str:
        """Run a claimed job to its outcome; returns it (done, failed, retry, wait)."""
        ctx = JobContext(self.queue, job, self.settings, self.metrics)
        verb = job.verb
        started = time.monotonic()
        outcome = "done"
        try:
            try:
                with proc.watching(JobProcesses(self.queue, job.id)):
                    self.runner(job, ctx)
            except sqlite3.Error as exc:
                # The job database was busy or full while a step was being recorded: the
                # job itself did not fail; run it again later (steps are idempotent).
                raise Transient(f"job database: {exc}") from None
        except Wait as exc:
            outcome = "wait"
            self._settle(
                job.id,
                self.queue.defer,
                job.id,
                exc.delay,
                exc.reason,
                attempt_used=False,
                ended=ctx.ended,
            )
        except Transient as exc:
            if job.tries >= self.settings.retry_max_attempts:
                outcome = "failed"
                reason = f"gave up after {job.tries} attempts: {exc.reason}"
                self._settle(job.id, self.queue.fail, job.id, reason, exc.output, ended=ctx.ended)
            else:
                outcome = "retry"
                delay = exc.delay if exc.delay is not None else self.backoff(job.tries)
                log.info("job %s: %s; retry in %.1f s", job.id, exc.reason, delay)
                self._settle(
                    job.id,
                    self.queue.defer,
                    job.id,
                    delay,
                    exc.reason,
                    output=exc.output,
                    ended=ctx.ended,
                )
        except (Permanent, Rejected) as exc:
            outcome = "failed"
            log.warning("job %s failed: %s", job.id, exc.reason)
            self._settle(job.id, self.queue.fail, job.id, exc.reason, exc.output, ended=ctx.ended)
        except Exception as exc:
            outcome = "failed"
            log.exception("job %s: unexpected error", job.id)
            self._settle(
                job.id, self.queue.fail, job.id, f"{type(exc).__name__}: {exc}", ended=ctx.ended
            )
        else:
            self._settle(job.id, self.queue.complete, job.id, ctx.output, ended=ctx.ended)
        if self.metrics is not None:
            self.metrics.jobs.labels(verb, outcome).inc()
            self.metrics.job_seconds.labels(verb).observe(time.monotonic() - started)
        return outcome
