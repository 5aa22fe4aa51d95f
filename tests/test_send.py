"""``wod send``: the real command against a byte-recording socket and the real listener."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wod.intake.smtp import IntakeThread, SmtpIntake
from wod.queue import JobQueue
from wod.requests import Verb
from wod.settings import Settings

API_DB = "wod-api@api.example.com"
WOD = [sys.executable, "-c", "from wod.cli import main; main()"]


def wod(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOD_")}
    return subprocess.run(
        [*WOD, "-c", str(config), *args], capture_output=True, text=True, timeout=30, env=env
    )


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[Path, JobQueue, IntakeThread]]:
    settings = Settings(state_dir=tmp_path / "state", smtp_port=0, senders=[API_DB])
    queue = JobQueue(settings.db_path)
    thread = SmtpIntake(settings, queue).run_in_thread()
    config = tmp_path / "wod.yml"
    config.write_text(
        f"state_dir: {tmp_path / 'client'}\nsmtp_host: 127.0.0.1\n"
        f"smtp_port: {thread.port}\nsenders: [{API_DB}]\n"
    )
    try:
        yield config, queue, thread
    finally:
        thread.stop()


def wait_jobs(queue: JobQueue, count: int, timeout: float = 15.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = queue.jobs()
        if len(jobs) >= count:
            return sorted(jobs, key=lambda j: j.id)
        time.sleep(0.02)
    raise AssertionError(f"expected {count} jobs, have {len(queue.jobs())}")


def test_raw_bytes_are_the_api_dbs(tmp_path: Path) -> None:
    """A recording server: read until the final '.', then greet; the client must hang up."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    seen: dict[str, bytes] = {}

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while not data.endswith(b"\n.\n"):
                data += conn.recv(4096)
            seen["block"] = data
            conn.sendall(b"220 recorder\r\n")
            seen["after"] = conn.recv(100)  # b"" once the client has hung up

    thread = threading.Thread(target=serve)
    thread.start()
    config = tmp_path / "wod.yml"
    config.write_text(f"smtp_port: {port}\nsenders: [{API_DB}]\ncommand_mailbox: wod\n")
    done = wod(config, "send", "CREATE", "1", "1", "alice@example.com", "-w", "WKSHP-API101")
    thread.join(10)
    server.close()
    assert done.returncode == 0, done.stderr
    assert "220 recorder" in done.stdout
    host = socket.gethostname()
    assert (
        seen["block"]
        == (
            f"HELO {host}\nMAIL FROM: {API_DB}\nRCPT TO: wod@{host}\nDATA\n"
            "Subject: CREATE 1 1 alice@example.com\nWKSHP-API101\n.\n"
        ).encode()
    )
    assert seen["after"] == b""


def test_raw_send_is_queued(backend: tuple[Path, JobQueue, IntakeThread]) -> None:
    config, queue, _ = backend
    done = wod(config, "send", "CREATE", "4", "825", "dan@example.com", "-w", "CHLG-API101")
    assert done.returncode == 0, done.stderr
    req = wait_jobs(queue, 1)[0].request
    assert (req.verb, req.stdid, req.customer, req.email, req.workshop, req.folder) == (
        Verb.CREATE,
        4,
        825,
        "dan@example.com",
        "CHLG-API101",
        "WKSHP-API101",
    )


def test_reset_range_and_range_option(backend: tuple[Path, JobQueue, IntakeThread]) -> None:
    config, queue, _ = backend
    assert wod(config, "send", "RESET", "9", "--range", "2,4", "-w", "WKSHP-API101").returncode == 0
    done = wod(config, "send", "CLEANUP", "9", "--range", "5-7", "-w", "WKSHP-API101")
    assert done.returncode == 0, done.stderr
    # The api-db's client hangs up at the greeting, so it cannot know when (or in which
    # order) the backend persists each mail: assert what was queued, not the order.
    jobs = sorted(wait_jobs(queue, 4), key=lambda j: j.request.stdid)
    assert (jobs[0].request.verb, jobs[0].request.stdids) == (Verb.RESET, [2, 3, 4])
    assert [(j.request.verb, j.request.stdid, j.request.customer) for j in jobs[1:]] == [
        (Verb.CLEANUP, 5, 9),
        (Verb.CLEANUP, 6, 9),
        (Verb.CLEANUP, 7, 9),
    ]


def test_smtplib_mode_shows_the_answer(backend: tuple[Path, JobQueue, IntakeThread]) -> None:
    config, queue, _ = backend
    done = wod(config, "send", "--smtplib", "PURGE", "3", "4", "-w", "WKSHP-API101")
    assert done.returncode == 0, done.stderr
    job = wait_jobs(queue, 1)[0]
    assert f"250 2.0.0 queued as job {job.id}" in done.stdout
    bad = wod(config, "send", "--smtplib", "--no-check", "PURGE", "3", "-w", "WKSHP-API101")
    assert bad.returncode == 1
    assert "550" in bad.stderr and "missing arguments" in bad.stderr
    assert "missing arguments" in queue.rejections()[0].reason


def test_object_promise_as_the_api_db_sends_it(
    backend: tuple[Path, JobQueue, IntakeThread],
) -> None:
    config, queue, _ = backend
    assert (
        wod(config, "send", "PURGE", "[object Promise]", "3", "-w", "WKSHP-API101").returncode == 0
    )
    req = wait_jobs(queue, 1)[0].request
    assert req.recover_stdid and req.customer == 3


def test_unreachable_backend_fails_clearly(tmp_path: Path) -> None:
    from tests.plugins.paths import get_free_port

    config = tmp_path / "wod.yml"
    config.write_text(f"smtp_port: {get_free_port()}\n")
    done = wod(config, "send", "CLEANUP", "1", "2", "-w", "WKSHP-API101")
    assert done.returncode == 1 and "cannot reach" in done.stderr
    bad_range = wod(config, "send", "CLEANUP", "2", "--range", "5-1", "-w", "WKSHP-A")
    assert bad_range.returncode == 1
    assert bad_range.stderr.strip() == "Error: range 5-1 is reversed: 5 is above 1"


def test_what_the_server_would_refuse_fails_before_sending(
    backend: tuple[Path, JobQueue, IntakeThread],
) -> None:
    """``wod send FROB 61 1`` said "sent"; it now fails with the server's own reason and
    sends nothing (no job, no rejection on the server)."""
    config, queue, _ = backend
    for args, reason in [
        (("FROB", "61", "1"), "unknown verb 'FROB'"),
        (("CLEANUP", "61", "1"), "student id 61 is outside this backend's range 1-20"),
        (("CREATE", "3", "1"), "missing arguments"),
        (("PURGE", "1", "--range", "2-4"), "PURGE refuses a range"),
        (("CLEANUP", "1", "--range", "19-21"), "student id 21 is outside"),
    ]:
        done = wod(config, "send", *args, "-w", "WKSHP-API101")
        assert done.returncode == 1, (args, done.stdout)
        assert reason in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "sent" not in done.stdout
    assert queue.jobs() == [] and queue.rejections() == []


def test_purge_of_one_seat_by_range(backend: tuple[Path, JobQueue, IntakeThread]) -> None:
    config, queue, _ = backend
    done = wod(config, "send", "PURGE", "7", "--range", "3", "-w", "WKSHP-API101")
    assert done.returncode == 0, done.stderr
    req = wait_jobs(queue, 1)[0].request
    assert (req.verb, req.stdid, req.customer) == (Verb.PURGE, 3, 7)
