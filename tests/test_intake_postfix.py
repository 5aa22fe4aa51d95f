"""The Postfix path as upstream deploys it, with Debian's real Postfix.

Postfix's ``mailbox_command`` runs ``wod intake --socket`` as the mailbox user, who can
read neither the 0600 settings nor the 0700 state: it hands the mail to the running
daemon over the intake socket (group = the mailbox user's group).  A CREATE sent to
Postfix's SMTP port ends as a done job; with the daemon killed (SIGKILL), mail stays in
Postfix's queue (exit 75) and is processed after a restart and ``postqueue -f``; nothing
is lost, nothing is written by the mailbox user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.plugins.install import SENDER
from tests.plugins.paths import ROOT
from wod.queue import JobQueue

WORKSHOP = "WKSHP-Sample101"
WOD_BIN = Path(sys.executable).parent / "wod"


def wod_for_other_users() -> str:
    """The ``wod`` command line as another user can run it.  A production venv is made
    with the system python (/opt/wod); this suite's interpreter may live where other users
    cannot reach (pyenv under /root), then Debian's python3 (same 3.11 ABI) runs the same
    code from the venv's site-packages."""
    interpreter = Path(sys.executable).resolve()
    if all(p.stat().st_mode & 0o001 for p in interpreter.parents):
        return str(WOD_BIN)
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    return f"/usr/bin/env PYTHONPATH={site}:{ROOT} /usr/bin/python3 -m wod"


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: Postfix, accounts")


class Daemon:
    """``wod serve`` as a real process (so it can be killed)."""

    def __init__(self, config: Path, sock: Path) -> None:
        self.config = config
        self.sock = sock
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(WOD_BIN), "-c", str(self.config), "serve", "--no-smtp"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wod serve ended: {self.proc.stderr.read().decode()}")
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(self.sock))
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        raise RuntimeError("wod serve did not open its intake socket")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_job(queue: JobQueue, count: int, mta, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = queue.jobs(limit=100)
        if len(jobs) >= count and all(j.status in ("done", "failed") for j in jobs):
            return queue.job(jobs[0].id)
        time.sleep(0.1)
    states = [(j.id, j.status) for j in jobs]
    raise AssertionError(f"no finished job #{count}: {states}; Postfix log:\n{mta.log()}")


def test_mail_through_postfix_reaches_the_queue_and_survives_a_killed_daemon(
    install_factory, local_user_factory, postfix
):
    run_dir = Path(tempfile.mkdtemp(prefix="wod-run-", dir="/tmp"))
    run_dir.chmod(0o711)  # like RuntimeDirectoryMode= in the unit
    homes = Path(tempfile.mkdtemp(prefix="wod-mailhome-", dir="/tmp"))
    homes.chmod(0o755)
    daemon = None
    try:
        mailer = local_user_factory(home=homes / "mailbox")
        sock = run_dir / "intake.sock"
        inst = install_factory(
            intake_socket=str(sock),
            intake_group=mailer.name,  # the mailbox user's own group
            senders=[SENDER],
        )
        assert stat.S_IMODE(inst.config.stat().st_mode) == 0o600
        daemon = Daemon(inst.config, sock)
        daemon.start()
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        assert sock.stat().st_gid == mailer.gid
        mta = postfix(f"{wod_for_other_users()} intake --socket {sock}")
        queue = JobQueue(inst.settings.db_path)
        cust = inst.registry.create_customer(WORKSHOP, email="alice@example.com")
        stdid = cust["studentId"] - inst.settings.base_stdid

        # 1. A CREATE through Postfix ends as a done job.
        mta.send(
            SENDER,
            f"{mailer.name}@localhost",
            f"CREATE {stdid} {cust['id']} alice@example.com",
            WORKSHOP,
        )
        created = wait_job(queue, 1, mta)
        assert (created.verb, created.status) == ("CREATE", "done"), (created.reason,)
        assert created.request.channel == "pipe"
        mta.wait_log("status=sent (delivered to command")
        assert "Mail queue is empty" in mta.queue()

        # 2. Daemon killed: the mail stays in Postfix's queue (wod intake exits 75).
        daemon.kill()
        mta.send(SENDER, f"{mailer.name}@localhost", f"CLEANUP {stdid} {cust['id']}", WORKSHOP)
        mta.wait_log("the backend is not running")
        held = mta.queue()
        assert f"{mailer.name}@localhost" in held, held
        assert len(queue.jobs(limit=100)) == 1

        # 3. Restarted and flushed: processed, nothing left in Postfix.
        daemon.start()
        mta.flush()
        cleaned = wait_job(queue, 2, mta)
        assert (cleaned.verb, cleaned.status) == ("CLEANUP", "done"), (cleaned.reason,)
        deadline = time.monotonic() + 30
        while "Mail queue is empty" not in mta.queue() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Mail queue is empty" in mta.queue()

        # The mailbox user wrote nothing of the backend's: the state is the daemon's.
        owners = {p.stat().st_uid for p in inst.settings.state_dir.rglob("*")}
        assert mailer.uid not in owners
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(homes, ignore_errors=True)
