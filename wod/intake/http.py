"""HTTP intake: ``POST /api/requests`` (JSON) and the job endpoints, as a FastAPI router.

A request ``{"verb", "stdid", "customer", "email", "workshop"}`` is turned into the same
Subject line and body the api-db would mail and goes through the one parser
(:func:`wod.requests.parse_fields`), so the grammar and its checks live in one place.
``stdid`` is a number or, for a RESET range, ``"min,max"`` (``"[object Promise]"`` is
passed on as the api-db would send it: the student is then recovered from the customer).
Then: persisted -> ``202 {"job": id}``.  Answers:

- 400 ``{"error"}``: not a JSON object, or a field missing or of the wrong type;
- 422 ``{"error"}``: refused by the parser (unknown verb, id out of range, bad workshop…);
  both recorded as rejections;
- 401: ``http_token`` is set and the ``Authorization: Bearer`` header does not match;
- 403: the client address is not in ``allowed_clients``;
- 503: the job database cannot be written (the caller should try again).

Every ``/api`` route (including ``GET /api/jobs``, ``GET /api/jobs/{id}``, ``POST
/api/jobs/{id}/retry`` and ``GET /api/rejections``) is subject to the same two checks.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool

from wod.errors import Rejected, Transient
from wod.queue import STATUSES, JobQueue, NotRetryable, UnknownJob
from wod.requests import parse_fields
from wod.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
PROMISE = "[object Promise]"
FIELDS = ("verb", "stdid", "customer", "email", "workshop")


class IntakeMetrics:
    """Prometheus counter of requests received, by channel and outcome."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "wod_requests_total",
            "Requests received, by channel and outcome (accepted, rejected, unavailable).",
            ["channel", "outcome"],
            registry=registry,
        )

    def count(self, outcome: str, channel: str = "http") -> None:
        self.requests.labels(channel, outcome).inc()


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _token_field(data: dict[str, Any], name: str, required: bool = True) -> str:
    """One field as a single token (no whitespace: it becomes part of a Subject line)."""
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise Rejected(f"missing field '{name}'")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Rejected(f"field '{name}' must be a string or a number")
    text = str(value).strip()
    if name == "stdid" and text == PROMISE:
        return text  # what the api-db sends; the parser recovers the student
    if not text or any(c.isspace() for c in text):
        raise Rejected(f"field '{name}' must be one word")
    return text


def subject_of(data: Any) -> tuple[str, str]:
    """The Subject line and body the api-db would mail for this JSON request."""
    if not isinstance(data, dict):
        raise Rejected("expected a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Rejected("unknown field(s): " + ", ".join(repr(k)[:40] for k in unknown[:5]))
    verb = _token_field(data, "verb")
    stdid = _token_field(data, "stdid")
    customer = _token_field(data, "customer")
    email = _token_field(data, "email", required=False)
    workshop = _token_field(data, "workshop")
    subject = " ".join(p for p in (verb, stdid, customer, email) if p)
    return subject, workshop


def make_router(
    settings: Settings, queue: JobQueue, metrics: IntakeMetrics | None = None
) -> APIRouter:
    """The ``/api`` routes of the backend's web app."""
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_clients]
    token = settings.http_token

    def guard(request: Request) -> None:
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in networks):
            log.warning("HTTP client %s refused: not in allowed_clients", host or "?")
            raise HTTPException(403, "client address not allowed")
        if token:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), token.encode()
            ):
                raise HTTPException(
                    401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"}
                )

    router = APIRouter(prefix="/api", dependencies=[Depends(guard)])

    def count(outcome: str) -> None:
        if metrics is not None:
            metrics.count(outcome)

    async def refuse(status: int, reason: str, raw: bytes) -> JSONResponse:
        count("rejected")
        log.info("HTTP request rejected: %s", reason)
        try:
            await run_in_threadpool(queue.reject, "http", reason, raw)
        except Transient as exc:
            log.error("rejection not recorded: %s", exc.reason)
        return _error(status, reason)

    @router.post("/requests", status_code=202)
    async def submit_request(request: Request) -> JSONResponse:
        """Queue a request; 202 ``{"job": id}`` once it is on disk."""
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return await refuse(400, f"request body larger than {MAX_BODY} bytes", raw[:1024])
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # too deeply nested too
            return await refuse(400, "body is not valid JSON", raw)
        try:
            subject, body = subject_of(data)
        except Rejected as exc:
            return await refuse(400, exc.reason, raw)
        try:
            parsed = parse_fields(subject, body, settings, channel="http")
        except Rejected as exc:
            return await refuse(422, exc.reason, raw)
        try:
            job_id = await run_in_threadpool(queue.submit, parsed, raw)
        except Transient as exc:
            count("unavailable")
            log.error("HTTP request not persisted: %s", exc.reason)
            return _error(503, "the request could not be stored; try again later")
        count("accepted")
        log.info("job %s queued from HTTP: %s", job_id, subject.split(" ")[0])
        return JSONResponse({"job": job_id}, status_code=202)

    @router.get("/jobs")
    def list_jobs(status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(STATUSES)}")
        return [j.to_dict() for j in queue.jobs(status=status, limit=max(1, min(limit, 1000)))]

    @router.get("/jobs/{job_id}")
    def show_job(job_id: int) -> dict[str, Any]:
        try:
            return queue.job(job_id).to_dict(steps=True)
        except UnknownJob:
            raise HTTPException(404, f"no job {job_id}") from None

    @router.post("/jobs/{job_id}/retry")
    def retry_job(job_id: int) -> dict[str, Any]:
        try:
            return queue.retry(job_id).to_dict()
        except UnknownJob:
            raise HTTPException(404, f"no job {job_id}") from None
        except NotRetryable as exc:
            raise HTTPException(409, str(exc)) from None

    @router.get("/rejections")
    def list_rejections(limit: int = 100) -> list[dict[str, Any]]:
        return [r.to_dict() for r in queue.rejections(limit=max(1, min(limit, 1000)))]

    return router
