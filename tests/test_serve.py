"""``wod serve`` and ``wod jobs`` for real: the server on real ports (in a thread and as a
subprocess stopped by SIGTERM), interrupted jobs resumed at start, the jobs CLI as a
subprocess over a real job database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.plugins.paths import get_free_port
from wod.errors import Permanent
from wod.queue import Job, JobQueue
from wod.requests import Request, Verb
from wod.server import Server
from wod.settings import Settings
from wod.worker import JobContext

ROOT = Path(__file__).resolve().parents[1]
WOD = [sys.executable, "-c", "from wod.cli import main; main()"]


def recording_runner(settings: Settings, queue: JobQueue):
    """A runner for the server: one step, fails for workshop WKSHP-FAIL (used by
    ``wod serve --runner`` in the subprocess test too)."""

    def run(job: Job, ctx: JobContext) -> None:
        with ctx.step("deploy"):
            ctx.log(f"deployed {job.request.workshop} for student {job.request.stdid}")
            if job.request.workshop == "WKSHP-FAIL":
                raise Permanent("no such workshop in the api-db", output="404 from api-db")

    return run


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write_config(tmp_path: Path, **extra) -> Path:
    values = {
        "state_dir": str(tmp_path / "state"),
        "http_port": get_free_port(),
        "smtp_port": get_free_port(),
        "workers": 2,
        "user_min": 1,
        "user_max": 20,
        "command_mailbox": "wodadmin",
        "demo": True,
        **extra,
    }
    path = tmp_path / "wod.yml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    return path


def wod(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "WOD_CONFIG": str(config)}
    return subprocess.run(
        [*WOD, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=30
    )


@pytest.fixture
def server(tmp_path: Path):
    settings = Settings(
        state_dir=tmp_path / "state",
        http_port=0,
        smtp_port=0,
        workers=2,
        command_mailbox="wodadmin",
        demo=True,
    )
    srv = Server(settings, runner_factory=recording_runner, poll_interval=0.1)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    try:
        assert srv.ready.wait(10), "server did not start"
        yield srv
    finally:
        srv.request_stop()
        thread.join(15)
        assert not thread.is_alive()


def test_server_takes_http_and_smtp_requests_and_runs_them(server: Server):
    base = f"http://127.0.0.1:{server.http_port}"
    resp = httpx.post(
        f"{base}/api/requests",
        json={
            "verb": "CREATE",
            "stdid": 4,
            "customer": 8,
            "email": "bo@example.com",
            "workshop": "WKSHP-API101",
        },
        timeout=5,
    )
    assert resp.status_code == 202
    http_job = resp.json()["job"]
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=5) as smtp:
        smtp.sendmail(
            "apidb@example.com",
            ["wodadmin@backend"],
            "Subject: CREATE 5 9 cy@example.com\r\n\r\nWKSHP-FAIL\r\n",
        )
    wait_for(
        lambda: server.queue.pending() == 0 and len(server.queue.jobs()) == 2,
        what="both jobs finished",
    )
    done = httpx.get(f"{base}/api/jobs/{http_job}", timeout=5).json()
    assert done["status"] == "done"
    assert done["steps"][0]["output"] == "deployed WKSHP-API101 for student 4"
    [mail_job] = [j for j in server.queue.jobs() if j.id != http_job]
    assert mail_job.request.channel == "smtp" and mail_job.status == "failed"
    assert mail_job.reason == "no such workshop in the api-db"
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'wod_jobs_total{outcome="done",verb="CREATE"} 1.0' in metrics
    assert 'wod_jobs_total{outcome="failed",verb="CREATE"} 1.0' in metrics
    assert 'wod_step_seconds_count{step="deploy"} 2.0' in metrics
    assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"


def test_wod_serve_resumes_interrupted_jobs_and_stops_on_sigterm(tmp_path: Path):
    config = write_config(tmp_path)
    settings = Settings(state_dir=tmp_path / "state")
    queue = JobQueue(settings.db_path)
    interrupted = queue.submit(Request(Verb.CLEANUP, 3, 5, "WKSHP-API101"))
    assert queue.claim("crashed-process").id == interrupted  # left 'running' by a crash
    http_port = json.loads(config.read_text().split("http_port: ")[1].split("\n")[0])
    env = {**os.environ, "WOD_CONFIG": str(config)}
    proc = subprocess.Popen(
        [*WOD, "serve", "--runner", "tests.test_serve:recording_runner"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).is_success
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                return False

        wait_for(healthy, 15, "wod serve to answer /healthz")
        wait_for(lambda: queue.job(interrupted).status == "done", 10, "the resumed job")
        job = queue.job(interrupted)
        assert job.attempts == 2
        assert [(s.attempt, s.status) for s in job.steps] == [(2, "done")]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "wod serve stopped" in proc.stderr.read()


def test_wod_jobs_list_show_and_retry(tmp_path: Path):
    config = write_config(tmp_path)
    queue = JobQueue(Settings(state_dir=tmp_path / "state").db_path)
    ok = queue.submit(Request(Verb.CREATE, 1, 11, "WKSHP-API101", "a@example.com"))
    bad = queue.submit(Request(Verb.RESET, 2, 12, "WKSHP-API101", stdid_max=4))
    queue.claim("w")
    queue.record_step(ok, "deploy", "done", time.time(), 0.042, "12 files rendered")
    queue.complete(ok)
    queue.claim("w")
    queue.record_step(bad, "reset-hooks", "failed", time.time(), 0.5, "reset-X.sh: exit 2")
    queue.fail(bad, "hook reset-WKSHP-API101.sh: exited with status 2", "appliance down")

    table = wod(config, "jobs").stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATUS", "VERB", "STUDENT"]
    assert lines[1].split()[:4] == [str(bad), "failed", "RESET", "2,4"]
    assert lines[2].split()[:4] == [str(ok), "done", "CREATE", "1"]

    as_json = json.loads(wod(config, "jobs", "--json", "--status", "failed").stdout)
    assert [j["id"] for j in as_json] == [bad]
    assert as_json[0]["reason"] == "hook reset-WKSHP-API101.sh: exited with status 2"
    assert len(json.loads(wod(config, "jobs", "--json", "--limit", "1").stdout)) == 1

    shown = wod(config, "jobs", "show", str(bad)).stdout
    assert "RESET student 2,4 customer 12" in shown
    assert "failed — hook reset-WKSHP-API101.sh: exited with status 2" in shown
    assert "reset-hooks" in shown and "0.500s" in shown and "reset-X.sh: exit 2" in shown
    assert "appliance down" in shown
    shown_ok = wod(config, "jobs", "show", str(ok)).stdout
    assert "deploy" in shown_ok and "0.042s" in shown_ok and "12 files rendered" in shown_ok

    assert wod(config, "jobs", "retry", str(bad)).stdout.strip() == f"job {bad} queued again"
    assert queue.job(bad).status == "queued"
    refused = wod(config, "jobs", "retry", str(ok), check=False)
    assert refused.returncode == 1 and "only a failed job can be retried" in refused.stderr
    missing = wod(config, "jobs", "show", "999", check=False)
    assert missing.returncode == 1 and "no job 999" in missing.stderr
    huge = str(10**30)
    missing = wod(config, "jobs", "show", huge, check=False)
    assert missing.returncode == 1 and f"no job {huge}" in missing.stderr


def test_second_server_on_the_same_database_refuses_and_does_not_rerun_jobs(tmp_path: Path):
    """A second ``wod serve`` on the same job database (a manual start next to the service)
    must not take the first one's running job for an interrupted one and run it again."""
    release = threading.Event()
    calls: list[int] = []

    def blocking_runner(settings: Settings, queue: JobQueue):
        def run(job: Job, ctx: JobContext) -> None:
            calls.append(job.id)
            release.wait(10)

        return run

    def settings() -> Settings:
        return Settings(
            state_dir=tmp_path / "state", http_port=0, smtp_port=0, workers=2, demo=True
        )

    first = Server(settings(), runner_factory=blocking_runner, poll_interval=0.05)
    thread = threading.Thread(target=lambda: asyncio.run(first.serve()), daemon=True)
    thread.start()
    try:
        assert first.ready.wait(10)
        job_id = first.queue.submit(Request(Verb.CLEANUP, 4, 9, "WKSHP-API101"))
        wait_for(lambda: calls == [job_id], 5, "the job to run")
        second = Server(settings(), runner_factory=blocking_runner, poll_interval=0.05)
        error: list[BaseException] = []

        def serve_second() -> None:
            try:
                asyncio.run(second.serve())
            except BaseException as exc:
                error.append(exc)

        other = threading.Thread(target=serve_second, daemon=True)
        other.start()
        other.join(3)
        if other.is_alive():  # it started: stop it before failing
            second.request_stop()
            other.join(15)
        assert calls == [job_id]
        assert error and "another wod serve is running" in str(error[0])
        job = first.queue.job(job_id)
        assert job.status == "running" and job.attempts == 1
    finally:
        release.set()
        first.request_stop()
        thread.join(15)
    assert first.queue.job(job_id).status == "done"


def test_wod_jobs_prune_forgets_only_old_finished_jobs(tmp_path: Path):
    config = write_config(tmp_path)
    db = Settings(state_dir=tmp_path / "state").db_path
    queue = JobQueue(db)
    old = queue.submit(Request(Verb.CREATE, 1, 11, "WKSHP-API101", "a@example.com"))
    queue.claim("w")
    queue.record_step(old, "deploy", "done", time.time(), 0.04, "")
    queue.complete(old)
    waiting = queue.submit(Request(Verb.CLEANUP, 2, 12, "WKSHP-API101"))
    assert queue.claim("w").id == waiting  # still running, however old
    queue.reject("smtp", "unknown verb 'DELETE'")
    with sqlite3.connect(db) as conn:  # as if 100 days had passed for these rows
        conn.execute("UPDATE jobs SET created = created - 100 * 86400")
        conn.execute("UPDATE rejections SET at = at - 100 * 86400")
    recent = queue.submit(Request(Verb.CREATE, 3, 13, "WKSHP-API101", "c@example.com"))
    queue.claim("w")
    queue.complete(recent)

    out = wod(config, "jobs", "prune", "--older-than", "90d").stdout
    assert "removed 1 finished job(s) and 1 rejection(s)" in out
    left = {j.id: j.status for j in queue.jobs()}
    assert left == {waiting: "running", recent: "done"}  # unfinished jobs are never pruned
    assert queue.rejections() == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM steps WHERE job_id = ?", (old,)).fetchone() == (
            0,
        )
    bad = wod(config, "jobs", "prune", "--older-than", "soon", check=False)
    assert bad.returncode == 2 and "expected e.g. 90d" in bad.stderr
