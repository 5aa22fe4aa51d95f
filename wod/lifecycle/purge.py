"""PURGE (SPEC 3.4): force-free a seat, typically after a failed deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wod.lifecycle import steps
from wod.requests import Request

if TYPE_CHECKING:
    from wod.lifecycle.context import JobContext
    from wod.services import Services


def purge(svc: Services, ctx: JobContext, request: Request) -> None:
    s = svc.settings
    stdid = steps.one_student(request)

    with ctx.step("workshop"):
        workshop = steps.lookup_workshop(svc, request)
        steps.check_seats(svc, request, workshop)

    with ctx.step("wait-cleaned"):
        steps.ensure_customer_cleaned(svc, ctx, request.customer)

    with ctx.step("hub"):
        steps.end_sessions(svc, ctx, stdid)

    password = steps.new_password(s.password_length)
    with ctx.step("password"):
        steps.set_password(svc, request, workshop, stdid, password)

    with ctx.step("release"):
        svc.apidb.update_student(s.apidb_student_id(stdid), assigned=False, password=password)
        steps.wipe_seat(svc, stdid)
