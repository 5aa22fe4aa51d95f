"""CREATE (SPEC 3.1): prepare a seat for a participant and report it ready.

Order of the last steps (``hub_start_before_active``, default true): the password is
reported, the hub server is started and waited for, and only then is the customer
reported ``active`` — the api-db mails the credentials once it sees ``active``, so the
mailed link opens a running JupyterLab.  A hub that is down or slow is retried (the
customer stays not active) until ``hub_active_deadline`` after the request was received;
past it the job fails without reporting ``active`` and the api-db's own handling of a
seat stuck for 10 minutes (CLEANUP/PURGE, "deployment issue" mail) takes over.  With the
setting false, upstream's order: password and ``active`` reported, then the server started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from wod.errors import Permanent, Transient
from wod.lifecycle import context, steps
from wod.requests import Request

if TYPE_CHECKING:
    from wod.lifecycle.context import JobContext
    from wod.services import Services


def create(svc: Services, ctx: JobContext, request: Request) -> None:
    s = svc.settings
    stdid = steps.one_student(request)
    account = s.account(stdid)

    duplicate = context.duplicate_of(ctx, request)
    if duplicate is not None:
        with ctx.step("hub"):
            ctx.log(f"repeats job {duplicate}: seat already prepared and reported, left as is")
            start_hub_server(svc, ctx, account, before_active=False)
        return

    if context.reported_earlier(ctx):
        # The seat is ready and the api-db has its password: the hub start remains, and
        # (reporting twice is harmless) ``active``.
        with ctx.step("hub"):
            ctx.log("seat prepared and reported by an earlier attempt: starting the server")
            start_hub_server(svc, ctx, account, before_active=s.hub_start_before_active)
        with ctx.step("active"):
            svc.apidb.update_customer(request.customer, active=True)
        return

    with ctx.step("workshop"):
        workshop = steps.lookup_workshop(svc, request)
        steps.check_seats(svc, request, workshop)
        ctx.log(f"{workshop.notebook} (id {workshop.id}) for {account}")

    holder = ctx.seat_customer()
    if holder is not None and holder != request.customer:
        with ctx.step("seat"):  # one seat, two live participants: never wipe the first
            ctx.log(steps.ensure_seat_free(svc, request, holder) or "")

    password = steps.new_password(s.password_length)
    with ctx.step("password"):
        steps.set_password(svc, request, workshop, stdid, password)
    tpl_password = steps.template_password(workshop, password)

    with ctx.step("erase"):
        steps.wipe_seat(svc, stdid)

    uid, gid = svc.accounts.owner(stdid)
    home = s.home(stdid)
    if workshop.compile:
        with ctx.step("compile"):
            built = svc.content.compile(
                workshop.compile,
                request.workshop,
                stdid,
                home,
                uid=uid,
                gid=gid,
                password=tpl_password,
            )
            ctx.log("compiled " + ", ".join(p.name for p in built))

    with ctx.step("appliance"):
        target = steps.appliance_target(svc, request, workshop, stdid, tpl_password)
        env = steps.hook_env(svc, request, workshop, stdid, password, target)
        steps.run_hooks(svc, ctx, "create", request, env)

    with ctx.step("deploy"):

        def templating_hooks(kind: str, staging: Path) -> None:
            steps.run_hooks(svc, ctx, kind, request, {**env, "WODSTAGING": str(staging)})

        report = svc.content.deploy(
            request.workshop,
            stdid,
            home,
            uid=uid,
            gid=gid,
            password=tpl_password,
            on_stage=templating_hooks,
        )
        ctx.log(
            f"{report.rendered} rendered, {report.copied} copied, {report.bytes} bytes "
            f"in {report.seconds * 1000:.1f} ms"
        )

    with ctx.step("post-copy"):
        steps.run_hooks(svc, ctx, "post-copy", request, env)

    before_active = s.hub_start_before_active
    with ctx.step("report"):
        svc.apidb.update_student(s.apidb_student_id(stdid), password=password)

    # One step "active" in both orders: a failed CREATE that got through it left a
    # participant the api-db mails (``wod seats`` shows it).
    if not before_active:
        with ctx.step("active"):
            svc.apidb.update_customer(request.customer, active=True)

    with ctx.step("hub"):
        start_hub_server(svc, ctx, account, before_active=before_active)

    if before_active:
        with ctx.step("active"):
            svc.apidb.update_customer(request.customer, active=True)


def start_hub_server(svc: Services, ctx: JobContext, account: str, *, before_active: bool) -> None:
    """Start the student's server and wait until it is ready.  Before ``active`` is
    reported, a hub fault is retried only until ``hub_active_deadline`` after the
    request was received (the next attempt is never scheduled past it)."""
    if svc.hub is None:
        ctx.log("no JupyterHub configured (hub_url empty): server not started")
        return
    try:
        ctx.log(f"hub server of {account}: {svc.hub.start_server(account)}")
    except Transient as exc:
        if not before_active:
            raise
        s = svc.settings
        left = ctx.created + s.hub_active_deadline - time.time()
        if left <= 0:
            raise Permanent(
                f"{exc.reason}; given up {s.hub_active_deadline:g} s after the request "
                "(hub_active_deadline): the customer was not reported active",
                output=exc.output,
            ) from None
        delay = exc.delay
        if left < (delay if delay is not None else s.retry_max_delay):
            delay = left
        raise Transient(exc.reason, output=exc.output, delay=delay) from None
