"""CLEANUP (SPEC 3.2): score the session, tear down, then keep or free the seat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wod.lifecycle import steps
from wod.requests import Request

if TYPE_CHECKING:
    from wod.lifecycle.context import JobContext
    from wod.services import Services


def cleanup(svc: Services, ctx: JobContext, request: Request) -> None:
    s = svc.settings
    stdid = steps.one_student(request)
    student_id = s.apidb_student_id(stdid)

    with ctx.step("workshop"):
        workshop = steps.lookup_workshop(svc, request)
        steps.check_seats(svc, request, workshop)

    password = steps.new_password(s.password_length)
    with ctx.step("password"):
        steps.set_password(svc, request, workshop, stdid, password)

    with ctx.step("cleanup-hooks"):
        target = steps.appliance_target(
            svc, request, workshop, stdid, steps.template_password(workshop, password)
        )
        env = steps.hook_env(svc, request, workshop, stdid, password, target)
        steps.run_hooks(svc, ctx, "cleanup", request, env)

    with ctx.step("completion"):
        measured = svc.content.completion_details(request.workshop, s.home(stdid))
        if measured.found:
            ctx.log(
                f"completion {measured.percent}% "
                f"({measured.executed} of {measured.total} code cells run)"
            )
            svc.apidb.update_customer(request.customer, completionPercentage=measured.percent)
        else:
            # Already cleaned (a repeated CLEANUP): the ratio reported then stands.
            ctx.log(f"no copy of {request.folder} in the home: completion not reported again")
        for warning in measured.warnings if measured.found else ():
            ctx.log(f"warning: {warning}")

    with ctx.step("hub"):
        # Server stopped, every login, cookie and token of the seat's hub user voided,
        # the student's processes killed: the next participant of the seat starts clean.
        steps.end_sessions(svc, ctx, stdid)

    with ctx.step("report"):
        svc.apidb.update_student(student_id, password=password)

    with ctx.step("release"):
        if workshop.reset:
            # The seat stays assigned: a RESET for the workshop follows.
            svc.apidb.update_student(student_id, assigned=True)
            svc.apidb.update_customer(request.customer, active=False)
            ctx.log("seat kept for the workshop's RESET")
        else:
            svc.apidb.update_student(student_id, assigned=False)
            steps.wipe_seat(svc, stdid)
            ctx.log("seat freed and home wiped")

    with ctx.step("cleaned"):
        svc.apidb.update_customer(request.customer, cleaned=True)
