"""Job administration: list, show, retry, prune jobs; list rejections.

Used by ``wod jobs`` and the admin API (``/api/jobs``, ``/api/rejections``).  Each function
takes the :class:`JobQueue` (the server's own, or :func:`open_queue` for the CLI) and
returns queue rows (:class:`Job`, :class:`Rejection`) or a small result; :func:`job_record`
is the JSON shape both adapters show (epoch seconds plus local ISO times for people).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wod.ops.common import Conflict, NotFound, OpsError
from wod.queue import STATUSES, Job, JobQueue, NotRetryable, Rejection, UnknownJob
from wod.settings import Settings
from wod.values import local_time, parse_age

MAX_LIMIT = 1000
_STAMPS = ("created", "started", "finished", "not_before")


def open_queue(settings: Settings) -> JobQueue:
    """The job database of an install; it must exist (``wod serve`` creates it)."""
    path = settings.db_path
    if not path.exists():
        raise NotFound(
            f"no job database at {path}",
            remedy="is state_dir right? wod serve creates it",
        )
    return JobQueue(path)


def queue_opener(settings: Settings, *, timeout: float = 30.0) -> Callable[[], JobQueue]:
    """Opens the job database on first use (created if needed), waiting up to ``timeout``
    s for a busy one: for ``wod intake``, which opens it only for a valid mail."""
    return lambda: JobQueue(settings.db_path, timeout=timeout)


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def list_jobs(queue: JobQueue, *, status: str | None = None, limit: int = 100) -> list[Job]:
    """Newest first, at most ``limit`` (1..1000), optionally only one status."""
    if status is not None and status not in STATUSES:
        raise OpsError(f"status must be one of {', '.join(STATUSES)}")
    return queue.jobs(status=status, limit=_limit(limit))


def show_job(queue: JobQueue, job_id: int) -> Job:
    """One job with its steps."""
    try:
        return queue.job(job_id)
    except UnknownJob:
        raise NotFound(f"no job {job_id}") from None


def retry_job(queue: JobQueue, job_id: int) -> Job:
    """Queue a failed job again (a running ``wod serve`` picks it up)."""
    try:
        return queue.retry(job_id)
    except UnknownJob:
        raise NotFound(f"no job {job_id}") from None
    except NotRetryable as exc:
        raise Conflict(str(exc)) from None


@dataclass(frozen=True)
class Pruned:
    """What ``prune_jobs`` removed: finished jobs and rejections older than ``before``."""

    jobs: int
    rejections: int
    before: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "rejections": self.rejections,
            "before": self.before,
            "before_local": local_time(self.before),
        }


def prune_jobs(queue: JobQueue, older_than: str | float, *, now: float | None = None) -> Pruned:
    """Forget finished jobs and rejections older than ``older_than`` (``90d`` or seconds)."""
    try:
        age = parse_age(older_than) if isinstance(older_than, str) else float(older_than)
    except ValueError as exc:
        raise OpsError(str(exc)) from None
    before = (time.time() if now is None else now) - age
    jobs, rejections = queue.prune(before)
    return Pruned(jobs, rejections, before)


def list_rejections(queue: JobQueue, *, limit: int = 100) -> list[Rejection]:
    """Refused requests, newest first."""
    return queue.rejections(limit=_limit(limit))


def students(job: Job) -> str:
    """The job's student(s) as people read them: ``3``, ``1,5`` (RESET range) or ``?``."""
    r = job.request
    if r.stdid is None:
        return "?"
    return f"{r.stdid},{r.stdid_max}" if r.is_range else str(r.stdid)


def job_record(job: Job, *, steps: bool = False) -> dict[str, Any]:
    """The JSON of a job: the queue's fields plus ``<stamp>_local`` ISO times."""
    out = job.to_dict(steps=steps)
    for key in _STAMPS:
        out[f"{key}_local"] = local_time(out.get(key))
    for step in out.get("steps", ()):
        step["started_local"] = local_time(step.get("started"))
    return out


def rejection_record(rejection: Rejection) -> dict[str, Any]:
    out = rejection.to_dict()
    out["at_local"] = local_time(out["at"])
    return out
