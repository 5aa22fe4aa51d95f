"""Seats: what each student account of this backend is doing, from the job history.

The api-db is the authority on assignments; this view is what the backend last did to
each seat (its last job, and the workshop and customer of the last CREATE not yet undone
by a CLEANUP, RESET or PURGE), which is what an admin needs when a participant reports a
problem.  A failed CREATE is a failed deployment only if it got past its checks (its steps
say how far it went); one refused before touching the seat leaves the seat's state as it
was, shown with that CREATE as the last job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wod.values import local_time, seat_error

if TYPE_CHECKING:
    from wod.queue import Job, JobQueue
    from wod.services.accounts import Accounts
    from wod.settings import Settings


@dataclass
class Seat:
    stdid: int
    account: str
    home: bool
    state: str = "free"
    workshop: str = ""
    customer: int | None = None
    last_job: Job | None = None

    def to_dict(self) -> dict:
        j = self.last_job
        return {
            "stdid": self.stdid,
            "account": self.account,
            "home": self.home,
            "state": self.state,
            "workshop": self.workshop,
            "customer": self.customer,
            "last_job": j
            and {
                "id": j.id,
                "verb": j.verb,
                "status": j.status,
                "reason": j.reason,
                "finished": j.finished,
                "finished_local": local_time(j.finished),
            },
        }


#: Steps that only check a request (nothing on the seat changes while they run).
CHECK_STEPS = frozenset({"recover-student", "workshop", "seat"})
#: The CREATE step that refuses a seat another customer still uses (the seat is busy).
BUSY_STEP = "seat"


def refused_busy(job: Job) -> bool:
    """A CREATE refused because the seat's current participant is still active."""
    return any(step.name == BUSY_STEP and step.status == "failed" for step in job.steps)


#: The CREATE step after which the api-db sees the participant active (and mails them).
ACTIVE_STEP = "active"


def reported_active(job: Job) -> bool:
    """A failed CREATE that had told the api-db the participant is active: it failed at
    the hub (upstream's order, ``hub_start_before_active: false``).  The seat is ready and
    the participant has the link; the server starts when they log in (if the hub can)."""
    return any(step.name == ACTIVE_STEP and step.status == "done" for step in job.steps)


def changed_seat(job: Job) -> bool:
    """Whether a job got past its checks: a failed CREATE refused at the workshop or seat
    check (unknown workshop, seat outside its range) left the seat as it was."""
    return any(step.name not in CHECK_STEPS for step in job.steps)


def _apply(seat: Seat, job: Job) -> None:
    seat.last_job = job
    verb, ok = job.verb, job.status == "done"
    if job.status in ("queued", "running"):
        seat.state = f"{verb.lower()} pending"
        seat.workshop, seat.customer = job.request.workshop, job.request.customer
    elif verb == "CREATE" and not ok and refused_busy(job):
        # Another participant is still active there: the seat and its session are theirs.
        seat.state = f"busy: refused CREATE for customer {job.request.customer}"
    elif verb == "CREATE" and not ok and reported_active(job):
        seat.workshop, seat.customer = job.request.workshop, job.request.customer
        seat.state = "in use, hub server not started"
    elif verb == "CREATE" and not ok and not changed_seat(job):
        pass  # refused before touching the seat: it is as the previous job left it
    elif verb == "CREATE":
        seat.workshop, seat.customer = job.request.workshop, job.request.customer
        seat.state = "in use" if ok else "deployment failed"
    elif verb == "CLEANUP" and ok:
        seat.state = "cleaned"
    elif verb in ("RESET", "PURGE") and ok:
        seat.state, seat.workshop, seat.customer = "free", "", None


def seats(
    settings: Settings,
    queue: JobQueue,
    accounts: Accounts,
    first: int | None = None,
    last: int | None = None,
) -> list[Seat]:
    """One :class:`Seat` per student of ``[first, last]`` (default: the configured range)."""
    first = settings.user_min if first is None else first
    last = settings.user_max if last is None else last
    table = {n: Seat(n, settings.account(n), accounts.exists(n)) for n in range(first, last + 1)}
    for job in queue.jobs_by_id(_jobs_that_matter(queue, first, last)):
        if job.verb == "CREATE" and job.status == "failed":
            job = queue.job(job.id)  # with its steps: how far it got
        for n in job.request.stdids:
            if n in table:
                _apply(table[n], job)
    return list(table.values())


#: Jobs that set a seat's whole state, whatever came before (see :func:`_apply`).
DEFINING = frozenset({"CREATE", "RESET", "PURGE"})


def _jobs_that_matter(queue: JobQueue, first: int, last: int) -> set[int]:
    """The jobs whose replay gives the seats ``[first, last]``: for each seat, its jobs
    since its latest done CREATE, RESET or PURGE (that job included; what came before it
    changes nothing).  Read newest first, stopping once every seat has one, so a long
    history is not replayed (200 seats after 100,000 jobs: 1.26 s -> 12 ms)."""
    open_seats = set(range(first, last + 1))
    wanted: set[int] = set()
    for job_id, verb, status, low, high in queue.outline_newest_first(first, last):
        touched = open_seats.intersection(range(max(low, first), min(high, last) + 1))
        if not touched:
            continue
        wanted.add(job_id)
        if status == "done" and verb in DEFINING:
            open_seats -= touched
            if not open_seats:
                break
    return wanted


@dataclass
class SeatView:
    """``wod seats``: the seats, and what could not be seen (one line each)."""

    seats: list[Seat]
    notes: list[str]

    def to_dict(self) -> dict:
        return {"seats": [s.to_dict() for s in self.seats], "notes": list(self.notes)}


class _LookedUp:
    """Read-only account lookup (passwd + home folder): what a non-root admin can see."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def exists(self, n: int) -> bool:
        import pwd

        if self.settings.accounts == "system":
            try:
                pwd.getpwnam(self.settings.account(n))
            except KeyError:
                return False
        return self.settings.home(n).is_dir()


def seat_view(settings: Settings, first: int | None = None, last: int | None = None) -> SeatView:
    """Every seat of ``[first, last]`` (default: the configured range), read-only: run by
    a non-root admin it shows what it can and says what it cannot see."""
    import getpass
    import os

    from wod.errors import WodError
    from wod.ops.common import OpsError
    from wod.queue import JobQueue

    first = settings.user_min if first is None else first
    last = settings.user_max if last is None else last
    if first > last:
        raise OpsError(f"range {first}-{last} is reversed: {first} is above {last}")
    for n in (first, last):
        problem = seat_error(n, settings, what="seat")
        if problem:
            raise OpsError(problem)
    accounts = _LookedUp(settings)
    path = settings.db_path
    problem = None
    if not os.access(path.parent, os.X_OK) and path.parent.exists():
        problem = "its folder is not readable"
    elif not path.exists():
        table = [Seat(n, settings.account(n), accounts.exists(n)) for n in range(first, last + 1)]
        return SeatView(table, [f"no job database at {path} yet: no seat has had a job"])
    elif not os.access(path, os.R_OK | os.W_OK):
        problem = "it is not readable and writable"
    else:
        try:
            return SeatView(seats(settings, JobQueue(path), accounts, first, last), [])  # type: ignore[arg-type]
        except (OSError, WodError) as exc:
            problem = str(exc)
    note = (
        f"job history {path} cannot be read by {getpass.getuser()} ({problem}): seat states "
        "are unknown; run as root (sudo wod seats) to see them"
    )
    table = [
        Seat(n, settings.account(n), accounts.exists(n), state="unknown")
        for n in range(first, last + 1)
    ]
    return SeatView(table, [note])
