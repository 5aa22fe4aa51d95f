"""Full seat cycles with real Linux accounts (root): CREATE -> CLEANUP -> CREATE and
CREATE -> CLEANUP -> RESET -> CREATE, plus PURGE, each killing the student's leftover
processes and leaving a clean, correctly owned home with a working password."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.plugins.lifecycle import TRACES, participant_leaves_traces, record_hook

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="real Linux accounts need root"),
]

S101 = "WKSHP-Sample101"  # reset: false
S201 = "WKSHP-Sample201"  # reset: true


def leftover_process(install, stdid: int) -> subprocess.Popen:
    """A process the participant left running (as the student's uid and gid)."""
    uid, gid = install.accounts.uid(stdid), install.accounts.gid(stdid)
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sleep", "300"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while not install.accounts.processes(stdid):
        assert time.monotonic() < deadline, "the leftover process did not start"
        time.sleep(0.02)
    return proc


def assert_killed(proc: subprocess.Popen) -> None:
    try:
        assert proc.wait(timeout=5) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def create(backend, workshop, cust, stdid):
    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", workshop)
    assert job.status == "done", (job.reason, job.output)
    install = backend.install
    home = install.home(stdid)
    uid = install.accounts.uid(stdid)
    assert home.stat().st_uid == uid
    assert (home / workshop / "0-ReadMeFirst.ipynb").stat().st_uid == uid
    for trace in TRACES:
        assert not (home / trace).exists()
    password = backend.student(stdid)["password"]
    assert install.accounts.verify_password(stdid, password)
    return password


def test_full_seat_cycles_with_real_accounts(install_factory, backend_factory, tmp_path):
    install = install_factory(accounts="system")
    # Hooks that record outside the homes (the bundled ones write into the student home).
    for script in install.settings.scripts_dir.glob("*.sh"):
        script.unlink()
    record_hook(install, "reset", S201, tmp_path / "hooks")
    backend = backend_factory(install)
    accounts = install.accounts

    # CREATE -> CLEANUP -> CREATE (reset: false)
    first, s1 = backend.customer(S101, email="first@example.com")
    old = create(backend, S101, first, s1)
    participant_leaves_traces(install.home(s1))
    proc = leftover_process(install, s1)
    job = backend.run(f"CLEANUP {s1} {first['id']}", S101)
    assert job.status == "done", (job.reason, job.output)
    assert_killed(proc)
    assert accounts.processes(s1) == []
    assert backend.student(s1)["assigned"] is False
    second, again = backend.customer(S101, email="second@example.com")
    assert again == s1
    new = create(backend, S101, second, s1)
    assert new != old and not accounts.verify_password(s1, old)

    # CREATE -> CLEANUP -> RESET -> CREATE (reset: true)
    third, s2 = backend.customer(S201, email="third@example.com")
    old = create(backend, S201, third, s2)
    participant_leaves_traces(install.home(s2))
    assert backend.run(f"CLEANUP {s2} {third['id']}", S201).status == "done"
    assert backend.student(s2)["assigned"] is True
    proc = leftover_process(install, s2)
    job = backend.run(f"RESET {s2} {third['id']}", S201)
    assert job.status == "done", (job.reason, job.output)
    assert_killed(proc)
    assert backend.student(s2)["assigned"] is False
    fourth, again = backend.customer(S201, email="fourth@example.com")
    assert again == s2
    new = create(backend, S201, fourth, s2)
    assert not accounts.verify_password(s2, old)

    # PURGE of a seat whose participant left a process behind.
    proc = leftover_process(install, s2)
    job = backend.run(f"PURGE {s2} {fourth['id']}", S201)
    assert job.status == "done", (job.reason, job.output)
    assert_killed(proc)
    student = backend.student(s2)
    assert student["assigned"] is False
    assert accounts.verify_password(s2, student["password"])
    assert not (install.home(s2) / S201).exists()
    assert install.home(s2).stat().st_uid == accounts.uid(s2)
