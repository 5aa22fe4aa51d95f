"""RESET (SPEC 3.3): reset one seat or a range of seats of a resettable workshop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wod.errors import Rejected
from wod.lifecycle import steps
from wod.requests import Request

if TYPE_CHECKING:
    from wod.lifecycle.context import JobContext
    from wod.services import Services


def reset(svc: Services, ctx: JobContext, request: Request) -> None:
    s = svc.settings

    with ctx.step("workshop"):
        workshop = steps.lookup_workshop(svc, request)
        if not workshop.reset:
            raise Rejected(f"{workshop.notebook} is not resettable (its reset flag is false)")
        steps.check_seats(svc, request, workshop)
        steps.require_hooks(svc, "reset", request)

    with ctx.step("wait-cleaned"):
        steps.ensure_customer_cleaned(svc, ctx, request.customer)

    passwords: dict[int, str] = {}
    with ctx.step("password"):
        for stdid in request.stdids:
            passwords[stdid] = steps.new_password(s.password_length)
            steps.set_password(svc, request, workshop, stdid, passwords[stdid])

    with ctx.step("hub"):
        # A seat of the range may still be in use: its participant's sessions end here.
        for stdid in request.stdids:
            steps.end_sessions(svc, ctx, stdid)

    with ctx.step("reset-hooks"):
        for stdid in request.stdids:
            target = steps.appliance_target(
                svc,
                request,
                workshop,
                stdid,
                steps.template_password(workshop, passwords[stdid]),
            )
            env = steps.hook_env(svc, request, workshop, stdid, passwords[stdid], target)
            steps.run_hooks(svc, ctx, "reset", request, env, required=True)

    if request.is_range:
        with ctx.step("capacity"):
            svc.apidb.update_workshop(workshop.id, capacity=len(request.stdids))

    with ctx.step("release"):
        for stdid in request.stdids:
            svc.apidb.update_student(s.apidb_student_id(stdid), assigned=False)
            steps.wipe_seat(svc, stdid)
        ctx.log(f"{len(request.stdids)} seat(s) freed and wiped")
