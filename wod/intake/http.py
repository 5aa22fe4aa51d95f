r"""HTTP intake: ``POST /api/requests`` (JSON), as a FastAPI router.

A request ``{"verb", "stdid", "customer", "email", "workshop"}`` is turned into the same
Subject line and body the api-db would mail and goes through the one parser
(:func:`wod.requests.parse_fields`), so the grammar and its checks live in one place.
``stdid`` is a number or, for a RESET range, ``"min,max"`` (``"[object Promise]"`` is
passed on as the api-db would send it: the student is then recovered from the customer).
Then: persisted -> ``202 {"job": id}``; the writes go through one ordered writer thread
(:mod:`wod.intake.ordered`), so concurrent requests for a seat are stored in the order of
their ``202``\ s.  Answers:

- 400 ``{"error"}``: not a JSON object, a key given twice, or a field missing or of the
  wrong type;
- 422 ``{"error"}``: refused by the parser (unknown verb, id out of range, bad workshop…);
  both recorded as rejections;
- 401: ``http_token`` is set and the ``Authorization: Bearer`` header does not match;
- 403: the client address is not in ``allowed_clients``;
- 503: the job database cannot be written (the caller should try again).

Every ``/api`` route (this one and the admin routes of :mod:`wod.web.api`) is subject to
the same two checks (:func:`wod.access.make_guard`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter

from wod.access import make_guard
from wod.errors import Rejected, Transient
from wod.intake.ordered import OrderedWriter
from wod.queue import JobQueue
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


class DuplicateKey(ValueError):
    """A JSON object naming one key twice (parsers differ on which value wins)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"field {key[:40]!r} given more than once")
        out[key] = value
    return out


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


async def _read_body(request: Request) -> bytes:
    """The body, read no further than one byte past :data:`MAX_BODY` (a client streaming
    gigabytes is refused after 64 KiB, not held in memory)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(chunks)


def make_router(
    settings: Settings,
    queue: JobQueue,
    metrics: IntakeMetrics | None = None,
    writer: OrderedWriter | None = None,
) -> APIRouter:
    r"""The intake route of the backend's web app (``POST /api/requests``).

    Its queue writes go through ``writer`` (one :class:`OrderedWriter` of its own if none
    is given), so concurrent requests are stored in the order they were parsed and the
    ``202``\ s follow the job ids."""
    guard = make_guard(settings)
    persist = writer or OrderedWriter("http-persist")

    router = APIRouter(prefix="/api", dependencies=[Depends(guard)])

    def count(outcome: str) -> None:
        if metrics is not None:
            metrics.count(outcome)

    async def refuse(status: int, reason: str, raw: bytes) -> JSONResponse:
        count("rejected")
        log.info("HTTP request rejected: %s", reason)
        try:
            await persist.call(queue.reject, "http", reason, raw)
        except Transient as exc:
            log.error("rejection not recorded: %s", exc.reason)
        return _error(status, reason)

    @router.post("/requests", status_code=202)
    async def submit_request(request: Request) -> JSONResponse:
        """Queue a request; 202 ``{"job": id}`` once it is on disk."""
        raw = await _read_body(request)
        if len(raw) > MAX_BODY:
            return await refuse(400, f"request body larger than {MAX_BODY} bytes", raw[:1024])
        try:
            # UTF-8 only (RFC 8259), not whatever encoding json.loads would guess.
            data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
        except DuplicateKey as exc:
            return await refuse(400, str(exc), raw)
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
            log.debug("HTTP request parsed; persisting")
            job_id = await persist.call(queue.submit, parsed, raw)
        except Transient as exc:
            count("unavailable")
            log.error("HTTP request not persisted: %s", exc.reason)
            return _error(503, "the request could not be stored; try again later")
        count("accepted")
        log.info("job %s queued from HTTP: %s", job_id, subject.split(" ")[0])
        return JSONResponse({"job": job_id}, status_code=202)

    return router
