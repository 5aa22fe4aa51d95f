"""The install as README tells it, end to end, as root: ``wod install --mail postfix`` into
a root prefix next to a real Postfix instance, the admin's next steps (workshops cloned,
api-db settings set), ``wod serve`` from the installed settings; then a CREATE mailed
through Postfix and one through the built-in SMTP listener both end done, on real
accounts made by the install."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.plugins.paths import ROOT, SAMPLES, get_free_port
from tests.test_install import Names
from tests.test_intake_postfix import wod_for_other_users
from wod.queue import JobQueue
from wod.settings import load_settings

WORKSHOP = "WKSHP-Sample101"
SENDER = "wod-api@apidb.example.com"
WOD = [sys.executable, "-c", "from wod.cli import main; main()"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/sbin/postfix").exists(),
    reason="needs root and Postfix (scripts/install-test-deps.sh)",
)


def wait_done(queue: JobQueue, count: int, log: str = "", timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = queue.jobs(limit=50)
        if len(jobs) >= count and all(j.status in ("done", "failed") for j in jobs):
            return queue.job(jobs[0].id)
        time.sleep(0.1)
    raise AssertionError(f"job #{count} not finished: {[(j.id, j.status) for j in jobs]}{log}")


def test_installed_backend_takes_create_through_postfix_and_smtp(registry, postfix):
    names = Names()
    root = Path(tempfile.mkdtemp(prefix="wod-inst-", dir="/tmp"))  # short socket path
    root.chmod(0o755)
    daemon = mta = None
    try:
        mta = postfix("/bin/false", config_dir=root / "etc/postfix")
        wod = wod_for_other_users()
        done = subprocess.run(
            [
                *WOD,
                "install",
                "--root",
                str(root),
                "--mail",
                "postfix",
                "--wod-command",
                wod,
                "--no-check",
                *names.flags(),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        mta.reload()  # the mailbox_command the install set

        # The admin's next steps: workshops in place, the api-db and the hub set.
        config = root / "etc/wod/wod.yml"
        settings = load_settings(config, environ={})
        shutil.copytree(SAMPLES, settings.notebooks_dir, dirs_exist_ok=True)
        smtp_port = get_free_port()
        values = yaml.safe_load(config.read_text())
        values.update(
            apidb_url=registry.url,
            apidb_user=registry.username,
            apidb_password=registry.password,
            hub_url="",  # the hub is tested in test_lifecycle_hub; none here
            ansible_dir=str(ROOT / "wod/samples/ansible"),
            scripts_dir=str(ROOT / "wod/samples/scripts"),
            smtp_listener=True,  # both intakes at once
            smtp_port=smtp_port,
            http_port=get_free_port(),
            cleaned_poll_timeout=0.0,
        )
        config.write_text(yaml.safe_dump(values))

        daemon = subprocess.Popen(
            [*WOD, "-c", str(config), "serve"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        sock = settings.intake_socket
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert daemon.poll() is None, daemon.stderr.read()
            assert time.monotonic() < deadline, "the daemon did not open its socket"
            time.sleep(0.05)
        queue = JobQueue(settings.db_path)

        first = registry.create_customer(WORKSHOP, email="alice@example.com")
        mta.send(
            SENDER,
            f"{names.admin}@localhost",
            f"CREATE {first['studentId']} {first['id']} alice@example.com",
            WORKSHOP,
        )
        job = wait_done(queue, 1, mta.log())
        assert (job.status, job.request.channel) == ("done", "pipe"), (job.reason, job.output)

        second = registry.create_customer(WORKSHOP, email="bob@example.com")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            smtp.sendmail(
                SENDER,
                [f"{names.admin}@backend"],
                f"Subject: CREATE {second['studentId']} {second['id']} bob@example.com"
                f"\r\n\r\n{WORKSHOP}\r\n",
            )
        job = wait_done(queue, 2)
        assert (job.status, job.request.channel) == ("done", "smtp"), (job.reason, job.output)
        for customer in (first, second):
            home = settings.home(customer["studentId"])
            assert (home / WORKSHOP).is_dir()
            assert (home / WORKSHOP).stat().st_uid == names.base + customer["studentId"]
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            daemon.wait(60)
        if mta is not None:
            mta.stop()  # before its configuration folder goes
        names.remove()
        shutil.rmtree(root, ignore_errors=True)
