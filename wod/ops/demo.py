"""The demo: a whole local install doing the main job once, with everything real.

:func:`run_demo` creates a fresh install under a folder (``wod init``), starts the
api-db-compatible registry and ``wod serve`` as separate processes on free ports,
registers a participant with the registry as the web portal would, sends the ``CREATE``
mail exactly as the api-db does (the raw SPEC 2.2 byte block over SMTP), waits for the job
and returns what a user wants to see: the deployed files, the credentials as the registry
now holds them, the job's steps and timings — then ends the session with the api-db's
``CLEANUP`` (completion scored, seat freed, home wiped).  Nothing is faked; the JupyterHub step is
skipped because the demo runs no hub (the test suite runs a real one).

The processes are stopped with SIGTERM at the end; the folder is kept for inspection.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from wod.ops.init import init_install
from wod.services.accounts import make_accounts
from wod.services.mail import api_db_block, send_raw
from wod.settings import Settings, load_settings

WORKSHOP = "WKSHP-Sample101"
SENDER = "wod-api@localhost"
#: Marks a folder made by the demo, which the next demo may delete and recreate.
MARKER = ".wod-demo"


@dataclass
class DemoResult:
    root: Path
    settings: Settings
    stdid: int
    customer: dict[str, Any]
    student: dict[str, Any]
    job: dict[str, Any]
    ack_ms: float
    total_ms: float
    files: list[tuple[str, int, str]] = field(default_factory=list)
    excerpt: list[str] = field(default_factory=list)
    cleanup_job: dict[str, Any] = field(default_factory=dict)
    cleanup_student: dict[str, Any] = field(default_factory=dict)
    cleanup_customer: dict[str, Any] = field(default_factory=dict)
    home_after_cleanup: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _files(folder: Path) -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            mode = oct(path.stat().st_mode & 0o777)[2:]
            out.append((str(path.relative_to(folder.parent)), path.stat().st_size, mode))
    return out


def _excerpt(notebook: Path, needles: list[str]) -> list[str]:
    lines = []
    for line in notebook.read_text(encoding="utf-8").splitlines():
        text = line.strip().strip('",').replace("\\n", "")
        if any(n in text for n in needles) and text not in lines:
            lines.append(text)
    return lines[:8]


def _is_demo_folder(root: Path) -> bool:
    """An earlier demo's folder (marked, or laid out by a demo before the mark existed)."""
    if (root / MARKER).is_file():
        return True
    return all((root / name).exists() for name in ("wod.yml", "registry.log", "serve.log", "state"))


def run_demo(root: Path, *, say: Callable[[str], None] = print) -> DemoResult:
    """Run the demo in ``root`` (recreated); returns what it showed.  Raises
    :class:`FileExistsError` rather than delete a non-empty folder no demo made."""
    if root.exists():
        if any(root.iterdir()) and not _is_demo_folder(root):
            raise FileExistsError(
                f"{root} is not empty and not an earlier demo: choose another --dir"
            )
        shutil.rmtree(root)
    ports = {"registry": _free_port(), "smtp": _free_port(), "http": _free_port()}
    config = init_install(
        root,
        values={
            "apidb_url": f"http://127.0.0.1:{ports['registry']}/api",
            "smtp_port": ports["smtp"],
            "http_port": ports["http"],
            "senders": [SENDER],
        },
    )
    (root / MARKER).write_text("made by `wod demo`: recreated by the next demo\n")
    settings = load_settings(config, environ={})
    say(
        f"1. wod init {root}: settings {config}, {settings.accounts} accounts, "
        f"seats {settings.user_min}-{settings.user_max}, demo: {str(settings.demo).lower()} "
        "(a local demo; a production host uses wod install)"
    )
    accounts = make_accounts(settings)
    for n in range(settings.user_min, settings.user_max + 1):
        accounts.provision(n)
    wod = [sys.executable, "-m", "wod", "-c", str(config)]
    with (
        _process([*wod, "registry"], root / "registry.log") as registry,
        _process([*wod, "serve"], root / "serve.log") as backend,
    ):
        api = settings.apidb_url
        web = f"http://127.0.0.1:{settings.http_port}"
        _wait(
            lambda: httpx.get(f"{api}/workshops", timeout=2).status_code == 200,
            "registry",
            30,
            registry,
        )
        _wait(
            lambda: httpx.get(f"{web}/healthz", timeout=2).status_code == 200,
            "backend",
            30,
            backend,
        )
        say(f"2. registry (api-db) on {api}, backend: SMTP :{settings.smtp_port}, HTTP {web}")

        reply = httpx.post(
            f"{api}/customer",
            timeout=10,
            json={
                "title": WORKSHOP,
                "name": "Alice Example",
                "email": "alice@example.com",
                "company": "Demo",
            },
        )
        reply.raise_for_status()
        customer = reply.json()
        stdid = customer["studentId"] - settings.base_stdid
        say(
            f"3. participant registered for {WORKSHOP}: customer {customer['id']}, "
            f"seat student{stdid}"
        )

        subject = f"CREATE {stdid} {customer['id']} alice@example.com"
        block = api_db_block(
            subject,
            WORKSHOP,
            helo="apidb.local",
            sender=SENDER,
            recipient=f"{settings.command_mailbox}@localhost",
        )
        sent_at = time.time()
        greeting = send_raw("127.0.0.1", settings.smtp_port, block)
        say(
            f"4. sent the api-db's raw mail ({len(block)} bytes, '{subject}'); "
            f"server said {greeting.decode(errors='replace').strip()!r} and the client hung up"
        )

        job = _wait_job(web, 1, backend)
        ack_ms = (job["created"] - sent_at) * 1000
        total_ms = ((job["finished"] or time.time()) - sent_at) * 1000
        if job["status"] != "done":
            raise RuntimeError(f"the CREATE job failed: {job['reason']}\n{job.get('output')}")

        student, cust_row = _rows(settings, customer["studentId"], customer["id"])
        home = settings.home(stdid)
        result = DemoResult(
            root=root,
            settings=settings,
            stdid=stdid,
            customer=cust_row,
            student=student,
            job=job,
            ack_ms=ack_ms,
            total_ms=total_ms,
            files=_files(home / WORKSHOP),
            excerpt=_excerpt(
                home / WORKSHOP / "1-Sample-Notebook.ipynb",
                [f"student{stdid}", student.get("password") or "\0", f"student = {stdid}"],
            ),
        )

        # The end of the session: the api-db's CLEANUP scores the notebook and frees the seat.
        subject = f"CLEANUP {stdid} {customer['id']}"
        send_raw(
            "127.0.0.1",
            settings.smtp_port,
            api_db_block(
                subject,
                WORKSHOP,
                helo="apidb.local",
                sender=SENDER,
                recipient=f"{settings.command_mailbox}@localhost",
            ),
        )
        result.cleanup_job = _wait_job(web, 2, backend)
        result.cleanup_student, result.cleanup_customer = _rows(
            settings, customer["studentId"], customer["id"]
        )
        result.home_after_cleanup = sorted(p.name for p in home.iterdir())
    return result


def _wait_job(web: str, job_id: int, backend: subprocess.Popen) -> dict[str, Any]:
    job: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal job
        reply = httpx.get(f"{web}/api/jobs/{job_id}", timeout=5)
        if reply.status_code != 200:
            return False
        job = reply.json()
        return job["status"] in ("done", "failed")

    _wait(finished, f"job {job_id}", 60, backend)
    return job


def _rows(settings: Settings, student_id: int, customer_id: int) -> tuple[dict, dict]:
    """The student and customer rows as the registry (api-db) holds them."""
    with sqlite3.connect(settings.state_dir / "registry.db") as conn:
        conn.row_factory = sqlite3.Row
        student = conn.execute("SELECT * FROM students WHERE id = ?", (student_id,))
        customer = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,))
        return dict(student.fetchone()), dict(customer.fetchone())
