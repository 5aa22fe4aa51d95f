"""The admin API: every operation of :mod:`wod.ops` as a token-protected ``/api`` route.

Same guard as the intake (:func:`wod.access.make_guard`: ``allowed_clients`` and the
``http_token`` bearer).  Each route parses its input, calls one ``wod.ops`` function and
answers its typed result as JSON; an :class:`~wod.ops.common.OpsError` becomes its
``status`` with ``{"error": reason}`` (see :func:`install_error_handler`).

- ``GET /api/jobs[?status=&limit=]``, ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/retry``,
  ``POST /api/jobs/prune {"older_than": "90d"}``, ``GET /api/rejections[?limit=]``.
- ``GET /api/check[?only=NAME]`` (``wod check --json``), ``POST /api/check {"fix": true}``
  (``--fix``), ``GET /api/check/last`` (the last full run);
  ``GET /api/watch[?limit=&student=]`` (``wod watch --json``).
- ``POST /api/deliver {"dry_run", "mail"}`` (``wod deliver --json``).
- ``POST /api/export {"workshop", "students", "format", "into"}`` (``wod export --json``).
- ``GET /api/seats[?first=&last=]`` (``wod seats``), ``POST /api/accounts/provision
  {"first", "last"}``, ``POST /api/accounts/wipe {"students"}``, ``POST
  /api/accounts/kill-stale {"older_than", "match"}``, ``POST /api/deploy {"workshop",
  "student", "dry_run", "variables"}``, ``GET /api/vars?workshop=&student=`` (secrets
  masked), ``GET /api/completion?workshop=&student=``.
- ``POST /api/send {"verb", "workshop", "args", "students", "how", "host", "port", "check",
  "wait"}`` (``wod send --json``: the test action, sent to this backend's own listener by
  default; ``wait`` seconds to follow the jobs, at most 600).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from wod.access import make_guard
from wod.ops import jobs as job_ops
from wod.ops.common import OpsError, jsonable
from wod.settings import Settings

if TYPE_CHECKING:
    from wod.queue import JobQueue


def install_error_handler(app: FastAPI) -> None:
    """Answer every :class:`OpsError` as ``{"error": reason}`` with its status."""

    @app.exception_handler(OpsError)
    async def ops_error(request: Request, exc: OpsError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.reason}
        if exc.remedy:
            body["remedy"] = exc.remedy
        return JSONResponse(body, status_code=exc.status)


def make_api_router(settings: Settings, queue: JobQueue) -> APIRouter:
    """The admin routes; ``queue`` is the server's own job queue."""
    router = APIRouter(prefix="/api", dependencies=[Depends(make_guard(settings))])

    # -- jobs ------------------------------------------------------------------------------

    @router.get("/jobs")
    def list_jobs(status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        found = job_ops.list_jobs(queue, status=status, limit=limit)
        return [job_ops.job_record(j) for j in found]

    @router.post("/jobs/prune")
    def prune_jobs(older_than: str = Body("90d", embed=True)) -> dict[str, Any]:
        return jsonable(job_ops.prune_jobs(queue, older_than))

    @router.get("/jobs/{job_id}")
    def show_job(job_id: int) -> dict[str, Any]:
        return job_ops.job_record(job_ops.show_job(queue, job_id), steps=True)

    @router.post("/jobs/{job_id}/retry")
    def retry_job(job_id: int) -> dict[str, Any]:
        return job_ops.job_record(job_ops.retry_job(queue, job_id))

    @router.get("/rejections")
    def list_rejections(limit: int = 100) -> list[dict[str, Any]]:
        return [job_ops.rejection_record(r) for r in job_ops.list_rejections(queue, limit=limit)]

    # -- check and abuse watcher -------------------------------------------------------------

    @router.get("/check")
    def check_host(only: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
        from wod.ops.check import run_checks

        report = run_checks(settings, only=only, queue_factory=lambda: queue)
        return jsonable(report)

    @router.get("/check/last")
    def last_check() -> dict[str, Any]:
        from wod.ops.check import last_report
        from wod.ops.common import NotFound

        report = last_report(settings)
        if report is None:
            raise NotFound("no full check has run yet", remedy="wod check")
        return report

    @router.post("/check")
    def check_and_fix(
        fix: bool = Body(False, embed=True),
        only: Annotated[list[str] | None, Body(embed=True)] = None,
    ) -> dict[str, Any]:
        from wod.ops.check import run_checks

        report = run_checks(settings, fix=fix, only=only, queue_factory=lambda: queue)
        return jsonable(report)

    @router.get("/watch")
    def watch_actions(limit: int = 100, student: int | None = None) -> list[dict[str, Any]]:
        from wod.ops.watch import list_actions

        return jsonable(list_actions(settings, limit=max(1, min(limit, 100_000)), stdid=student))

    # -- operations: deliver, export, send ------------------------------------------------

    @router.post("/deliver")
    def deliver_files(
        dry_run: bool = Body(False, embed=True), mail: bool = Body(True, embed=True)
    ) -> dict[str, Any]:
        from wod.ops.deliver import deliver

        return jsonable(deliver(settings, dry_run=dry_run, mail=mail))

    @router.post("/export")
    def export_notebooks(
        workshop: str = Body(..., embed=True),
        students: str = Body(..., embed=True),
        format: str = Body(..., embed=True),
        into: str | None = Body(None, embed=True),
    ) -> dict[str, Any]:
        from pathlib import Path

        from wod.ops.export import export

        target = Path(into) if into else None
        return jsonable(export(settings, workshop, format, students=students, into=target))

    # -- seats, accounts, content ---------------------------------------------------------

    @router.get("/seats")
    def list_seats(first: int | None = None, last: int | None = None) -> dict[str, Any]:
        from wod.ops.seats import seat_view

        return jsonable(seat_view(settings, first, last))

    @router.post("/accounts/provision")
    def provision_accounts(
        first: int | None = Body(None, embed=True), last: int | None = Body(None, embed=True)
    ) -> list[dict[str, Any]]:
        from wod.ops.accounts import provision

        return jsonable(provision(settings, first, last))

    @router.post("/accounts/wipe")
    def wipe_homes(students: str = Body(..., embed=True)) -> list[dict[str, Any]]:
        from wod.ops.accounts import wipe

        return jsonable(wipe(settings, students))

    @router.post("/accounts/kill-stale")
    def kill_stale(
        older_than: str = Body("30d", embed=True), match: str = Body("jupyter", embed=True)
    ) -> list[dict[str, Any]]:
        from wod.ops.accounts import kill_stale as kill
        from wod.values import parse_age

        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise OpsError(str(exc)) from None
        return jsonable(kill(settings, age, match))

    @router.post("/deploy")
    def deploy_workshop(
        workshop: str = Body(..., embed=True),
        student: int = Body(..., embed=True),
        dry_run: bool = Body(False, embed=True),
        variables: Annotated[dict[str, str] | None, Body(embed=True)] = None,
    ) -> dict[str, Any]:
        from wod.ops.content import deploy

        return jsonable(deploy(settings, workshop, student, dry_run=dry_run, variables=variables))

    @router.get("/vars")
    def workshop_variables(workshop: str, student: int) -> dict[str, Any]:
        from wod.ops.content import variables

        rows = variables(settings, workshop, student)
        return {r.name: {"value": jsonable(r.value), "origin": r.origin} for r in rows}

    @router.get("/completion")
    def completion_ratio(workshop: str, student: int) -> dict[str, Any]:
        from wod.ops.content import completion

        result = completion(settings, workshop, student)
        return {**jsonable(result), "percent": result.percent}

    @router.post("/send")
    def send_requests(
        verb: str = Body(..., embed=True),
        workshop: str = Body(..., embed=True),
        args: Annotated[list[str] | None, Body(embed=True)] = None,
        students: str | None = Body(None, embed=True),
        how: str = Body("smtp", embed=True),
        host: str | None = Body(None, embed=True),
        port: int | None = Body(None, embed=True),
        check: bool = Body(True, embed=True),
        wait: float = Body(0.0, embed=True),
    ) -> dict[str, Any]:
        from wod.ops import send as send_ops

        planned = send_ops.plan(
            settings, verb, args or [], workshop, students=students, check=check
        )
        target = send_ops.Target.from_settings(settings, host=host, port=port)
        sent = send_ops.send(planned, target, how=how)
        outcomes = []
        if wait > 0:
            timeout = min(wait, 600.0)
            outcomes = send_ops.wait(settings, sent, timeout=timeout)
        return jsonable({"sent": sent, "outcomes": outcomes})

    return router
