"""Steps shared by the four verbs, each idempotent and named for what it ensures.

A step talks to services only; it never does HTTP, SQL, subprocesses or path arithmetic
itself.  Each is safe to run again after a crash or a retry: setting a password twice
leaves one password, wiping a wiped home leaves a clean home, reporting a value twice
leaves the value.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from wod import passwords
from wod.errors import Permanent, Rejected, Wait
from wod.requests import Request
from wod.values import seat_error, truthy

if TYPE_CHECKING:
    from wod.lifecycle.context import JobContext
    from wod.services import Services
    from wod.services.apidb import Workshop

log = logging.getLogger(__name__)

new_password = passwords.generate


def recover_student(svc: Services, ctx: JobContext, request: Request) -> Request:
    """Resolve an ``[object Promise]`` student id from the customer record (SPEC 2.2) and
    pin it on the job (:class:`Wait` while an earlier job of that student is unfinished)."""
    if not request.recover_stdid or request.stdid is not None:
        return request
    customer = svc.apidb.customer(request.customer)
    raw = customer.get("studentId")
    try:
        stdid = int(raw) - svc.settings.base_stdid
    except (TypeError, ValueError):
        raise Rejected(
            f"student id missing in the request and customer {request.customer} has no "
            f"student (studentId={raw!r})"
        ) from None
    s = svc.settings
    problem = seat_error(stdid, s)
    if problem:
        raise Rejected(f"{problem} (recovered from customer {request.customer})")
    recovered = dataclasses.replace(
        request,
        stdid=stdid,
        stdid_max=stdid,
        recover_stdid=False,
        notes=(*request.notes, f"student {stdid} recovered from customer {request.customer}"),
    )
    ctx.set_stdid(stdid)
    return recovered


def one_student(request: Request) -> int:
    """The one student a CREATE, CLEANUP or PURGE is for; :class:`Rejected` when the
    request has none (never acted on) or a range."""
    if request.stdid is None:
        raise Rejected(f"{request.verb.value} has no student id to act on")
    if request.is_range:
        raise Rejected(f"{request.verb.value} takes one student id, not a range")
    return request.stdid


def lookup_workshop(svc: Services, request: Request) -> Workshop:
    """The workshop must exist as content here and in the api-db (SPEC 3.1 step 2).
    Every verb calls the api-db with a token later: its login starts now, in the
    background, and overlaps the local steps."""
    svc.apidb.prefetch_token()
    svc.content.resolve(request.workshop)
    return svc.apidb.workshop_by_notebook(request.workshop)


def check_seats(svc: Services, request: Request, workshop: Workshop) -> None:
    """Every student of the request must be a seat of this backend and of the workshop."""
    s = svc.settings
    for stdid in request.stdids:
        problem = seat_error(stdid, s)
        if problem:
            raise Rejected(problem)
        problem = seat_error(
            stdid, s, workshop=(workshop.notebook, workshop.range_min, workshop.range_max)
        )
        if problem:
            raise Permanent(problem)
        if not svc.accounts.exists(stdid):
            raise Permanent(
                f"account {s.account(stdid)} or its home {s.home(stdid)} is missing "
                "(accounts are created at install: wod accounts provision)"
            )


def set_password(
    svc: Services, request: Request, workshop: Workshop, stdid: int, password: str
) -> None:
    """New password on the account, in LDAP when the workshop needs it, and as ``PASSSTU``
    for templates when the workshop uses it (SPEC 3.1 step 5)."""
    svc.accounts.set_password(stdid, password)
    if workshop.ldap:
        svc.ldap.set_password(svc.settings.account(stdid), password)
    if workshop.ldap or workshop.varpass:
        svc.content.write_student_variables(request.workshop, stdid, {"PASSSTU": password})


def template_password(workshop: Workshop, password: str) -> str | None:
    return password if (workshop.ldap or workshop.varpass) else None


def require_hooks(svc: Services, kind: str, request: Request) -> None:
    """Fail before anything changes when a required hook exists in no scripts folder."""
    svc.hooks.require(kind, request.folder)


def wipe_seat(svc: Services, stdid: int) -> None:
    """Kill the student's processes, empty and re-seed the home (SPEC 3.1 step 6)."""
    svc.accounts.kill_processes(stdid)
    svc.accounts.reset_home(stdid)


def hook_env(
    svc: Services,
    request: Request,
    workshop: Workshop,
    stdid: int,
    password: str,
    target: str | None,
) -> dict[str, str]:
    from wod.services.hooks import hook_env as build

    return build(
        svc.settings,
        stdid=stdid,
        requested=request.workshop,
        folder=request.folder,
        workshop_id=workshop.id,
        password=password,
        target=target,
        access_token=svc.apidb.token or "",
    )


def run_hooks(
    svc: Services,
    ctx: JobContext,
    kind: str,
    request: Request,
    env: dict[str, str],
    **options: Any,
) -> None:
    """Run the workshop's ``kind`` hooks; each one's summary goes into the job record."""
    for run in svc.hooks.run(kind, request.folder, env, **options):
        ctx.log(run.summary())


def appliance_target(
    svc: Services, request: Request, workshop: Workshop, stdid: int, password: str | None
) -> str | None:
    """``WODRTARGET`` for workshops that use an appliance (SPEC 3.1 step 8)."""
    if not (workshop.monoappliance or workshop.multiappliance):
        return None
    from wod.services.hooks import appliance_target as compute

    # Templated like every variable (SPEC 4.1): ``"{{ NET }}.20"`` is the address the
    # workshop's notebooks show too.
    variables = svc.content.template_variables(request.workshop, stdid, password=password)
    return compute(
        svc.settings,
        request.folder,
        stdid=stdid,
        range_min=workshop.range_min,
        mono=workshop.monoappliance,
        multi=workshop.multiappliance,
        variables=variables,
    )


def ensure_seat_free(svc: Services, request: Request, holder: int | None) -> str | None:
    """Before a CREATE replaces the session of another customer (``holder``, who was never
    cleaned), ask the api-db whether that customer is still active: the api-db hands one
    seat to simultaneous registrations.  Still active -> :class:`Rejected` (the seat is
    busy, nothing changes); gone (not active, cleaned, or unknown) -> a note, and the
    CREATE goes on."""
    if holder is None or holder == request.customer:
        return None
    try:
        record = svc.apidb.customer(holder)
    except Permanent:
        return f"previous customer {holder} is unknown to the api-db: seat taken over"
    if truthy(record.get("active")) and not truthy(record.get("cleaned")):
        raise Rejected(
            f"seat {request.stdid} is busy: customer {holder} is still active there "
            f"(never cleaned); refused CREATE for customer {request.customer}"
        )
    return f"previous customer {holder} is no longer active: seat taken over"


def ensure_customer_cleaned(svc: Services, ctx: JobContext, customer: int) -> None:
    """Bounded fallback before RESET/PURGE (SPEC 3.5).

    Local jobs of one student are already serialized by the queue, so a CLEANUP received
    before this request has finished.  If the api-db still does not report the customer
    cleaned, the job waits (re-queued, not blocking a worker) until ``cleaned_poll_timeout``
    after it was received, then proceeds.
    """
    s = svc.settings
    if s.cleaned_poll_timeout <= 0:
        return
    record = svc.apidb.customer(customer)
    if truthy(record.get("cleaned")):
        return
    waited = time.time() - ctx.created
    if waited < s.cleaned_poll_timeout:
        raise Wait(
            f"customer {customer} not cleaned yet (waited {waited:.0f} s of "
            f"{s.cleaned_poll_timeout:.0f} s)",
            delay=s.cleaned_poll_interval,
        )
    log.warning("customer %s still not cleaned after %.0f s; proceeding", customer, waited)


def end_sessions(svc: Services, ctx: JobContext, stdid: int) -> None:
    """End everything the seat's last participant holds: the hub server, every hub login,
    cookie and token of the seat's hub user (deleted and re-created), then the student's
    remaining processes.  Idempotent."""
    account = svc.settings.account(stdid)
    if svc.hub is None:
        ctx.log(f"no JupyterHub configured (hub_url empty): no hub session of {account} to end")
    else:
        ctx.log(svc.hub.end_sessions(account).summary())
    killed = svc.accounts.kill_processes(stdid)
    if killed:
        ctx.log(f"{killed} process(es) of {account} killed")
