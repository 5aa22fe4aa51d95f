"""The seat grid: every seat of ``[user_min, user_max]`` in one of five states an admin
can scan at a glance — free, active, cleaning, failed, quarantined — built on the seat
fold of :mod:`wod.ops.seats`, plus one seat's full job history.

Quarantine records come from the abuse watcher (``wod.ops.watch``) when it is installed:
a seat it holds shows as ``quarantined`` whatever its jobs say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wod.ops.common import NotFound
from wod.ops.seats import Seat
from wod.ops.seats import _apply as fold_one  # the one fold rule
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


def quarantined_seats(settings: Settings) -> dict[int, str]:
    """Seats the abuse watcher holds, with its reason (empty when no watcher is installed)."""
    try:
        from wod.ops import watch  # type: ignore[attr-defined]
    except ImportError:
        return {}
    records: Callable[..., Iterable] | None = getattr(watch, "quarantined", None)
    if records is None:
        return {}
    out: dict[int, str] = {}
    for rec in records(settings):
        stdid = getattr(rec, "stdid", None)
        if isinstance(stdid, int):
            out[stdid] = str(getattr(rec, "reason", "") or "quarantined")
    return out


#: Jobs after which a seat's state no longer depends on its earlier history: a finished
#: CREATE sets workshop, customer and "in use"; a finished RESET or PURGE frees the seat.
RESTARTS = ("CREATE", "RESET", "PURGE")
PAGE = 8  # most seats reach a reset within a few jobs


def recent_seat(settings: Settings, queue: JobQueue, accounts: Accounts, stdid: int) -> Seat:
    """The seat as :func:`wod.ops.seats.seats` folds it, from its newest jobs only: back to
    the last finished CREATE, RESET or PURGE (a handful of rows instead of the whole
    history, which matters with 100,000 jobs and a grid refreshed every second)."""
    recent: list[Job] = []
    before: int | None = None
    while True:
        page = queue.search(stdid=stdid, before_id=before, limit=PAGE)
        for job in page:
            recent.append(job)
            if job.status == "done" and job.verb in RESTARTS:
                break
        else:
            if len(page) == PAGE:
                before = page[-1].id
                continue
        break
    seat = Seat(stdid, settings.account(stdid), accounts.exists(stdid))
    for job in reversed(recent):
        if job.verb == "CREATE" and job.status == "failed":
            job = queue.job(job.id)  # with its steps, as the fold reads them
        fold_one(seat, job)
    return seat


def grid(settings: Settings, queue: JobQueue, accounts: Accounts) -> list[Cell]:
    """One cell per seat."""
    held = quarantined_seats(settings)
    out = []
    for n in range(settings.user_min, settings.user_max + 1):
        seat = recent_seat(settings, queue, accounts, n)
        state = "quarantined" if seat.stdid in held else grid_state(seat)
        detail = held.get(seat.stdid) or seat.state
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
    held = quarantined_seats(settings)
    seat = recent_seat(settings, queue, accounts, stdid)
    cell = Cell(
        stdid=seat.stdid,
        account=seat.account,
        state="quarantined" if stdid in held else grid_state(seat),
        detail=held.get(stdid) or seat.state,
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
