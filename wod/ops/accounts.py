"""Student accounts: provision a range, wipe homes, kill stale processes.

- :func:`provision` — install time: the account, group and home of every student of the
  range (default: ``user_min..user_max``); a newly created home is seeded like a wiped one.
  Existing accounts are left as they are.
- :func:`wipe` — upstream ``cleanup-users``: empty and re-seed the homes of a range.
- :func:`kill_stale` — upstream's weekly cleanup: kill students' jupyter processes that
  have run longer than the given age.
"""

from __future__ import annotations

from dataclasses import dataclass

from wod.ops.common import OpsError
from wod.services.accounts import Accounts, make_accounts
from wod.services.accounts import kill_stale as kill_stale_processes
from wod.settings import Settings
from wod.values import parse_students, seat_error


@dataclass(frozen=True)
class AccountRow:
    """One student account and what the operation did to it (``created``, ``present``,
    ``wiped``)."""

    stdid: int
    account: str
    home: str
    action: str


@dataclass(frozen=True)
class KilledProcess:
    stdid: int
    account: str
    pid: int
    age: float
    cmdline: str


def student_range(settings: Settings, text: str | None = None) -> list[int]:
    """``3``, ``3-5`` or ``3,5`` (default: the configured range), every one a seat here."""
    if text is None:
        return list(range(settings.user_min, settings.user_max + 1))
    try:
        low, high = parse_students(text)
    except ValueError as exc:
        raise OpsError(str(exc)) from None
    for n in (low, high):
        problem = seat_error(n, settings)
        if problem:
            raise OpsError(problem)
    return list(range(low, high + 1))


def _range(settings: Settings, low: int | None, high: int | None) -> list[int]:
    low = settings.user_min if low is None else low
    high = settings.user_max if high is None else high
    return student_range(settings, f"{low}-{high}")


def provision(
    settings: Settings,
    low: int | None = None,
    high: int | None = None,
    *,
    accounts: Accounts | None = None,
) -> list[AccountRow]:
    """Create the accounts and homes of ``[low, high]`` that do not exist yet."""
    stdids = _range(settings, low, high)
    acct = accounts or make_accounts(settings)
    rows = []
    for n in stdids:
        if acct.exists(n):
            rows.append(AccountRow(n, acct.name(n), str(acct.home(n)), "present"))
            continue
        acct.provision(n)
        acct.reset_home(n)
        rows.append(AccountRow(n, acct.name(n), str(acct.home(n)), "created"))
    return rows


def wipe(
    settings: Settings, students: str, *, accounts: Accounts | None = None
) -> list[AccountRow]:
    """Empty and re-seed the homes of ``students`` (``N``, ``N-M`` or ``N,M``); every home
    must exist before any is wiped."""
    stdids = student_range(settings, students)
    acct = accounts or make_accounts(settings)
    for n in stdids:
        acct.require_home(n)
    rows = []
    for n in stdids:
        acct.reset_home(n)
        rows.append(AccountRow(n, acct.name(n), str(acct.home(n)), "wiped"))
    return rows


def kill_stale(
    settings: Settings,
    older_than: float,
    match: str = "jupyter",
    *,
    accounts: Accounts | None = None,
) -> list[KilledProcess]:
    """Kill the students' processes matching ``match`` older than ``older_than`` s."""
    acct = accounts or make_accounts(settings)
    killed = kill_stale_processes(acct, student_range(settings), older_than, match)
    return [KilledProcess(n, acct.name(n), p.pid, p.age, p.cmdline) for n, p in killed]
