"""The test action (upstream ``wod-test-action``): send requests as the api-db would.

:func:`plan` builds the requests — one per seat of a range, a RESET taking the range as
``min,max``, a PURGE refusing a range — and checks each with the server's own parser
(:func:`wod.requests.parse_fields`), so what the server would refuse fails here, with the
server's reason, before anything is sent (``check=False`` sends it anyway, to test the
server's answer).  :func:`send` delivers them over SMTP (the api-db's raw byte block, or a
well-behaved session that reports the job id) or HTTP (``POST /api/requests``);
:func:`wait` follows the jobs in the job database until each is done or failed.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from wod.errors import Rejected
from wod.ops.common import OpsError
from wod.ops.jobs import open_queue
from wod.queue import UnknownJob
from wod.requests import Verb, parse_fields
from wod.services.mail import api_db_block, send_raw, send_smtplib
from wod.settings import Settings
from wod.values import parse_students

HOW = ("raw", "smtp", "http")
FINISHED = ("done", "failed", "cancelled")
_QUEUED = re.compile(r"queued as job (\d+)")


@dataclass(frozen=True)
class Planned:
    """One request to send: its Subject line and the workshop (the mail's body)."""

    subject: str
    workshop: str


@dataclass(frozen=True)
class Sent:
    """What the server answered one request: ``ok``, its ``answer``, the ``job`` id (known
    for ``smtp`` and ``http``; the api-db's raw way hangs up on the greeting)."""

    subject: str
    ok: bool
    answer: str
    job: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How a sent request's job ended (or ``timeout`` when it did not in time)."""

    job: int
    subject: str
    status: str
    reason: str
    seconds: float | None


def plan(
    settings: Settings,
    verb: str,
    args: list[str] | tuple[str, ...],
    workshop: str,
    *,
    students: str | None = None,
    check: bool = True,
) -> list[Planned]:
    """The requests for ``VERB ARGS…`` (with ``students``: ARGS omit the student id).

    ``students`` is ``3``, ``3-5`` or ``3,5``: one request per seat, except RESET (one
    request for the range) and PURGE (refused: one seat at a time)."""
    verb = verb.strip()
    if students is None:
        subjects = [" ".join((verb, *args))]
    else:
        try:
            low, high = parse_students(students)
        except ValueError as exc:
            raise OpsError(str(exc)) from None
        upper = verb.upper()
        if upper == Verb.PURGE.value and low != high:
            raise OpsError("PURGE refuses a range: purge one seat at a time")
        if upper == Verb.RESET.value:
            seats = f"{low},{high}" if low != high else str(low)
            subjects = [" ".join((verb, seats, *args))]
        else:
            subjects = [" ".join((verb, str(n), *args)) for n in range(low, high + 1)]
    planned = [Planned(s, workshop) for s in subjects]
    if check:
        for p in planned:
            try:
                parse_fields(p.subject, p.workshop, settings, channel="smtp")
            except Rejected as exc:
                raise OpsError(f"'{p.subject}': the server would refuse it: {exc.reason}") from None
    return planned


@dataclass(frozen=True)
class Target:
    """Where to send: SMTP host/port, envelope, or the HTTP intake URL and token."""

    host: str
    port: int
    sender: str
    recipient: str
    url: str
    token: str | None = field(repr=False)  # the http_token: never in a repr or a log

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        sender: str | None = None,
        recipient: str | None = None,
        url: str | None = None,
    ) -> Target:
        me = socket.gethostname()
        http_host = (
            settings.http_host if settings.http_host not in ("0.0.0.0", "::") else "127.0.0.1"
        )
        return cls(
            host=host or settings.smtp_host,
            port=port or settings.smtp_port,
            sender=sender or (settings.senders[0] if settings.senders else f"wod-send@{me}"),
            recipient=recipient or f"{settings.command_mailbox}@{me}",
            url=url or f"http://{http_host}:{settings.http_port}",
            token=settings.http_token,
        )


def _http_fields(p: Planned) -> dict[str, str]:
    parts = p.subject.split()
    names = ("verb", "stdid", "customer", "email")
    fields = dict(zip(names, parts, strict=False))
    fields["workshop"] = p.workshop
    return fields


def _http_error(response: httpx.Response) -> str:
    """``<status> <reason>: <the server's error>``, never an empty detail."""
    try:
        detail = response.json().get("error")
    except (ValueError, AttributeError):
        detail = None
    if not detail:
        detail = response.text.strip()[:200] or "(empty answer)"
    return f"HTTP {response.status_code} {response.reason_phrase}: {detail}"


def _send_one(p: Planned, how: str, target: Target, timeout: float) -> Sent:
    where = f"{target.host}:{target.port}"
    try:
        if how == "raw":
            block = api_db_block(
                p.subject,
                p.workshop,
                helo=socket.gethostname(),
                sender=target.sender,
                recipient=target.recipient,
            )
            greeting = send_raw(target.host, target.port, block, timeout=timeout)
            first = greeting.split(b"\r\n", 1)[0].decode("utf-8", "replace")
            return Sent(p.subject, True, f"sent to {where} (server said: {first or '-'})")
        if how == "smtp":
            code, text = send_smtplib(
                target.host,
                target.port,
                sender=target.sender,
                recipient=target.recipient,
                subject=p.subject,
                workshop=p.workshop,
                timeout=timeout,
            )
            found = _QUEUED.search(text)
            return Sent(
                p.subject, code < 400, f"{code} {text}", int(found.group(1)) if found else None
            )
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        url = target.url.rstrip("/") + "/api/requests"
        response = httpx.post(url, json=_http_fields(p), headers=headers, timeout=timeout)
        if response.status_code == 202:
            job = response.json().get("job")
            return Sent(p.subject, True, f"202 queued as job {job}", job)
        return Sent(p.subject, False, _http_error(response))
    except httpx.HTTPError as exc:
        return Sent(p.subject, False, f"cannot reach {target.url}: {exc or type(exc).__name__}")
    except OSError as exc:
        return Sent(p.subject, False, f"cannot reach {where}: {exc.strerror or exc}")
    except smtplib.SMTPException as exc:
        return Sent(p.subject, False, f"SMTP error from {where}: {exc}")
    except json.JSONDecodeError:
        return Sent(p.subject, False, "the server's answer is not JSON")


def send(
    planned: list[Planned],
    target: Target,
    *,
    how: str = "raw",
    timeout: float = 10.0,
    progress: Callable[[Sent], None] | None = None,
) -> list[Sent]:
    """Send each request; a failure is reported and the next one is still sent."""
    if how not in HOW:
        raise OpsError(f"how must be one of {', '.join(HOW)}")
    results = []
    for p in planned:
        result = _send_one(p, how, target, timeout)
        results.append(result)
        if progress:
            progress(result)
    return results


def wait(
    settings: Settings,
    sent: list[Sent],
    *,
    timeout: float = 300.0,
    interval: float = 0.2,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Follow the jobs of ``sent`` in the job database until each has finished (or
    ``timeout`` s have passed: status ``timeout``), in the order they finish."""
    pending = {s.job: s.subject for s in sent if s.job is not None}
    if not pending and any(s.ok for s in sent):
        raise OpsError(
            "no job id to wait for",
            remedy="the api-db's raw way hangs up on the greeting: send with --smtp or --http",
        )
    queue = open_queue(settings)
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout
    while pending:
        for job_id in list(pending):
            try:
                job = queue.job(job_id)
            except UnknownJob:  # not in this job database (yet)
                continue
            if job.status in FINISHED:
                outcome = Outcome(job_id, pending.pop(job_id), job.status, job.reason, job.seconds)
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
        if not pending or time.monotonic() >= deadline:
            break
        queue.wait(interval)
    for job_id, subject in pending.items():
        outcome = Outcome(job_id, subject, "timeout", f"not finished after {timeout:.0f} s", None)
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return outcomes
