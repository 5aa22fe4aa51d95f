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
            },
        }


#: Steps that only check a request (nothing on the seat changes while they run).
CHECK_STEPS = frozenset({"recover-student", "workshop"})


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
    for job in queue.history(first, last):
        if job.verb == "CREATE" and job.status == "failed":
            job = queue.job(job.id)  # with its steps: how far it got
        for n in job.request.stdids:
            if n in table:
                _apply(table[n], job)
    return list(table.values())
