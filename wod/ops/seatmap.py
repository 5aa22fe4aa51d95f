"""The seat grid: every seat of ``[user_min, user_max]`` in one of five states an admin
can scan at a glance — free, active, cleaning, failed, quarantined — built on the seat
fold of :mod:`wod.ops.seats`, plus one seat's full job history.

Quarantine comes from the abuse watcher's record (:func:`wod.ops.watch.quarantined`): a
seat it throttled, killed in or PURGEd, with no job of the seat finished since, shows as
``quarantined`` whatever its jobs say.
"""

from __future__ import annotations

from dataclasses import dataclass

from wod.ops.common import NotFound
from wod.ops.seats import Seat, seats
from wod.ops.watch import Action, quarantined
from wod.queue import Job, JobQueue
from wod.services.accounts import Accounts
from wod.settings import Settings
from wod.values import seat_error

STATES = ("free", "active", "cleaning", "failed", "quarantined")


@dataclass(frozen=True)
class Cell:
    stdid: int
    account: str
    state: str  # one of STATES
    detail: str  # the fold's own words ("in use", "cleanup pending", …)
    workshop: str
    customer: int | None
    since: float | None
    last_job: Job | None


def grid_state(seat: Seat) -> str:
    """One of :data:`STATES` for a seat of the fold."""
    job = seat.last_job
    text = seat.state
    if text.startswith("busy"):  # a CREATE refused: the seat is another participant's
        return "active"
    if job is not None and job.status == "failed":
        return "failed"
    if "fail" in text or "gave up" in text:
        return "failed"
    if text.endswith("pending") and not text.startswith("create"):
        return "cleaning"
    if text in ("free", "cleaned"):
        return "free"
    return "active"


def _since(job: Job | None) -> float | None:
    if job is None:
        return None
    return job.finished or job.started or job.created


def quarantine_of(held: dict[int, Action], seat: Seat) -> str:
    """The watcher's reason when it holds ``seat``: an action of the watcher on the seat
    that no job of the seat has finished after (a PURGE or a new CREATE ends it)."""
    action = held.get(seat.stdid)
    if action is None:
        return ""
    done = _since(seat.last_job)
    if done is not None and done >= action.time:
        return ""
    return f"{action.action} by the abuse watcher ({action.rule}): {action.process or '?'}"


def recent_seat(settings: Settings, queue: JobQueue, accounts: Accounts, stdid: int) -> Seat:
    """One seat as :func:`wod.ops.seats.seats` folds it (from its newest jobs only: back
    to its last finished CREATE, RESET or PURGE)."""
    return seats(settings, queue, accounts, stdid, stdid)[0]


def grid(settings: Settings, queue: JobQueue, accounts: Accounts) -> list[Cell]:
    """One cell per seat."""
    held = quarantined(settings)
    out = []
    for seat in seats(settings, queue, accounts):  # one pass over the newest jobs
        hold = quarantine_of(held, seat)
        state = "quarantined" if hold else grid_state(seat)
        detail = hold or seat.state
        out.append(
            Cell(
                stdid=seat.stdid,
                account=seat.account,
                state=state,
                detail=detail,
                workshop=seat.workshop,
                customer=seat.customer,
                since=_since(seat.last_job),
                last_job=seat.last_job,
            )
        )
    return out


@dataclass(frozen=True)
class SeatHistory:
    cell: Cell
    jobs: list[Job]  # newest first


def seat_history(
    settings: Settings, queue: JobQueue, accounts: Accounts, stdid: int
) -> SeatHistory:
    """One seat with every job that touched it."""
    problem = seat_error(stdid, settings, what="seat")
    if problem:
        raise NotFound(problem)
    seat = recent_seat(settings, queue, accounts, stdid)
    hold = quarantine_of(quarantined(settings), seat)
    cell = Cell(
        stdid=seat.stdid,
        account=seat.account,
        state="quarantined" if hold else grid_state(seat),
        detail=hold or seat.state,
        workshop=seat.workshop,
        customer=seat.customer,
        since=_since(seat.last_job),
        last_job=seat.last_job,
    )
    return SeatHistory(cell, list(reversed(queue.history(stdid, stdid))))


def seat_grid(settings: Settings, queue: JobQueue) -> list[Cell]:
    """:func:`grid` with the install's accounts."""
    from wod.services.accounts import make_accounts

    return grid(settings, queue, make_accounts(settings))


def seat_page(settings: Settings, queue: JobQueue, stdid: int) -> SeatHistory:
    """:func:`seat_history` with the install's accounts."""
    from wod.services.accounts import make_accounts

    return seat_history(settings, queue, make_accounts(settings), stdid)
