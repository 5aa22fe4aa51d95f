"""Finding jobs and stopping one: the dashboard's job list (filters, keyset pages) and its
Cancel button.

:func:`search_jobs` validates the filters an admin typed (one-line errors naming the
filter) and returns one page, newest first, with the cursor of the next page;
:func:`cancel_job` stops a queued job, which stays on record as ``cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass

from wod.ops.common import Conflict, NotFound, OpsError
from wod.queue import STATUSES, Job, JobQueue, NotCancellable, Step, UnknownJob
from wod.requests import Verb

PAGE = 50
VERBS = tuple(Verb.__members__)
__all__ = ["STATUSES", "VERBS", "search_jobs", "cancel_job", "remedy", "attempts", "job_detail"]
MAX_TEXT = 100


@dataclass(frozen=True)
class JobFilter:
    status: str = ""
    verb: str = ""
    seat: str = ""
    workshop: str = ""
    text: str = ""

    def active(self) -> bool:
        return any((self.status, self.verb, self.seat, self.workshop, self.text))


#: A text search reads at most this many jobs per page (newest first), so its cost does not
#: grow with the history; the next page goes on from where it stopped.
TEXT_WINDOW = 20_000


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_before: int | None  # pass as ``before`` for the next (older) page
    searched: tuple[int, int] | None = None  # ids a windowed text search covered


def search_jobs(
    queue: JobQueue,
    where: JobFilter,
    *,
    before: int | None = None,
    limit: int = PAGE,
    window: int = TEXT_WINDOW,
) -> JobPage:
    """One page of jobs matching ``where``, newest first, ids below ``before``."""
    status = where.status.strip()
    if status and status not in STATUSES:
        raise OpsError(f"status must be one of {', '.join(STATUSES)}")
    verb = where.verb.strip().upper()
    if verb and verb not in Verb.__members__:
        raise OpsError(f"verb must be one of {', '.join(Verb.__members__)}")
    seat: int | None = None
    if where.seat.strip():
        try:
            seat = int(where.seat.strip())
        except ValueError:
            raise OpsError(f"seat must be a student number, not {where.seat[:20]!r}") from None
    text = where.text.strip()
    if len(text) > MAX_TEXT:
        raise OpsError(f"search text longer than {MAX_TEXT} characters")
    if before is not None and before < 1:
        raise OpsError("before must be a job id")
    limit = max(1, min(limit, 500))
    low: int | None = None
    top = before
    if text:
        top = before if before is not None else queue.newest_id() + 1
        low = max(top - window, 1)
    jobs = queue.search(
        status=status or None,
        verb=verb or None,
        stdid=seat,
        workshop=where.workshop.strip() or None,
        text=text or None,
        before_id=before,
        from_id=low,
        limit=limit + 1,
    )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    if more and jobs:
        return JobPage(jobs, jobs[-1].id)
    if low is not None and top is not None:  # the window is read: go on below it, if any
        return JobPage(jobs, low if low > 1 else None, (low, top - 1))
    return JobPage(jobs, None)


def cancel_job(queue: JobQueue, job_id: int, *, by: str = "an admin") -> Job:
    """Cancel a queued job (kept on record as ``cancelled``)."""
    try:
        return queue.cancel(job_id, by=by)
    except UnknownJob:
        raise NotFound(f"no job {job_id}") from None
    except NotCancellable as exc:
        raise Conflict(str(exc)) from None


#: What an admin does when a job failed in a step (keyed by the lifecycle's step names).
REMEDIES = {
    "recover-student": "the api-db has no student for this customer: check the customer "
    "record in the api-db, then Retry",
    "workshop": "check that the workshop exists in the api-db and in the notebooks trees "
    "and that the student is in its range (wod seats), then Retry",
    "wait-cleaned": "the api-db did not report the customer cleaned in time: check the "
    "CLEANUP of this seat, then Retry",
    "password": "the password could not be set: check the account (wod accounts) and LDAP "
    "(ldap_host, ldap_password), then Retry",
    "erase": "the home could not be wiped: check the account and the students_dir "
    "permissions, then Retry",
    "compile": "a script to compile failed: check it renders and that shc is installed, then Retry",
    "appliance": "the create hook failed (its output is below): fix the script or the "
    "appliance, then Retry",
    "deploy": "a template did not render or a file could not be copied: run "
    "`wod deploy WORKSHOP --student N --dry-run`, fix the workshop, then Retry",
    "post-copy": "the post-copy hook failed (its output is below): fix it, then Retry",
    "cleanup-hooks": "the cleanup hook failed (its output is below): fix it, then Retry",
    "reset-hooks": "the reset hook failed (its output is below): fix it, then Retry",
    "completion": "the completion ratio could not be read from the student's notebooks; "
    "Retry once the home is readable",
    "report": "the api-db refused or did not answer the update: check apidb_url and its "
    "credentials (the Now page shows whether it answers), then Retry",
    "hub": "JupyterHub did not start or stop the server: check hub_url, hub_token and the "
    "hub's log, then Retry",
    "capacity": "the api-db did not take the new capacity: check it answers, then Retry",
    "release": "the api-db did not take the seat back: check it answers, then Retry",
    "cleaned": "the api-db did not take the 'cleaned' flag: check it answers, then Retry",
}
GENERIC = "read the reason and the output above, fix the cause, then Retry"


def failed_step(job: Job) -> Step | None:
    """The step of the last attempt that failed, if any."""
    last = max((s.attempt for s in job.steps), default=None)
    for step in reversed(job.steps):
        if step.attempt == last and step.status == "failed":
            return step
    return None


def remedy(job: Job) -> str:
    """What to do about a failed job, from the step it failed in ("" if not failed)."""
    if job.status != "failed":
        return ""
    step = failed_step(job)
    return REMEDIES.get(step.name, GENERIC) if step is not None else GENERIC


@dataclass(frozen=True)
class Attempt:
    number: int
    steps: list[Step]

    @property
    def seconds(self) -> float:
        return sum(s.seconds or 0.0 for s in self.steps)


def attempts(job: Job) -> list[Attempt]:
    """The job's steps grouped by attempt, latest first."""
    groups: dict[int, list[Step]] = {}
    for step in job.steps:
        groups.setdefault(step.attempt, []).append(step)
    return [Attempt(n, groups[n]) for n in sorted(groups, reverse=True)]


RAW_SHOWN = 8192


@dataclass(frozen=True)
class JobDetail:
    """A job page: the job with its steps, its attempts (latest first), the request as it
    arrived (the start of the raw mail or JSON body; none for a retried old record), and
    what to do if it failed."""

    job: Job
    attempts: list[Attempt]
    raw: str
    remedy: str


def job_detail(queue: JobQueue, job_id: int) -> JobDetail:
    try:
        job = queue.job(job_id)
        raw = queue.raw(job_id) or b""
    except UnknownJob:
        raise NotFound(f"no job {job_id}") from None
    text = raw[:RAW_SHOWN].decode("utf-8", errors="replace")
    if len(raw) > RAW_SHOWN:
        text += f"\n[… {len(raw) - RAW_SHOWN} more bytes]"
    return JobDetail(job, attempts(job), text, remedy(job))
