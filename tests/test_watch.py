"""The abuse watcher against real processes run as a real seat's account (root): a CPU
burner is throttled (nice 19 observed), the admin notified, then it is killed; a
blacklisted command is killed at once and its seat PURGEd through the job queue; a
whitelisted burner and a young kernel are left alone, an old kernel is killed.  The clock
is injected: policy time is advanced, CPU use is measured between two real looks.

Then through ``wod watch --json`` and ``GET /api/watch``, and inside a running ``wod serve``.
"""

from __future__ import annotations

import dataclasses
import json
import mailbox
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.plugins.paths import ROOT
from wod.ops.watch import ActionLog, Watcher
from wod.queue import JobQueue
from wod.requests import parse_fields

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real seat accounts)"),
]

BURN = "#!/usr/bin/python3\nwhile True:\n    pass\n"
SLEEP = "#!/usr/bin/python3\nimport time\ntime.sleep(600)\n"
#: low on purpose: the suite shares 2 cores; the ladder, not the bar, is under test
WATCH = {
    "watch_cpu_percent": 2.0,
    "watch_throttle_after": 300.0,
    "watch_notify_after": 600.0,
    "watch_kill_after": 900.0,
    "watch_kernel_max_age": 4 * 3600.0,
    "watch_purge_after_kills": 0,
}


class Clock:
    """Policy time the test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def programs() -> Iterator[Path]:
    """A folder any account can read and run from (pytest's tmp is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="wod-watch-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Seat:
    def __init__(self, install, n: int, programs: Path) -> None:
        self.install, self.n, self.programs = install, n, programs
        self.uid = install.accounts.uid(n)
        self.procs: list[subprocess.Popen] = []

    def run(self, name: str, source: str) -> subprocess.Popen:
        """Run a program called ``name`` as this seat's account."""
        path = self.programs / name
        path.write_text(source)
        os.chmod(path, 0o755)
        p = subprocess.Popen(
            [str(path)],
            user=self.uid,
            group=self.uid,
            extra_groups=[],
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def seat(install_factory, programs) -> Iterator[Seat]:
    inst = install_factory(accounts="system", **WATCH)
    s = Seat(inst, 3, programs)
    try:
        yield s
    finally:
        s.stop()


def burn_a_while(pid: int, seconds: float = 0.3, timeout: float = 30.0) -> None:
    """Wait until ``pid`` has used ``seconds`` more CPU (so a look measures real use)."""
    proc = psutil.Process(pid)
    start = sum(proc.cpu_times()[:2])
    deadline = time.monotonic() + timeout
    while sum(proc.cpu_times()[:2]) - start < seconds:
        assert time.monotonic() < deadline, "the burner does not burn"
        time.sleep(0.05)


def started(p: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait until ``p`` runs its own program (not the interpreter starting up)."""
    deadline = time.monotonic() + timeout
    while len(psutil.Process(p.pid).cmdline()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def killed(p: subprocess.Popen) -> bool:
    """The program (which runs forever) has ended.  Its exit status is not asserted: the
    watcher, in this process, reaps its victims itself."""
    p.wait(10)
    return not psutil.pid_exists(p.pid)


def actions_of(done, pid: int) -> list[tuple[str, str]]:
    return [(a.action, a.rule) for a in done if a.pid == pid]


def test_a_busy_process_is_throttled_then_notified_then_killed(seat):
    clock = Clock()
    watcher = Watcher(seat.install.settings, JobQueue(seat.install.settings.db_path), clock=clock)
    burner = seat.run("burner", BURN)
    started(burner)
    assert watcher.scan() == []  # first look: CPU use is measured from here
    burn_a_while(burner.pid)
    assert watcher.scan() == []  # busy from now on, nothing yet
    assert psutil.Process(burner.pid).nice() == 0

    clock.advance(301)
    burn_a_while(burner.pid, 0.1)
    done = watcher.scan()
    assert actions_of(done, burner.pid) == [("throttle", "cpu")]
    assert psutil.Process(burner.pid).nice() == 19
    assert "nice 19" in done[0].detail and done[0].account == seat.install.settings.account(3)

    clock.advance(300)
    burn_a_while(burner.pid, 0.05)
    assert actions_of(watcher.scan(), burner.pid) == [("notify", "cpu")]
    assert burner.poll() is None  # still alive after the notice

    clock.advance(300)
    burn_a_while(burner.pid, 0.05)
    done = watcher.scan()
    assert actions_of(done, burner.pid) == [("kill", "cpu")]
    assert killed(burner)
    assert "busy" in done[0].detail and done[0].cpu is not None

    recorded = ActionLog.from_settings(seat.install.settings).actions()
    assert [a.action for a in recorded] == ["kill", "notify", "throttle"]
    log = seat.install.settings.state_dir / "watch.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_blacklisted_command_is_killed_at_once_and_the_seat_purged(seat):
    settings = seat.install.settings
    queue = JobQueue(settings.db_path)
    # The seat's current session, as the job history knows it: a finished CREATE.
    create = parse_fields("CREATE 3 77 a@example.com", "WKSHP-Sample101", settings, channel="http")
    job_id = queue.submit(create)
    assert queue.claim("t").id == job_id
    queue.complete(job_id)

    watcher = Watcher(settings, queue, clock=Clock())
    miner = seat.run("ethminer", SLEEP)
    started(miner)
    done = watcher.scan()  # no waiting: the name is enough
    assert actions_of(done, miner.pid) == [
        ("notify", "blacklist"),
        ("kill", "blacklist"),
        ("purge", "blacklist"),
    ]
    assert killed(miner)
    purge = queue.jobs(limit=10)[0]
    assert (purge.verb, purge.request.stdid, purge.request.customer) == ("PURGE", 3, 77)
    assert purge.request.workshop == "WKSHP-Sample101" and purge.request.channel == "watch"
    assert purge.status == "queued"
    assert f"PURGE job {purge.id} for customer 77" in done[-1].detail


def test_blacklisted_command_of_a_seat_without_customer_is_killed_purge_skipped(seat):
    watcher = Watcher(seat.install.settings, JobQueue(seat.install.settings.db_path), clock=Clock())
    miner = seat.run("packetcrypt", SLEEP)
    started(miner)
    done = watcher.scan()
    assert actions_of(done, miner.pid)[-2:] == [
        ("kill", "blacklist"),
        ("purge-skipped", "blacklist"),
    ]
    assert killed(miner)


def test_whitelisted_burner_and_young_kernel_are_left_alone_old_kernel_killed(seat):
    clock = Clock()
    watcher = Watcher(seat.install.settings, JobQueue(seat.install.settings.db_path), clock=clock)
    server = seat.run("jupyterhub-singleuser", BURN)
    kernel = seat.run("ipykernel_launcher", SLEEP)
    started(server)
    started(kernel)
    watcher.scan()
    burn_a_while(server.pid)
    for _ in range(3):  # far past the kill time
        clock.advance(1000)
        burn_a_while(server.pid, 0.05)
        assert watcher.scan() == []
    assert server.poll() is None and kernel.poll() is None
    assert psutil.Process(server.pid).nice() == 0

    clock.advance(4 * 3600)  # the kernel is now older than watch_kernel_max_age
    done = watcher.scan()
    assert actions_of(done, kernel.pid) == [("notify", "kernel-age"), ("kill", "kernel-age")]
    assert killed(kernel)
    assert server.poll() is None


def wod(install, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wod", "-c", str(install.config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(install.root)},
    )


def test_wod_serve_runs_the_watcher_and_lists_its_actions_by_cli_and_http(
    install_factory, programs, backend_factory, local_user
):
    inst = install_factory(
        accounts="system",
        admin_user=local_user.name,
        watch_interval=0.2,
        watch_blacklist_purge=False,
    )
    s = Seat(inst, 2, programs)
    try:
        backend = backend_factory(inst)
        miner = s.run("xmrig", SLEEP)
        assert killed(miner)  # killed by the server's watcher
        log = ActionLog.from_settings(inst.settings)
        deadline = time.monotonic() + 10
        while not any(a.action == "kill" for a in log.actions()):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        listed = wod(inst, "watch", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        kill = next(r for r in rows if r["action"] == "kill")
        assert (kill["rule"], kill["pid"], kill["stdid"]) == ("blacklist", miner.pid, 2)
        assert kill["account"] == inst.settings.account(2) and kill["process"] == "xmrig"

        text = wod(inst, "watch")
        assert "kill" in text.stdout and "xmrig" in text.stdout and "blacklisted" in text.stdout

        url = f"http://127.0.0.1:{backend.server.http_port}/api/watch"
        answer = httpx.get(url, params={"student": 2}, timeout=10)
        assert answer.status_code == 200
        assert [r["pid"] for r in answer.json() if r["action"] == "kill"] == [miner.pid]
        assert httpx.get(url, params={"student": 5}, timeout=10).json() == []
        # A number that is no seat here is refused with the reason, not answered "nothing".
        beyond = inst.settings.user_max + 1
        refused = wod(inst, "watch", "--student", str(beyond))
        assert refused.returncode != 0 and str(beyond) in refused.stderr, refused.stderr
        answer = httpx.get(url, params={"student": beyond}, timeout=10)
        assert answer.status_code == 400 and str(beyond) in answer.text
    finally:
        s.stop()


def test_repeated_kills_in_a_session_purge_the_seat(install_factory, programs):
    inst = install_factory(
        accounts="system",
        **{
            **WATCH,
            "watch_throttle_after": 0,
            "watch_notify_after": 0,
            "watch_kill_after": 0,
            "watch_purge_after_kills": 2,
        },
    )
    settings, queue = inst.settings, JobQueue(inst.settings.db_path)
    create = parse_fields("CREATE 3 81 b@example.com", "WKSHP-Sample101", settings, channel="http")
    job_id = queue.submit(create)
    queue.claim("t")
    queue.complete(job_id)
    seat = Seat(inst, 3, programs)
    watcher = Watcher(settings, queue, clock=Clock())
    try:
        for round_ in (1, 2):
            burner = seat.run(f"burner{round_}", BURN)
            started(burner)
            watcher.scan()
            burn_a_while(burner.pid)
            done = watcher.scan()
            assert ("kill", "cpu") in actions_of(done, burner.pid)
            assert killed(burner)
            purges = [a for a in done if a.action == "purge"]
            assert len(purges) == (round_ == 2)  # the second kill of the session
        jobs = queue.jobs(limit=10)
        assert (jobs[0].verb, jobs[0].request.customer, jobs[0].request.channel) == (
            "PURGE",
            81,
            "watch",
        )
        assert "2 kill(s) this session" in purges[0].detail
    finally:
        seat.stop()


def test_throttle_adds_a_cgroup_cpu_quota_when_the_cpu_controller_is_there(seat, tmp_path):
    """cgroup v2 is a kernel file protocol; this host's v2 tree has no cpu controller, so
    the protocol is exercised on a folder laid out like one (the renice is real)."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (cgroup / "cgroup.subtree_control").write_text("memory pids\n")
    watcher = Watcher(
        seat.install.settings,
        JobQueue(seat.install.settings.db_path),
        clock=Clock(),
        cgroup_root=cgroup,
    )
    watcher.policy = dataclasses.replace(watcher.policy, throttle_after=0.0)
    burner = seat.run("burner", BURN)
    started(burner)
    watcher.scan()
    burn_a_while(burner.pid)
    done = watcher.scan()
    assert actions_of(done, burner.pid) == [("throttle", "cpu")]
    assert done[0].detail.endswith("cgroup cpu.max 50%")
    assert (cgroup / "cgroup.subtree_control").read_text() == "+cpu"
    assert (cgroup / "wod-throttle" / "cpu.max").read_text() == "50000 100000"
    assert (cgroup / "wod-throttle" / "cgroup.procs").read_text() == str(burner.pid)
    assert psutil.Process(burner.pid).nice() == 19


def test_notices_are_mailed_to_monitor_when_asked(install_factory, programs):
    inst = install_factory(accounts="system", monitor="ops@example.com", watch_mail=True, **WATCH)
    seat = Seat(inst, 1, programs)
    try:
        watcher = Watcher(inst.settings, JobQueue(inst.settings.db_path), clock=Clock())
        miner = seat.run("minerd", SLEEP)
        started(miner)
        watcher.scan()
        assert killed(miner)
    finally:
        seat.stop()
    box = mailbox.Maildir(inst.settings.outbox_dir, create=False)
    mails = list(box)
    assert len(mails) == 1 and mails[0]["To"] == "ops@example.com"
    assert mails[0]["Subject"] == f"wod watch: {inst.settings.account(1)} minerd (blacklist)"
    body = mails[0].get_payload()
    assert f"Process {miner.pid} of {inst.settings.account(1)} (seat 1)" in body
    assert "Evidence: blacklisted command minerd" in body
