"""HTTP intake and job API in-process (httpx.ASGITransport) over a real SQLite queue:
202 once persisted, 400/422 rejections recorded, 401 token, 403 client address, 503 when
the database cannot be written, job listing/show/retry, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.plugins.intake import logged_jobs
from tests.plugins.paths import serve_in_thread
from wod.queue import JobQueue
from wod.settings import Settings
from wod.web.app import create_app

CREATE = {
    "verb": "CREATE",
    "stdid": 3,
    "customer": 12,
    "email": "ann@example.com",
    "workshop": "WKSHP-API101",
}


TOKEN = "t0ken-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def call(app, method: str, url: str, *, client=("127.0.0.1", 40000), **kw) -> httpx.Response:
    kw["headers"] = {**BEARER, **(kw.get("headers") or {})}

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://wod") as http:
            return await http.request(method, url, **kw)

    return asyncio.run(go())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, user_min=1, user_max=20, http_token=TOKEN)


@pytest.fixture
def queue(settings: Settings) -> JobQueue:
    return JobQueue(settings.db_path)


@pytest.fixture
def app(settings: Settings, queue: JobQueue):
    return create_app(settings, queue)


def test_request_is_persisted_then_acknowledged(app, settings):
    resp = call(app, "POST", "/api/requests", json=CREATE)
    assert resp.status_code == 202
    job_id = resp.json()["job"]
    # A separate connection to the file sees the job: it was on disk before the 202.
    fresh = JobQueue(settings.db_path).job(job_id)
    assert fresh.status == "queued" and fresh.request.channel == "http"
    assert (fresh.request.stdid, fresh.request.customer, fresh.request.email) == (
        3,
        12,
        "ann@example.com",
    )
    assert fresh.request.workshop == "WKSHP-API101"


def test_reset_range_and_promise_ids(app, queue):
    resp = call(
        app,
        "POST",
        "/api/requests",
        json={"verb": "RESET", "stdid": "2,5", "customer": 9, "workshop": "WKSHP-API101"},
    )
    assert resp.status_code == 202
    job = queue.job(resp.json()["job"])
    assert job.request.stdids == [2, 3, 4, 5]
    resp = call(
        app,
        "POST",
        "/api/requests",
        json={
            "verb": "PURGE",
            "stdid": "[object Promise]",
            "customer": 9,
            "workshop": "WKSHP-API101",
        },
    )
    assert resp.status_code == 202
    assert queue.job(resp.json()["job"]).request.recover_stdid


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "expected a JSON object"),
        (b"[" * 50_000, 400, "body is not valid JSON"),
        (b'{"verb": "CREATE", "stdid": 1, "customer": 2}', 400, "missing field 'workshop'"),
        (
            b'{"verb": "CREATE 1 2 a@b.c", "stdid": 1, "customer": 2, "workshop": "WKSHP-X"}',
            400,
            "must be one word",
        ),
        (
            b'{"verb": "CREATE", "stdid": 1, "customer": 2, "workshop": "WKSHP-X", "x": 1}',
            400,
            "unknown field",
        ),
        (
            b'{"verb": "DELETE", "stdid": 1, "customer": 2, "workshop": "WKSHP-X"}',
            422,
            "unknown verb",
        ),
        (
            b'{"verb": "CREATE", "stdid": 1, "customer": 2, "email": "a@b.c",'
            b' "workshop": "WKSHP-X", "verb": "PURGE"}',
            400,
            "field 'verb' given more than once",
        ),
        (
            b'{"verb": "CREATE", "stdid": 99, "customer": 2, "email": "a@b.c",'
            b' "workshop": "WKSHP-X"}',
            422,
            "outside",
        ),
        (
            b'{"verb": "CREATE", "stdid": 1, "customer": 2, "email": "a@b.c",'
            b' "workshop": "../../etc"}',
            422,
            "malformed workshop",
        ),
    ],
)
def test_bad_requests_are_rejected_and_recorded(app, queue, body, status, reason):
    resp = call(
        app, "POST", "/api/requests", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == status
    assert reason in resp.json()["error"]
    [rejection] = queue.rejections()
    assert rejection.channel == "http" and reason in rejection.reason
    assert rejection.raw == body
    assert queue.jobs() == []


def test_token_is_required_when_configured(tmp_path):
    settings = Settings(state_dir=tmp_path, http_token="s3cret-token")
    queue = JobQueue(settings.db_path)
    app = create_app(settings, queue)
    assert call(app, "POST", "/api/requests", json=CREATE).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert call(app, "POST", "/api/requests", json=CREATE, headers=wrong).status_code == 401
    assert call(app, "GET", "/api/jobs", headers=wrong).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    resp = call(app, "POST", "/api/requests", json=CREATE, headers=good)
    assert resp.status_code == 202
    assert queue.jobs()[0].id == resp.json()["job"]


def test_client_address_outside_allowed_clients_is_refused(app, queue):
    resp = call(app, "POST", "/api/requests", json=CREATE, client=("10.1.2.3", 5555))
    assert resp.status_code == 403
    assert resp.json() == {"error": "client address not allowed"}
    assert queue.jobs() == []


def test_database_unavailable_answers_503(tmp_path):
    settings = Settings(state_dir=tmp_path, http_token=TOKEN)
    queue = JobQueue(settings.db_path, timeout=0.2)
    app = create_app(settings, queue)
    blocker = sqlite3.connect(settings.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        resp = call(app, "POST", "/api/requests", json=CREATE)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert resp.status_code == 503
    assert "try again" in resp.json()["error"]
    assert queue.jobs() == []


def test_job_endpoints_list_show_and_retry(app, queue):
    job_id = call(app, "POST", "/api/requests", json=CREATE).json()["job"]
    listed = call(app, "GET", "/api/jobs").json()
    assert [j["id"] for j in listed] == [job_id] and listed[0]["status"] == "queued"
    assert call(app, "GET", "/api/jobs?status=failed").json() == []
    assert call(app, "GET", "/api/jobs?status=bogus").status_code == 400
    assert call(app, "POST", f"/api/jobs/{job_id}/retry").status_code == 409
    queue.claim("w")
    queue.record_step(job_id, "deploy", "failed", 0.0, 0.2, "template error at line 3")
    queue.fail(job_id, "template error", "line 3")
    shown = call(app, "GET", f"/api/jobs/{job_id}").json()
    assert shown["status"] == "failed" and shown["reason"] == "template error"
    assert shown["steps"][0]["output"] == "template error at line 3"
    resp = call(app, "POST", f"/api/jobs/{job_id}/retry")
    assert resp.status_code == 200 and resp.json()["status"] == "queued"
    assert call(app, "GET", "/api/jobs/999").status_code == 404
    huge = 10**30  # more than SQLite can hold: still just "no such job"
    assert call(app, "GET", f"/api/jobs/{huge}").status_code == 404
    assert call(app, "POST", f"/api/jobs/{huge}/retry").status_code == 404


def test_healthz_and_metrics(app):
    call(app, "POST", "/api/requests", json=CREATE)
    call(app, "POST", "/api/requests", json={"verb": "NOPE"})
    health = call(app, "GET", "/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "jobs": {"queued": 1, "running": 0, "done": 0, "failed": 0},
    }
    text = call(app, "GET", "/metrics").text
    assert 'wod_requests_total{channel="http",outcome="accepted"} 1.0' in text
    assert 'wod_requests_total{channel="http",outcome="rejected"} 1.0' in text
    assert 'wod_jobs{status="queued"} 1.0' in text


def test_concurrent_requests_for_one_seat_are_stored_in_the_order_of_their_202s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests for one seat that arrive while the database is busy are stored, and
    answered, in the order they arrived (a thread pool committed them in whatever order
    its threads got the database: the seat's jobs then ran against the 202s' order)."""
    caplog.set_level(logging.DEBUG, logger="wod.intake.http")
    settings = Settings(state_dir=tmp_path, user_min=1, user_max=20, http_token=TOKEN)
    queue = JobQueue(settings.db_path)
    blocker = sqlite3.connect(settings.db_path, isolation_level=None)
    count = 16

    def parsed() -> int:
        return sum("parsed; persisting" in r.getMessage() for r in caplog.records)

    async def send_all(port: int) -> dict[int, int]:
        acked: dict[int, int] = {}  # customer -> the job its 202 named
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=BEARER, timeout=30, limits=limits
        ) as http:

            async def post(customer: int) -> None:
                body = {"verb": "CLEANUP", "stdid": 7, "customer": customer}
                body["workshop"] = "WKSHP-API101"
                resp = await http.post("/api/requests", json=body)
                assert resp.status_code == 202, resp.text
                acked[customer] = resp.json()["job"]

            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
            waiting = []
            try:
                for n in range(count):  # customer n+1 arrives n-th
                    waiting.append(asyncio.create_task(post(n + 1)))
                    deadline = time.monotonic() + 10
                    while parsed() < n + 1:  # until the intake has it
                        assert time.monotonic() < deadline, "the intake never parsed it"
                        await asyncio.sleep(0.005)
                # Held a while longer: SQLite's busy handler has the waiting writers
                # retry on staggered sleeps, so a thread pool's commit order is mixed.
                await asyncio.sleep(1.5)
            finally:
                blocker.execute("ROLLBACK")
            await asyncio.gather(*waiting)
        return acked

    try:
        with serve_in_thread(create_app(settings, queue), "wod-http") as port:
            acked = asyncio.run(send_all(port))
    finally:
        blocker.close()
    jobs = sorted(queue.jobs(limit=100), key=lambda j: j.id)
    assert [j.request.customer for j in jobs] == list(range(1, count + 1))
    assert acked == {j.request.customer: j.id for j in jobs}  # each 202 names its own job
    # The server answered in the same order (the order in which the client's event loop
    # reads answers arriving together on 16 connections is its own business).
    assert logged_jobs(caplog.records, r"job (\d+) queued from HTTP") == [j.id for j in jobs]


def test_an_endless_body_is_refused_without_being_read_whole(app, queue):
    """A client streaming a huge body gets its 400 after the first 64 KiB: the intake does
    not read (and hold) the rest."""
    pulled = 0

    async def endless():
        nonlocal pulled
        for _ in range(4096):  # 256 MiB if read whole
            pulled += 65536
            yield b"x" * 65536

    resp = call(app, "POST", "/api/requests", content=endless())
    assert resp.status_code == 400
    assert "larger than" in resp.json()["error"]
    assert pulled < 1024 * 1024
    assert len(queue.rejections()) == 1
