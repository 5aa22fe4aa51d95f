"""Seat checks: the student accounts of ``[user_min, user_max]`` (uid/gid = base + n, home),
the admin's ACL on every home, the hub users, and seats the api-db and we disagree on.

Fixable: missing accounts and homes (created as ``wod accounts provision`` does), a home's
owner, the admin ACL (``u:<admin>:rwx`` and the same default entry), missing hub users.
An account whose ids are wrong is only reported: changing ids moves files' ownership.
"""

from __future__ import annotations

import grp
import os
import pwd
import time

from wod import acl
from wod.errors import WodError
from wod.ops.check.base import (
    CheckResult,
    Host,
    check,
    fail,
    fixed,
    listing,
    ok,
    skipped,
    warn,
)
from wod.values import truthy

#: a seat whose session ended (CLEANUP of a ``reset`` workshop keeps it) and that no RESET
#: freed after this long is reported
RESET_WAIT = 24 * 3600.0


def _seat_range(host: Host) -> range:
    return range(host.settings.user_min, host.settings.user_max + 1)


# -- accounts ----------------------------------------------------------------------------
def _account_problem(host: Host, n: int) -> str | None:
    s, acct = host.settings, host.accounts
    name, home = s.account(n), s.home(n)
    if s.accounts == "system":
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return f"{name} missing"
        if (entry.pw_uid, entry.pw_gid) != (acct.uid(n), acct.gid(n)):
            return f"{name} uid/gid {entry.pw_uid}/{entry.pw_gid}, want {acct.uid(n)}/{acct.gid(n)}"
        try:
            if grp.getgrnam(name).gr_gid != acct.gid(n):
                return f"group {name} gid {grp.getgrnam(name).gr_gid}, want {acct.gid(n)}"
        except KeyError:
            return f"group {name} missing"
        if entry.pw_dir != str(home):
            return f"{name} home {entry.pw_dir}, want {home}"
    if not home.is_dir():
        return f"{home} missing"
    uid, gid = acct.owner(n)
    if uid is not None:
        st = home.stat()
        if (st.st_uid, st.st_gid) != (uid, gid):
            return f"{home} owned by {st.st_uid}:{st.st_gid}, want {uid}:{gid}"
    return None


def _repair_account(host: Host, n: int, problem: str) -> None:
    acct = host.accounts
    if "missing" in problem:
        created = not acct.home(n).is_dir()
        acct.provision(n)
        if created:
            acct.reset_home(n)  # a new home is seeded like a wiped one
    elif "owned by" in problem:
        uid, gid = acct.owner(n)
        if uid is not None and gid is not None:
            os.chown(acct.home(n), uid, gid)


@check("student-accounts", "seats")
def student_accounts(host: Host) -> CheckResult:
    seats = _seat_range(host)
    problems = {n: p for n in seats if (p := _account_problem(host, n))}
    what = "accounts and homes" if host.settings.accounts == "system" else "homes (directory)"
    if not problems:
        return ok(f"{len(seats)} {what} for {seats.start}-{seats.stop - 1}, ids = base + n")
    if host.fix:
        repaired = []
        errors = []
        for n, problem in problems.items():
            if "uid/gid" in problem or "gid " in problem or " home " in problem:
                continue  # wrong ids or home: not ours to move
            try:
                _repair_account(host, n, problem)
                repaired.append(problem)
            except WodError as exc:
                errors.append(f"{host.settings.account(n)}: {exc.reason}")
        problems = {n: p for n in seats if (p := _account_problem(host, n))}
        if not problems and not errors:
            return fixed(f"repaired: {listing(repaired)}")
        if errors:
            return fail(listing(errors + list(problems.values())), "see wod accounts provision")
    return fail(
        f"{len(problems)} of {len(seats)}: {listing(list(problems.values()))}",
        "wod check --fix (creates missing accounts and homes; wrong ids need an admin)",
    )


# -- admin ACL on every home ---------------------------------------------------------------
def admin_acl_problem(path: str, admin_uid: int) -> str | None:
    """Why ``path`` lacks a working ``u:<admin>:rwx`` and ``d:u:<admin>:rwx``, or None."""
    try:
        access, default = acl.read(path, acl.ACCESS), acl.read(path, acl.DEFAULT)
    except (OSError, ValueError):
        return "ACL unreadable"
    if access.get((acl.USER, admin_uid)) != 7:
        return "no user ACL rwx"
    if access.get((acl.MASK, acl.UNDEFINED_ID), 7) & 7 != 7:
        return "ACL masked (mode group bits)"
    if default.get((acl.USER, admin_uid)) != 7:
        return "no default ACL"
    return None


@check("home-acl", "seats")
def home_acl(host: Host) -> CheckResult:
    s = host.settings
    try:
        admin = pwd.getpwnam(s.admin_user).pw_uid
    except KeyError:
        return skipped(f"admin user {s.admin_user} does not exist")
    homes = [s.home(n) for n in _seat_range(host) if s.home(n).is_dir()]
    problems = {h: p for h in homes if (p := admin_acl_problem(str(h), admin))}
    if not problems:
        return ok(f"u:{s.admin_user}:rwx and its default ACL on {len(homes)} home(s)")
    spec = f"user:{s.admin_user}:rwx,default:user:{s.admin_user}:rwx,mask::rwx"
    if host.fix:
        errors = []
        for home in problems:
            try:
                acl.grant(home, admin)  # what `setfacl -m <spec>` writes
            except OSError as exc:
                errors.append(f"{home}: {exc.strerror or exc}")
        left = {h: p for h in homes if (p := admin_acl_problem(str(h), admin))}
        if not left and not errors:
            return fixed(f"admin ACL set on {len(problems)} home(s)")
        problems = left
    return fail(
        f"{len(problems)} home(s): {listing([f'{h.name} {p}' for h, p in problems.items()])}",
        f"wod check --fix (setfacl -m {spec} <home>)",
    )


# -- hub users -----------------------------------------------------------------------------
@check("hub-users", "seats")
def hub_users(host: Host) -> CheckResult:
    s = host.settings
    if not s.hub_url:
        return skipped("no hub (hub_url empty)")
    names = [s.account(n).lower() for n in _seat_range(host)]
    try:
        missing = [n for n in names if not host.hub.user_exists(n)]
    except WodError as exc:
        return fail(f"cannot list hub users: {exc.reason}", "see the hub-token check")
    if not missing:
        return ok(f"{len(names)} hub user(s)")
    if host.fix:
        try:
            for name in missing:
                host.hub.ensure_user(name)
        except WodError as exc:
            return fail(f"creating hub users: {exc.reason}", "see the hub-token check")
        return fixed(f"created hub user(s): {listing(missing)}")
    return fail(f"{len(missing)} missing: {listing(missing)}", "wod check --fix (creates them)")


# -- seats the api-db and we disagree on ---------------------------------------------------
@check("seats-vs-apidb", "peers")
def seats_vs_apidb(host: Host) -> CheckResult:
    from wod.ops.seats import seats as seat_table

    s = host.settings
    if not s.db_path.exists():
        return skipped(f"no job database yet ({s.db_path})")
    table = seat_table(s, host.queue, host.accounts)
    now = time.time()
    resets = {w.get("notebook") for w in host.apidb_workshops() or [] if truthy(w.get("reset"))}
    disagree: list[str] = []
    for seat in table:
        job = seat.last_job
        if seat.state == "cleaned" and job is not None and job.finished:
            if seat.workshop in resets and now - job.finished > RESET_WAIT:
                hours = (now - job.finished) / 3600
                disagree.append(f"seat {seat.stdid} kept {hours:.0f} h for a RESET that never came")
            continue
        if seat.state != "in use" or seat.customer is None:
            continue
        try:
            customer = host.apidb.customer(seat.customer)
        except WodError as exc:
            if "Not Found" in exc.reason or "400" in exc.reason:
                disagree.append(
                    f"seat {seat.stdid}: customer {seat.customer} unknown to the api-db"
                )
                continue
            return fail(f"api-db unreadable: {exc.reason}", "see the apidb check")
        sid = customer.get("studentId")
        if isinstance(sid, int) and sid - s.base_stdid != seat.stdid:
            disagree.append(
                f"seat {seat.stdid}: the api-db gives customer {seat.customer} student "
                f"{sid - s.base_stdid}"
            )
        elif truthy(customer.get("cleaned")) and not truthy(customer.get("active")):
            disagree.append(
                f"seat {seat.stdid}: customer {seat.customer} ended (cleaned) but no CLEANUP "
                "reached us"
            )
    if not disagree:
        return ok(f"{len(table)} seat(s) agree with the api-db")
    return warn(listing(disagree), "send the missing request (wod send RESET/PURGE N C)")
