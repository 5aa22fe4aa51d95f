"""The reliability rig: a whole install with the registry and ``wod serve`` as processes,
mail bursts over concurrent SMTP connections, faults, and the checks that follow.

Used by ``tests/test_reliability.py`` (short runs in ``make test``) and
``bench/reliability.py`` (full runs, figures in ``docs/reliability.md``).  Everything is
real: ``wod init`` layout in a tmp dir, ``wod registry`` (the api-db peer, SQLite) and
``wod serve`` each in its own process on free ports, real Linux accounts when root
(test-only name pattern and uids, removed at the end), smtplib clients.

- :class:`Rig` starts, kills and restarts the two processes, seeds participants
  (customer rows, one per registration, as the api-db creates them) and reads the job
  database and the registry's tables back.
- :func:`session_plan` builds a burst: for each seat, participants one after another, each
  session a ``CREATE`` then (except the seat's last) the ``CLEANUP`` that ends it, as the
  api-db sends them when a seat is handed on.
- :func:`send_burst` sends a plan over N concurrent SMTP connections (several mails per
  connection), noting for each mail the moment its final ``.`` was sent and its reply
  (``250 ... queued as job N``) arrived; a dropped connection is re-opened and the burst
  goes on with the next mail (the unanswered one is not re-sent: it is "unacknowledged").
- :func:`check_burst` compares what was acknowledged with the job database and the
  registry: none lost, none duplicated, per-seat order, seats as the api-db has them.

The ``rig_factory`` fixture gives tests rigs that are torn down (processes, accounts) at
the end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.plugins.paths import ROOT, get_free_port, wait_http
from wod.ops.init import init_install
from wod.queue import Job, JobQueue
from wod.services.accounts import Accounts, make_accounts
from wod.settings import Settings, load_settings

SENDER = "wod-api@localhost"
#: Notebook-only workshop (a copy of the bundled Sample101 without hooks, range = seats).
NOTEBOOK = "WKSHP-Rely101"
#: The bundled Sample101, range widened, with create/post-copy hooks (the create hook of
#: some seats sleeps, so a kill -9 often lands while a hook runs).
HOOKED = "WKSHP-Sample101"
#: A copy of Sample101 with ``ldap: true`` (only when the rig has an LDAP server).
LDAP_WS = "WKSHP-Rely201"
TERMINAL = ("done", "failed", "cancelled")
READY_TIMEOUT = 60.0
_JOB_ID = re.compile(rb"queued as job (\d+)")

SLOW_CREATE_HOOK = """#!/bin/sh
# create hook (reliability rig): seats ending in 0 or 5 take {slow} s, so that a kill -9 of
# wod serve often lands while a hook runs.
case "$stdid" in
  *0|*5) sleep {slow} ;;
esac
echo "create-WKSHP-Sample101 done for student$stdid"
"""


# -- processes ---------------------------------------------------------------------------
def pids_with_env(name: str, value: str) -> list[int]:
    """Pids of live processes whose environment holds ``name=value`` (hooks get
    ``WODSTUDDIR``, the install's students folder: a marker of this rig)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of ``pid`` in KiB, from ``/proc/<pid>/status``."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def started_at(pid: int) -> float:
    """Wall-clock start time of ``pid`` (``/proc/<pid>/stat`` field 22, since boot)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A ``size`` tmpfs mounted on ``folder`` (root only), unmounted at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        yield folder
    finally:
        done = subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
        if done.returncode:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(path: Path, chunk: int = 64 * 1024) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    block = b"\0" * chunk
    with open(path, "wb", buffering=0) as out:
        while True:
            try:
                written += out.write(block) or 0
            except OSError:
                if chunk == 1:
                    return written
                chunk //= 8
                block = block[: max(chunk, 1)]
                chunk = max(chunk, 1)


def integrity_check(db_path: Path) -> str:
    """``PRAGMA integrity_check`` of an SQLite file (``ok`` when intact)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        return "; ".join(str(r[0]) for r in db.execute("PRAGMA integrity_check"))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, the process and its reaped children) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(check: Callable[[], bool], what: str, timeout: float, interval: float = 0.05) -> None:
    """Poll ``check`` until it holds; ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g} s")
        time.sleep(interval)


def free_id_base(seats: int) -> int:
    """A random uid/gid base far from real users whose ``seats`` ids are all unused (other
    test runs on the same host pick theirs at random too)."""
    import grp
    import pwd

    for _ in range(100):
        base = 100_000 + 1000 * secrets.randbelow(900)
        taken = False
        for n in range(base + 1, base + seats + 1):
            try:
                pwd.getpwuid(n)
                taken = True
            except KeyError:
                try:
                    grp.getgrgid(n)
                    taken = True
                except KeyError:
                    pass
            if taken:
                break
        if not taken:
            return base
    raise RuntimeError("no free range of uids found for the test accounts")


# -- the rig -----------------------------------------------------------------------------
@dataclass
class Participant:
    stdid: int
    customer: int
    workshop: str


class Rig:
    """An install under ``base`` with its registry and ``wod serve`` processes."""

    def __init__(
        self,
        base: Path,
        *,
        seats: int,
        accounts: str = "system",
        slow_hook: float = 0.0,
        ldap: dict[str, Any] | None = None,
        **values: Any,
    ) -> None:
        self.base = base
        self.seats = seats
        self.registry_db = base / "registry.db"
        settings_values: dict[str, Any] = {
            "apidb_url": f"http://127.0.0.1:{get_free_port()}/api",
            "smtp_port": get_free_port(),
            "http_port": get_free_port(),
            "senders": [SENDER],
            "hub_url": "",
            "accounts": accounts,
            "user_min": 1,
            "user_max": seats,
            "cleaned_poll_timeout": 0.0,
            "retry_base_delay": 0.2,
            "retry_max_delay": 1.0,
            "hook_timeout": 60.0,
        }
        if accounts == "system":
            tag = secrets.token_hex(2)
            ids = free_id_base(seats)
            settings_values.update(
                account_pattern=f"w{tag}r{{n}}",
                uid_base=ids,
                gid_base=ids,
                admin_user="root",  # an existing admin account (wod serve checks at start)
            )
        if ldap:
            settings_values.update(ldap)
        settings_values.update(values)
        self.config = init_install(base, values=settings_values)
        self.settings: Settings = load_settings(self.config, environ={})
        self._workshops(slow_hook, with_ldap=bool(ldap))
        self.accounts: Accounts = make_accounts(self.settings)
        self.provisioned: list[int] = []
        self.registry: subprocess.Popen | None = None
        self.serve: subprocess.Popen | None = None
        self.serve_starts: list[float] = []  # time.time() of each start
        self.kills: list[float] = []

    # -- layout ---------------------------------------------------------------------------
    def _workshops(self, slow_hook: float, *, with_ldap: bool) -> None:
        tree = self.settings.notebooks_dir
        sample = tree / HOOKED
        copies: list[tuple[str, dict[str, Any]]] = [(NOTEBOOK, {})]
        if with_ldap:
            copies.append((LDAP_WS, {"ldap": True}))
        for name, extra in copies:
            shutil.copytree(sample, tree / name)
            assert self.settings.ansible_dir is not None
            group = self.settings.ansible_dir / self.settings.inventory_group
            shutil.copy(group / f"variables_{HOOKED}.yml", group / f"variables_{name}.yml")
            self._set_meta(tree / name, name=f"{name} (reliability rig)", **extra)
        self._set_meta(sample)
        if slow_hook > 0:
            assert self.settings.scripts_dir is not None
            hook = self.settings.scripts_dir / f"create-{HOOKED}.sh"
            hook.write_text(SLOW_CREATE_HOOK.format(slow=slow_hook))
            hook.chmod(0o755)

    def _set_meta(self, folder: Path, **extra: Any) -> None:
        meta = folder / "wod.yml"
        data = yaml.safe_load(meta.read_text())
        data.update(range=[1, self.seats], capacity=self.seats * 10, **extra)
        meta.write_text(yaml.safe_dump(data, sort_keys=False))

    def provision(self) -> None:
        for n in range(1, self.seats + 1):
            self.accounts.provision(n)
            self.provisioned.append(n)

    def remove_accounts(self) -> None:
        while self.provisioned:
            n = self.provisioned.pop()
            with contextlib.suppress(Exception):
                self.accounts.remove(n)

    # -- processes ------------------------------------------------------------------------
    def _wod(
        self,
        *args: str,
        log: str,
        launcher: tuple[str, ...] = ("-m", "wod"),
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        with open(self.base / log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, *launcher, "-c", str(self.config), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )

    def start_registry(self) -> None:
        self.registry = self._wod(
            "registry", "--db", f"sqlite:///{self.registry_db}", log="registry.log"
        )
        url = f"{self.settings.apidb_url}/workshops"
        wait_http(url, self.registry, "registry", READY_TIMEOUT)

    def stop_registry(self) -> None:
        if self.registry is not None:
            _stop_process(self.registry)
            self.registry = None

    def start_serve(self, launcher: tuple[str, ...] = ("-m", "wod")) -> None:
        """Start ``wod serve`` (through ``launcher``, e.g. ``bench/memsampler.py OUT``)."""
        # In the environment the systemd unit gives it (wod/systemd/wod-backend.service).
        self.serve = self._wod(
            "serve", log="serve.log", launcher=launcher, env={"MALLOC_ARENA_MAX": "2"}
        )
        self.serve_starts.append(time.time())
        wait_http(
            f"http://127.0.0.1:{self.settings.http_port}/healthz",
            self.serve,
            "wod serve",
            READY_TIMEOUT,
        )

    def kill_serve(self) -> None:
        """``kill -9`` of the ``wod serve`` process only (as the OOM killer would)."""
        assert self.serve is not None
        self.serve.send_signal(signal.SIGKILL)
        self.serve.wait(10)
        self.kills.append(time.time())
        self.serve = None

    def stop_serve(self) -> None:
        if self.serve is not None:
            _stop_process(self.serve, 60)
            self.serve = None

    def close(self) -> None:
        """Stop everything, kill what this rig's hooks left, remove the accounts."""
        try:
            self.stop_serve()
            self.stop_registry()
            for pid in self.orphans():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            self.remove_accounts()

    def orphans(self) -> list[int]:
        """Live processes started for this install's jobs (hooks and their children)."""
        return pids_with_env("WODSTUDDIR", str(self.settings.students_dir))

    def sleeping_hooks(self) -> list[int]:
        """This rig's hook processes that are the slow hook's ``sleep``."""
        found = []
        for pid in self.orphans():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                    found.append(pid)
        return found

    def log_text(self, name: str = "serve.log") -> str:
        path = self.base / name
        return path.read_text(errors="replace") if path.exists() else ""

    # -- participants (the api-db's rows) -------------------------------------------------
    def participants(self, plan: list[tuple[int, str]]) -> list[Participant]:
        """One new customer row per ``(stdid, workshop)``, as the api-db writes one per
        registration (written straight into the registry's database, which the running
        registry then serves)."""
        from wod.registry.models import Customer, make_engine, make_sessionmaker

        base = self.settings.base_stdid
        engine = make_engine(f"sqlite:///{self.registry_db}")
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                rows = [
                    Customer(
                        name=f"Participant {i}",
                        email=f"p{i}@example.com",
                        notebook=workshop,
                        sessionName=workshop,
                        studentId=stdid + base,
                    )
                    for i, (stdid, workshop) in enumerate(plan)
                ]
                session.add_all(rows)
                session.flush()
                return [
                    Participant(stdid, row.id, workshop)
                    for row, (stdid, workshop) in zip(rows, plan, strict=True)
                ]
        finally:
            engine.dispose()

    def registry_rows(self) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
        """(students by local stdid, customers by id) as the registry holds them."""
        base = self.settings.base_stdid
        with sqlite3.connect(f"file:{self.registry_db}?mode=ro", uri=True, timeout=30) as db:
            db.row_factory = sqlite3.Row
            students = {r["id"] - base: dict(r) for r in db.execute("SELECT * FROM students")}
            customers = {r["id"]: dict(r) for r in db.execute("SELECT * FROM customers")}
        return students, customers

    # -- jobs -----------------------------------------------------------------------------
    def queue(self) -> JobQueue:
        return JobQueue(self.settings.db_path)

    def jobs(self) -> list[Job]:
        """Every job with its steps, oldest first."""
        queue = self.queue()
        try:
            return [queue.job(j.id) for j in reversed(queue.jobs(limit=1_000_000))]
        finally:
            queue.close()

    def wait_settled(self, count: int, timeout: float) -> list[Job]:
        """Wait until at least ``count`` jobs exist and none is queued or running."""
        queue = self.queue()
        try:
            deadline = time.monotonic() + timeout
            while True:
                # Counts only: loading every job at each poll took a CPU's worth of time
                # from the server under test once thousands of jobs were on record.
                states = queue.counts()
                if sum(states.values()) >= count and not any(
                    n for status, n in states.items() if status not in TERMINAL
                ):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"jobs not settled after {timeout:g} s: {sum(states.values())} of "
                        f"{count}, {states}"
                    )
                time.sleep(0.05)
        finally:
            queue.close()
        return self.jobs()


@contextlib.contextmanager
def rig(base: Path, *, start: bool = True, **options: Any) -> Iterator[Rig]:
    """A :class:`Rig`, accounts provisioned and (``start``) both processes running;
    everything stopped and removed at the end."""
    made = Rig(base, **options)
    try:
        made.provision()
        if start:
            made.start_registry()
            made.start_serve()
        yield made
    finally:
        made.close()


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """``rig_factory(seats=..., **options)`` -> a running :class:`Rig` (torn down after)."""
    stack = contextlib.ExitStack()
    counter = iter(range(1000))

    def make(**options: Any) -> Rig:
        return stack.enter_context(rig(tmp_path / f"rig{next(counter)}", **options))

    with stack:
        yield make


# -- mails -------------------------------------------------------------------------------
@dataclass
class Mail:
    n: int  # position in the plan
    verb: str
    stdid: int
    customer: int
    workshop: str
    dot: float | None = None  # monotonic, final "." sent
    acked: float | None = None  # monotonic, reply received
    acked_wall: float | None = None
    code: int | None = None
    reply: str = ""
    job: int | None = None
    error: str = ""
    resent: int = 0  # copies sent again after a connection died without an answer

    @property
    def subject(self) -> str:
        if self.verb == "CREATE":
            return f"CREATE {self.stdid} {self.customer} p{self.customer}@example.com"
        return f"{self.verb} {self.stdid} {self.customer}"

    @property
    def accepted(self) -> bool:
        return self.code == 250 and self.job is not None


def session_plan(
    rig: Rig,
    seats: list[int],
    sessions: int,
    workshop: str = NOTEBOOK,
    *,
    final_cleanup: bool = False,
) -> list[Mail]:
    """For each seat, ``sessions`` participants one after another: ``CREATE``, then the
    ``CLEANUP`` ending the session before the seat's next ``CREATE`` (the seat's last
    participant stays active unless ``final_cleanup``).  Mails are ordered round by round
    across seats."""
    people = rig.participants([(s, workshop) for _ in range(sessions) for s in seats])
    mails: list[Mail] = []
    for r in range(sessions):
        for i, _ in enumerate(seats):
            p = people[r * len(seats) + i]
            mails.append(Mail(len(mails), "CREATE", p.stdid, p.customer, workshop))
        if r < sessions - 1 or final_cleanup:
            for i, _ in enumerate(seats):
                p = people[r * len(seats) + i]
                mails.append(Mail(len(mails), "CLEANUP", p.stdid, p.customer, workshop))
    return mails


def _message(rig: Rig, mail: Mail) -> bytes:
    mailbox = f"{rig.settings.command_mailbox}@backend.local"
    text = f"From: {SENDER}\r\nTo: {mailbox}\r\nSubject: {mail.subject}\r\n\r\n{mail.workshop}\r\n"
    return smtplib.quotedata(text).encode() + b"\r\n.\r\n"


def _connect(rig: Rig, deadline: float) -> smtplib.SMTP:
    while True:
        try:
            smtp = smtplib.SMTP("127.0.0.1", rig.settings.smtp_port, timeout=30)
            smtp.ehlo("apidb.local")
            return smtp
        except (OSError, smtplib.SMTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _send_one(smtp: smtplib.SMTP, rig: Rig, mail: Mail) -> None:
    mailbox = f"{rig.settings.command_mailbox}@backend.local"
    code, reply = smtp.mail(SENDER)
    if code == 250:
        code, reply = smtp.rcpt(mailbox)
    if code == 250:
        code, reply = smtp.docmd("DATA")
    if code != 354:
        mail.code, mail.reply = code, reply.decode(errors="replace")
        smtp.rset()
        return
    payload = _message(rig, mail)
    mail.dot = time.monotonic()
    smtp.send(payload)
    code, reply = smtp.getreply()
    mail.acked, mail.acked_wall = time.monotonic(), time.time()
    mail.code, mail.reply = code, reply.decode(errors="replace")
    found = _JOB_ID.search(reply)
    if code == 250 and found:
        mail.job = int(found.group(1))


def send_burst(
    rig: Rig,
    mails: list[Mail],
    connections: int,
    *,
    timeout: float = 300.0,
    seed: int = 1,
) -> float:
    """Send ``mails`` over ``connections`` concurrent SMTP sessions (released together).
    Each connection sends its share in plan order; the shares are a seeded random split,
    so one seat's mails travel on different connections.  As the api-db does, a seat's mail
    leaves only once the seat's previous mail was answered (a participant's CLEANUP after
    their CREATE, the next participant's CREATE after that CLEANUP); different seats go
    concurrently.  Returns the monotonic start."""
    shares: list[list[Mail]] = [[] for _ in range(connections)]
    rnd = random.Random(seed)
    answered = {m.n: threading.Event() for m in mails}
    previous: dict[int, int] = {}
    last_of_seat: dict[int, int] = {}
    for mail in mails:
        if mail.stdid in last_of_seat:
            previous[mail.n] = last_of_seat[mail.stdid]
        last_of_seat[mail.stdid] = mail.n
        shares[rnd.randrange(connections)].append(mail)
    gate = threading.Barrier(connections + 1)
    deadline = time.monotonic() + timeout

    def client(share: list[Mail]) -> None:
        gate.wait(60)
        smtp: smtplib.SMTP | None = None
        for mail in share:
            if mail.n in previous:
                answered[previous[mail.n]].wait(max(deadline - time.monotonic(), 0.0))
            try:
                while True:
                    try:
                        if smtp is None:
                            smtp = _connect(rig, deadline)
                        _send_one(smtp, rig, mail)
                        break
                    except (OSError, smtplib.SMTPException) as exc:
                        mail.error = f"{type(exc).__name__}: {exc}"
                        with contextlib.suppress(Exception):
                            smtp.close()  # type: ignore[union-attr]
                        smtp = None
                        if mail.code is not None or time.monotonic() > deadline:
                            break
                        # No answer (the server died mid-mail): send it again, as a
                        # sending MTA does; the first copy may have been persisted.
                        mail.resent += 1
            finally:
                answered[mail.n].set()
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()

    threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in shares]
    for t in threads:
        t.start()
    gate.wait(60)
    start = time.monotonic()
    for t in threads:
        t.join(timeout)
    return start


# -- checks ------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What a burst left behind, checked against what was acknowledged."""

    mails: int = 0
    accepted: int = 0
    unacknowledged: int = 0  # connection dropped before a reply (kill -9), not re-sent
    resent: int = 0  # mails sent again after a connection died without an answer
    refused: dict[str, int] = field(default_factory=dict)  # reply code -> count
    jobs: int = 0
    done: int = 0
    problems: list[str] = field(default_factory=list)
    order_pairs: int = 0  # same-seat pairs whose 250s were causally ordered
    concurrent_pairs: int = 0  # same-seat pairs whose [".", 250] intervals overlapped
    reruns: int = 0  # jobs that ran more than one attempt (resumed or retried)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(problem)


def check_burst(
    rig: Rig, mails: list[Mail], jobs: list[Job], *, seats_consistent: bool = True
) -> Verdict:
    """None lost (every acknowledged mail is one job, done), none duplicated (no job for
    a mail not sent, none twice), per-seat order (a seat's jobs ran one at a time in the
    order of their ``250``s), and each seat as the api-db has it."""
    v = Verdict(mails=len(mails), jobs=len(jobs))
    by_id = {j.id: j for j in jobs}
    sent = {(m.verb, m.customer): m for m in mails}
    for m in mails:
        v.resent += bool(m.resent)
        if m.accepted:
            v.accepted += 1
        elif m.code is None:
            v.unacknowledged += 1
        else:
            v.refused[str(m.code)] = v.refused.get(str(m.code), 0) + 1
    # Every acknowledged mail: its job exists, is the mail's, and is done.
    acked_ids: dict[int, Mail] = {}
    for m in mails:
        if not m.accepted:
            continue
        assert m.job is not None
        if m.job in acked_ids:
            v.add(f"job {m.job} acknowledged twice (mails {acked_ids[m.job].n} and {m.n})")
        acked_ids[m.job] = m
        job = by_id.get(m.job)
        if job is None:
            v.add(f"mail {m.n} ({m.subject}) acknowledged as job {m.job}: no such job (lost)")
            continue
        r = job.request
        if (r.verb.value, r.customer, r.stdid) != (m.verb, m.customer, m.stdid):
            v.add(f"job {job.id} is {r.verb.value} {r.stdid} {r.customer}, mail said {m.subject}")
        if job.status != "done":
            v.add(f"job {job.id} ({m.subject}) {job.status}: {job.reason}")
    # Every job: one of our mails, only once; unacknowledged mails may have a job (persisted
    # just before the kill) which must then be done too.
    seen: dict[tuple[str, int], int] = {}
    for job in jobs:
        key = (job.request.verb.value, job.request.customer)
        if key not in sent:
            v.add(f"job {job.id} ({key}) matches no mail sent")
        if key in seen and not (key in sent and sent[key].resent):
            v.add(f"jobs {seen[key]} and {job.id} are the same mail {key} (duplicated)")
        seen[key] = job.id
        if job.status == "done":
            v.done += 1
        elif job.id not in acked_ids:
            v.add(f"job {job.id} of an unacknowledged mail is {job.status}: {job.reason}")
        if job.attempts > 1:
            v.reruns += 1
    _check_order(v, mails, by_id)
    if seats_consistent:
        _check_seats(v, rig, jobs)
    return v


def _check_order(v: Verdict, mails: list[Mail], by_id: dict[int, Job]) -> None:
    per_seat: dict[int, list[Mail]] = defaultdict(list)
    for m in mails:
        if m.accepted and m.job in by_id:
            per_seat[m.stdid].append(m)
    for stdid, seat in per_seat.items():
        for i, a in enumerate(seat):
            for b in seat[i + 1 :]:
                first, second = (a, b) if a.acked <= b.acked else (b, a)  # type: ignore[operator]
                if first.acked <= second.dot:  # type: ignore[operator]
                    v.order_pairs += 1
                    if first.job > second.job:  # type: ignore[operator]
                        v.add(
                            f"seat {stdid}: job {first.job} answered 250 before mail "
                            f"{second.n} was sent, yet was queued after its job {second.job}"
                        )
                else:
                    v.concurrent_pairs += 1
        # The seat's jobs ran one at a time, in job order.
        ordered = sorted((by_id[m.job] for m in seat), key=lambda j: j.id)  # type: ignore[index]
        for before, after in zip(ordered, ordered[1:], strict=False):
            began = min((s.started for s in after.steps), default=None)
            if before.finished is not None and began is not None and began < before.finished - 1e-3:
                v.add(f"seat {stdid}: job {after.id} started before job {before.id} finished")


def _check_seats(v: Verdict, rig: Rig, jobs: list[Job]) -> None:
    """The seat's last job decides what the api-db must show: after a CREATE its customer
    active and the seat's password (the api-db's) opening the account; after a CLEANUP the
    customer cleaned and the seat freed.  Every done CREATE set its customer active."""
    students, customers = rig.registry_rows()
    last: dict[int, Job] = {}
    for job in jobs:
        if job.status != "done" or job.request.stdid is None:
            continue
        last[job.request.stdid] = job
        c = customers.get(job.request.customer, {})
        if job.request.verb.value == "CREATE" and not c.get("active"):
            v.add(f"job {job.id} done but customer {job.request.customer} is not active")
        if job.request.verb.value == "CLEANUP" and not c.get("cleaned"):
            v.add(f"job {job.id} done but customer {job.request.customer} is not cleaned")
    for stdid, job in sorted(last.items()):
        student = students.get(stdid, {})
        password = student.get("password") or ""
        if not password or not rig.accounts.verify_password(stdid, password):
            v.add(
                f"seat {stdid}: the api-db's password does not open the account (last job {job.id})"
            )
        if job.request.verb.value == "CLEANUP" and student.get("assigned"):
            v.add(f"seat {stdid}: still assigned after its CLEANUP (job {job.id})")


# -- figures -----------------------------------------------------------------------------
def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Drain:
    """Throughput and latency of a settled burst."""

    creates: int
    jobs: int
    seconds: float  # first "." sent -> last job finished
    ack_ms: list[float]  # "." -> reply
    done_ms: list[float]  # 250 -> job finished (CREATEs)

    @property
    def creates_per_s(self) -> float:
        return self.creates / self.seconds if self.seconds else 0.0

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def drain_figures(mails: list[Mail], jobs: list[Job]) -> Drain:
    by_id = {j.id: j for j in jobs}
    sent = [m for m in mails if m.dot is not None]
    first_wall = min(m.acked_wall - (m.acked - m.dot) for m in sent if m.acked is not None)  # type: ignore[operator]
    finished = [j.finished for j in jobs if j.finished is not None]
    done_ms = [
        (by_id[m.job].finished - m.acked_wall) * 1000  # type: ignore[operator]
        for m in mails
        if m.accepted and m.verb == "CREATE" and by_id.get(m.job) and by_id[m.job].finished  # type: ignore[arg-type]
    ]
    return Drain(
        creates=sum(1 for m in mails if m.accepted and m.verb == "CREATE"),
        jobs=len(jobs),
        seconds=max(finished) - first_wall if finished else 0.0,
        ack_ms=[(m.acked - m.dot) * 1000 for m in sent if m.acked is not None],  # type: ignore[operator]
        done_ms=done_ms,
    )


# -- an LDAP server for the rig's accounts -----------------------------------------------
class LdapServer:
    """A real slapd (configured like ``tests/plugins/slapd.py``) holding an entry per
    account of the rig; can be stopped and started again on the same port and data."""

    def __init__(self, folder: Path) -> None:
        from tests.plugins import slapd as plugin

        self.plugin = plugin
        self.folder = folder
        (folder / "db").mkdir(parents=True)
        plugin._write_certificates(folder)
        self.conf = folder / "slapd.conf"
        self.conf.write_text(plugin._config(folder))
        self.port = get_free_port()
        self.proc: subprocess.Popen | None = None

    def seed(self, accounts: list[str]) -> None:
        """The base entries and one ``uid=<account>,ou=People`` entry per account."""
        suffix = self.plugin.SUFFIX
        entries = [
            f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\n"
            "o: wod reliability\ndc: wod\n",
            f"dn: ou=People,{suffix}\nobjectClass: organizationalUnit\nou: People\n",
        ]
        entries += [
            f"dn: uid={a},ou=People,{suffix}\nobjectClass: inetOrgPerson\n"
            f"uid: {a}\ncn: {a}\nsn: {a}\nuserPassword: initial-{a}\n"
            for a in accounts
        ]
        seed = self.folder / "seed.ldif"
        seed.write_text("\n".join(entries))
        subprocess.run(
            [self.plugin.SLAPADD, "-f", self.conf, "-l", seed], check=True, capture_output=True
        )

    def settings(self) -> dict[str, Any]:
        return {
            "ldap_host": "127.0.0.1",
            "ldap_port": self.port,
            "ldap_domain": self.plugin.SUFFIX,
            "ldap_password": self.plugin.ROOT_PASSWORD,
            "ldap_timeout": 5.0,
        }

    def start(self) -> None:
        log = self.folder / "slapd.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.plugin.SLAPD,
                    "-f",
                    self.conf,
                    "-h",
                    f"ldap://127.0.0.1:{self.port}/",
                    "-d",
                    "0",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.plugin._wait_ready(self.proc, self.port, log)

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, 10)
            self.proc = None


# -- a JupyterHub that can be stopped and started again ----------------------------------
class _TokenDefaults(dict):
    """Format values; a ``*_token`` the text asks for and we do not set is a fresh one."""

    def __missing__(self, key: str) -> str:
        if key.endswith("_token"):
            self[key] = secrets.token_hex(24)
            return self[key]
        raise KeyError(key)


class Hub:
    """A real JupyterHub configured like ``tests/plugins/hub.py`` (same configuration
    text), on fixed free ports and one database, so that it can go down and come back."""

    def __init__(self, folder: Path) -> None:
        from tests.plugins import hub as plugin

        self.plugin = plugin
        self.folder = folder
        (folder / "homes").mkdir(parents=True)
        self.port, self.hub_port, self.api_port = get_free_port(), get_free_port(), get_free_port()
        self.token = secrets.token_hex(24)
        self.hub_id = secrets.token_hex(8)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        plugin = self.plugin
        chp = plugin._proxy_available()
        if chp is None:
            raise RuntimeError("configurable-http-proxy not installed")
        config = self.folder / "jupyterhub_config.py"
        values: dict[str, Any] = {
            "port": self.port,
            "hub_port": self.hub_port,
            "proxy_api_port": self.api_port,
            "db_url": f"sqlite:///{self.folder / 'jupyterhub.sqlite'}",
            "cookie_file": str(self.folder / "cookie_secret"),
            "hub_pid": str(self.folder / "jupyterhub.pid"),
            "proxy_pid": str(self.folder / "proxy.pid"),
            "proxy_token": secrets.token_hex(24),
            "chp": str(chp),
            "users": [],
            "singleuser": str(plugin.VENV_BIN / "jupyterhub-singleuser"),
            "marker": plugin.MARKER,
            "hub_id": self.hub_id,
            "homes": str(self.folder / "homes"),
            "token": self.token,
            "slow": plugin.SLOW_USER,
            "broken": plugin.BROKEN_USER,
            "dashboard_port": get_free_port(),
            "hub_admin": "wodadmin",
            "admin_group": getattr(plugin, "ADMIN_GROUP", "wod-admins"),
        }
        # Other services of the shared configuration text (extra tokens) get their own.
        config.write_text(plugin.CONFIG.format_map(_TokenDefaults(values)))
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(plugin.NODE_BIN), str(plugin.VENV_BIN), env["PATH"]])
        env[plugin.MARKER] = self.hub_id
        env.pop("JUPYTERHUB_API_TOKEN", None)
        log = self.folder / "jupyterhub.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(plugin.VENV_BIN / "jupyterhub"), "-f", str(config)],
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        plugin._wait_ready(self.url, self.proc, log)

    def stop(self) -> None:
        if self.proc is not None:
            self.plugin._stop(self.proc, self.hub_id)
            self.proc = None
