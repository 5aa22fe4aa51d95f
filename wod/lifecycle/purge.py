"""PURGE (SPEC 3.4): force-free a seat, typically after a failed deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wod.lifecycle import steps
from wod.requests import Request

if TYPE_CHECKING:
    from wod.services import Services


def purge(svc: Services, job: Any, ctx: Any, request: Request) -> None:
    s = svc.settings
    stdid = request.stdid
    assert stdid is not None

    with ctx.step("workshop"):
        workshop = steps.lookup_workshop(svc, request)
        steps.check_seats(svc, request, workshop)

    with ctx.step("wait-cleaned"):
        steps.ensure_customer_cleaned(svc, job, request.customer)

    with ctx.step("hub"):
        steps.end_sessions(svc, ctx, stdid)

    password = steps.new_password(s.password_length)
    with ctx.step("password"):
        steps.set_password(svc, request, workshop, stdid, password)

    with ctx.step("release"):
        svc.apidb.update_student(s.apidb_student_id(stdid), assigned=False, password=password)
        steps.wipe_seat(svc, stdid)
