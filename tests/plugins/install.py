"""Fixture plugin: a complete local install, and the backend serving it on real ports.

``install``  a ``wod init`` layout in a tmp dir (bundled sample workshops, hook scripts and
             variables), pointed at the ``registry`` fixture, seats provisioned
             (``directory`` accounts; ``install_factory(accounts="system")`` for real Linux
             accounts when root, with a test-only name pattern, removed afterwards).
``backend``  ``wod serve`` (SMTP + HTTP + workers + the real lifecycle) in a thread over
             ``install``; helpers to send requests the way the api-db does and wait for jobs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.paths import ROOT
from wod.ops.init import init_install
from wod.queue import Job, JobQueue
from wod.server import Server
from wod.services.accounts import Accounts, make_accounts
from wod.services.mail import api_db_block, send_raw
from wod.settings import Settings, load_settings

SENDER = "wod-api@localhost"
SEATS = (1, 8)
TERMINAL = ("done", "failed")


@dataclass
class Install:
    root: Path
    config: Path
    settings: Settings
    accounts: Accounts
    registry: Any

    def home(self, stdid: int) -> Path:
        return self.settings.home(stdid)


def _free_id_base() -> int:
    """A base (62000..64900, step 100) whose ids no account or group uses yet: tests of
    other runs on the same host make system accounts too."""
    import grp
    import pwd

    for _ in range(100):
        base = 62000 + 100 * secrets.randbelow(30)
        ids = range(base, base + 100)
        if not any(p.pw_uid in ids for p in pwd.getpwall()) and not any(
            g.gr_gid in ids for g in grp.getgrall()
        ):
            return base
    raise RuntimeError("no free uid/gid range 62000-64999 for test accounts")


def _make_install(
    base: Path, registry: Any, *, accounts: str = "directory", **values: Any
) -> Install:
    settings_values: dict[str, Any] = {
        "apidb_url": registry.url,
        "apidb_user": registry.username,
        "apidb_password": registry.password,
        "smtp_port": 0,
        "http_port": 0,
        "hub_url": "",
        "senders": [SENDER],
        "workers": 2,
        "user_min": SEATS[0],
        "user_max": SEATS[1],
        "retry_base_delay": 0.2,
        "retry_max_delay": 1.0,
        "cleaned_poll_timeout": 0.0,
        "hook_timeout": 20.0,
        "accounts": accounts,
    }
    if accounts == "system":
        # Test-only names and ids, far from real users; removed at teardown.
        tag = secrets.token_hex(2)
        ids = _free_id_base()
        settings_values.update(
            # wod serve refuses to start without the admin account: one that exists
            # (a test gives its own, e.g. a local_user, with admin_user=).
            admin_user="root",
            account_pattern=f"w{tag}s{{n}}",
            uid_base=ids,
            gid_base=ids,
            students_dir=str(base / "students"),
        )
    settings_values.update(values)
    config = init_install(base, samples=ROOT / "wod" / "samples", values=settings_values)
    settings = load_settings(config, environ={})
    accts = make_accounts(settings)
    for n in range(settings.user_min, settings.user_max + 1):
        accts.provision(n)
    return Install(base, config, settings, accts, registry)


@pytest.fixture
def install_factory(tmp_path: Path, registry: Any) -> Iterator[Callable[..., Install]]:
    made: list[Install] = []

    def make(**values: Any) -> Install:
        inst = _make_install(tmp_path / f"inst{len(made)}", registry, **values)
        made.append(inst)
        return inst

    try:
        yield make
    finally:
        for inst in made:
            if inst.settings.accounts == "system":
                for n in range(inst.settings.user_min, inst.settings.user_max + 1):
                    inst.accounts.remove(n)


@pytest.fixture
def install(install_factory: Callable[..., Install]) -> Install:
    return install_factory()


class Backend:
    """``wod serve`` in a thread, with helpers to talk to it like the api-db does."""

    def __init__(self, install: Install, **server_options: Any) -> None:
        self.install = install
        self.settings = install.settings
        self.queue = JobQueue(install.settings.db_path)
        self.server = Server(
            install.settings, queue=self.queue, poll_interval=0.1, **server_options
        )
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve()), name="wod-serve", daemon=True
        )

    def start(self) -> Backend:
        self._thread.start()
        if not self.server.ready.wait(20):
            raise RuntimeError("backend did not start")
        return self

    def stop(self) -> None:
        self.server.request_stop()
        self._thread.join(30)

    def send(self, subject: str, workshop: str) -> None:
        """Send a request exactly as the api-db does (SPEC 2.2 raw block)."""
        block = api_db_block(
            subject,
            workshop,
            helo="apidb.test",
            sender=SENDER,
            recipient=f"{self.settings.command_mailbox}@backend.test",
        )
        greeting = send_raw("127.0.0.1", self.server.smtp_port, block)
        assert greeting.startswith(b"220"), greeting

    def wait(self, count: int = 1, timeout: float = 60.0) -> list[Job]:
        """Wait until at least ``count`` jobs exist and all of them are finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.queue.jobs(limit=10_000)
            if len(jobs) >= count and all(j.status in TERMINAL for j in jobs):
                return [self.queue.job(j.id) for j in reversed(jobs)]
            time.sleep(0.05)
        states = [(j.id, j.verb, j.status, j.reason) for j in self.queue.jobs(limit=50)]
        raise AssertionError(f"jobs not finished after {timeout} s: {states}")

    def run(self, subject: str, workshop: str, timeout: float = 60.0) -> Job:
        """Send one request and return its finished job."""
        before = len(self.queue.jobs(limit=10_000))
        self.send(subject, workshop)
        jobs = self.wait(before + 1, timeout)
        return jobs[-1]

    def customer(self, workshop: str, **fields: Any) -> tuple[dict[str, Any], int]:
        """Register a participant in the registry; returns (customer row, local stdid)."""
        cust = self.install.registry.create_customer(workshop, **fields)
        return cust, cust["studentId"] - self.settings.base_stdid

    def student(self, stdid: int) -> dict[str, Any]:
        """The registry's student row of local student ``stdid``."""
        row = self.install.registry.student(self.settings.apidb_student_id(stdid))
        assert row is not None, f"no student row for {stdid}"
        return row

    def wait_until(
        self, predicate: Callable[[list[Job]], bool], timeout: float = 30.0
    ) -> list[Job]:
        """Poll the jobs (oldest first) until ``predicate(jobs)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = list(reversed(self.queue.jobs(limit=10_000)))
            if predicate(jobs):
                return [self.queue.job(j.id) for j in jobs]
            if time.monotonic() > deadline:
                states = [(j.id, j.verb, j.status, j.reason) for j in jobs]
                raise AssertionError(f"condition not met after {timeout} s: {states}")
            time.sleep(0.05)


@pytest.fixture
def backend_factory() -> Iterator[Callable[..., Backend]]:
    started: list[Backend] = []

    def start(install: Install, **options: Any) -> Backend:
        backend = Backend(install, **options).start()
        started.append(backend)
        return backend

    try:
        yield start
    finally:
        for backend in started:
            backend.stop()


@pytest.fixture
def backend(install: Install, backend_factory: Callable[..., Backend]) -> Backend:
    return backend_factory(install)


def is_root() -> bool:
    return os.geteuid() == 0
