"""The job context: everything the lifecycle knows about the job it runs, typed.

The worker fills it (:class:`wod.worker.JobContext` implements :class:`JobContext`); the
lifecycle reads the request, the attempt, the steps of earlier attempts and the student's
previous job from it, records its own steps through it, and never reads the queue.

Two rules about earlier runs live here, as plain functions of the context:

- :func:`reported_earlier`: a CREATE retried after its report only starts the hub server
  (the api-db may already have mailed the password);
- :func:`duplicate_of`: a CREATE repeating the student's last finished CREATE for the same
  customer and workshop (the api-db re-sends requests it thinks lost) leaves the seat as it
  is.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from wod.requests import Request


@dataclass(frozen=True)
class StepRecord:
    """One recorded step of an earlier attempt of the job."""

    attempt: int
    name: str
    status: str


@dataclass(frozen=True)
class EarlierJob:
    """An earlier job of the same student (the latest one, whatever its outcome)."""

    id: int
    request: Request
    status: str


class QueuedJob(Protocol):
    """The job as the worker hands it to the runner (``wod.queue.Job`` is one)."""

    @property
    def id(self) -> int: ...

    @property
    def request(self) -> Request: ...


class JobContext(Protocol):
    """What a lifecycle function gets besides the services and the request."""

    @property
    def job_id(self) -> int: ...

    @property
    def request(self) -> Request:
        """The request as stored (with a recovered student once pinned)."""
        ...

    @property
    def attempt(self) -> int:
        """This run's attempt number (1 for the first run)."""
        ...

    @property
    def tries(self) -> int:
        """Runs since the last manual retry, this one included."""
        ...

    @property
    def created(self) -> float:
        """When the request was received (``time.time()``)."""
        ...

    @property
    def earlier_steps(self) -> tuple[StepRecord, ...]:
        """The steps recorded by earlier attempts of this job, oldest first."""
        ...

    @property
    def previous(self) -> EarlierJob | None:
        """The student's latest earlier job, if any."""
        ...

    def seat_customer(self) -> int | None:
        """The customer whose session the job's student holds, per the earlier jobs
        (None when the seat is free)."""
        ...

    def set_stdid(self, stdid: int) -> None:
        """Pin the student of a job whose id was recovered from the customer; raises
        :class:`wod.errors.Wait` while an earlier job of that student is unfinished."""
        ...

    def step(self, name: str) -> AbstractContextManager[None]:
        """Record step ``name`` (start, duration, status, the text logged inside it)."""
        ...

    def log(self, text: str) -> None:
        """Add ``text`` (safe to store: never a password or a token) to the current step."""
        ...


def reported_earlier(ctx: JobContext, step: str = "report") -> bool:
    """Whether an earlier automatic attempt of this job (since the last manual retry, or a
    crash) got through ``step``.  Once a CREATE has given the api-db the password, the
    api-db may mail it to the participant at any tick: a retry must not change it.  The
    worker records a step's end with the start of the next one (or the job's outcome): a
    ``report`` that got through is on record before the next step begins."""
    first = ctx.attempt - ctx.tries  # attempts made before the last manual retry
    return any(
        s.name == step and s.status == "done" and first < s.attempt < ctx.attempt
        for s in ctx.earlier_steps
    )


def duplicate_of(ctx: JobContext, request: Request) -> int | None:
    """The id of the CREATE this one repeats, if the seat is still as that one left it.

    The api-db re-sends a CREATE it thinks was not received (SPEC 2.2).  When the student's
    last job is a finished CREATE for the same customer and workshop, the seat is ready
    and the participant may already have the password and be working: running it again
    would wipe their work and change the password they were mailed."""
    previous = ctx.previous
    if (
        previous is not None
        and previous.status == "done"
        and previous.request.verb == request.verb
        and previous.request.customer == request.customer
        and previous.request.workshop == request.workshop
        and previous.request.stdids == request.stdids
    ):
        return previous.id
    return None
