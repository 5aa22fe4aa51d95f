"""CREATE (SPEC 3.1): prepare a seat for a participant and report it ready."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from wod.lifecycle import steps
from wod.requests import Request

if TYPE_CHECKING:
    from wod.services import Services


def create(svc: Services, job: Any, ctx: Any, request: Request) -> None:
    s = svc.settings
    stdid = request.stdid
    assert stdid is not None
    account = s.account(stdid)

    duplicate = steps.duplicate_of(svc, job, request)
    if duplicate is not None:
        with ctx.step("hub"):
            ctx.log(f"repeats job {duplicate}: seat already prepared and reported, left as is")
            start_hub_server(svc, ctx, account)
        return

    if steps.reported_earlier(svc, job):
        # The seat is ready and the api-db has its password: only the hub start remains.
        with ctx.step("hub"):
            ctx.log("seat prepared and reported by an earlier attempt: starting the server")
            start_hub_server(svc, ctx, account)
        return

    with ctx.step("workshop"):
        workshop = steps.lookup_workshop(svc, request)
        steps.check_seats(svc, request, workshop)
        ctx.log(f"{workshop.notebook} (id {workshop.id}) for {account}")

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

    with ctx.step("report"):
        svc.apidb.update_student(s.apidb_student_id(stdid), password=password)
        svc.apidb.update_customer(request.customer, active=True)

    with ctx.step("hub"):
        start_hub_server(svc, ctx, account)


def start_hub_server(svc: Services, ctx: Any, account: str) -> None:
    if svc.hub is None:
        ctx.log("no JupyterHub configured (hub_url empty): server not started")
    else:
        svc.hub.start_server(account)
