"""CREATE end to end: a mail byte for byte as the api-db sends it, over real SMTP, to a
student with deployed, personalised notebooks, a new password, and the registry told the
participant is active — plus the failure modes that must leave the seat consistent."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.plugins.paths import get_free_port
from wod.registry.models import Customer
from wod.services.hooks import Hooks

WORKSHOP = "WKSHP-Sample101"


def customer_for(backend, workshop: str = WORKSHOP, **fields) -> dict:
    return backend.install.registry.create_customer(workshop, email="alice@example.com", **fields)


def stdid_of(backend, customer: dict) -> int:
    return customer["studentId"] - backend.settings.base_stdid


def test_create_deploys_and_reports_active(backend):
    reg = backend.install.registry
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)

    job = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)

    assert job.status == "done", (job.reason, job.output)
    home = backend.install.home(stdid)
    notebook = (home / WORKSHOP / "0-ReadMeFirst.ipynb").read_text()
    assert "{{" not in notebook.replace("{{ '{{' }}", "")
    assert f"student{stdid}" in notebook or str(stdid) in notebook
    json.loads(notebook)  # rendered notebooks are valid JSON
    checkpoint = home / WORKSHOP / ".ipynb_checkpoints" / "0-ReadMeFirst-checkpoint.ipynb"
    assert checkpoint.read_bytes() == (home / WORKSHOP / "0-ReadMeFirst.ipynb").read_bytes()
    workspace = home / ".jupyter/lab/workspaces/default-37a8.jupyterlab-workspace"
    assert f"{WORKSHOP}/0-ReadMeFirst.ipynb" in workspace.read_text()
    assert any((home / ".ssh").glob("id_*.pub"))

    student = reg.student(cust["studentId"])
    customer = reg.customer(cust["id"])
    assert customer["active"] is True
    password = student["password"]
    assert password and len(password) == backend.settings.password_length
    assert backend.install.accounts.verify_password(stdid, password)
    # The password reaches the notebook that asks for it, and never the job record.
    assert any(password in p.read_text() for p in (home / WORKSHOP).glob("*.ipynb"))
    shown = json.dumps(backend.queue.job(job.id).to_dict(steps=True))
    assert password not in shown

    names = [s.name for s in job.steps]
    for step in (
        "workshop",
        "password",
        "erase",
        "appliance",
        "deploy",
        "post-copy",
        "report",
        "hub",
    ):
        assert step in names


def test_create_twice_is_idempotent(backend):
    """The api-db re-sends a CREATE it believes lost: the repeat leaves the participant's
    session alone (their work, the password they were mailed)."""
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)
    subject = f"CREATE {stdid} {cust['id']} alice@example.com"
    first = backend.run(subject, WORKSHOP)
    mailed = backend.install.registry.student(cust["studentId"])["password"]
    work = backend.install.home(stdid) / WORKSHOP / "my-notes.txt"
    work.write_text("the participant's work")
    second = backend.run(subject, WORKSHOP)
    assert (first.status, second.status) == ("done", "done")
    assert any(f"repeats job {first.id}" in s.output for s in second.steps)
    assert work.read_text() == "the participant's work"
    assert backend.install.registry.student(cust["studentId"])["password"] == mailed
    assert backend.install.accounts.verify_password(stdid, mailed)


def test_create_after_a_failed_create_or_for_another_customer_redeploys(backend):
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)
    first = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    assert first.status == "done"
    (backend.install.home(stdid) / "leftover.txt").write_text("from the first participant")
    # The first participant's session ended (the api-db no longer has them active) and
    # the seat is given to someone else (a new customer): a full CREATE, home wiped.
    backend.install.registry.set_fields(Customer, cust["id"], active=False)
    other = backend.install.registry.create_customer(WORKSHOP, email="bob@example.com")
    second = backend.run(f"CREATE {stdid} {other['id']} bob@example.com", WORKSHOP)
    assert second.status == "done", (second.reason, second.output)
    assert not (backend.install.home(stdid) / "leftover.txt").exists()
    password = backend.install.registry.student(cust["studentId"])["password"]
    assert backend.install.accounts.verify_password(stdid, password)


def test_unknown_workshop_in_the_api_db_fails_cleanly(backend, tmp_path):
    # A folder exists locally but the api-db has no such workshop: nothing is changed.
    folder = backend.settings.notebooks_dir / "WKSHP-Ghost"
    folder.mkdir()
    (folder / "0-ReadMeFirst.ipynb").write_text("{}")
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)
    job = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", "WKSHP-Ghost")
    assert job.status == "failed"
    assert "WKSHP-Ghost" in job.reason
    assert not (backend.install.home(stdid) / "WKSHP-Ghost").exists()


def test_missing_workshop_folder_is_rejected(backend):
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)
    job = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", "WKSHP-Nowhere")
    assert job.status == "failed"
    assert "WKSHP-Nowhere" in job.reason


def test_failing_hook_fails_the_job_with_its_output(install_factory, backend_factory):
    install = install_factory()
    script = install.settings.scripts_dir / f"post-copy-{WORKSHOP}.sh"
    script.write_text("#!/bin/sh\necho 'appliance refused the key' >&2\nexit 3\n")
    script.chmod(0o755)
    backend = backend_factory(install)
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)
    job = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    assert job.status == "failed"
    assert "exited with status 3" in job.reason
    assert "appliance refused the key" in job.output or any(
        "appliance refused the key" in s.output for s in job.steps
    )
    # The participant was not told the seat is ready.
    assert install.registry.customer(cust["id"])["active"] is not True
    assert Hooks(install.settings).scripts("post-copy", WORKSHOP) == [script]


def test_api_db_down_job_waits_and_is_not_lost(install_factory, backend_factory, registry):
    install = install_factory(apidb_url="http://127.0.0.1:9/api", retry_max_attempts=3)
    backend = backend_factory(install)
    backend.send("CREATE 2 5 bob@example.com", WORKSHOP)
    job = backend.wait(1, timeout=30)[-1]
    assert job.status == "failed"
    assert job.attempts == 3
    assert "gave up after 3 attempts" in job.reason
    # The request is still on record and can be retried once the api-db is back.
    assert backend.queue.job(job.id).request.workshop == WORKSHOP


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="real Linux accounts need root")
def test_create_with_real_linux_accounts(install_factory, backend_factory):
    install = install_factory(accounts="system")
    backend = backend_factory(install)
    cust = customer_for(backend)
    stdid = stdid_of(backend, cust)
    job = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    assert job.status == "done", (job.reason, job.output)
    home = install.home(stdid)
    uid = install.accounts.uid(stdid)
    deployed = home / WORKSHOP / "0-ReadMeFirst.ipynb"
    assert deployed.stat().st_uid == uid
    password = install.registry.student(cust["studentId"])["password"]
    assert install.accounts.verify_password(stdid, password)


def test_hub_down_after_the_report_keeps_the_password_the_api_db_was_given(
    install_factory, backend_factory
):
    """In upstream's order (``hub_start_before_active: false``): once the api-db has the
    password and ``active`` (it may mail the participant at any tick), retrying the CREATE
    for the hub must not change the password: only the server start is retried."""
    hub_port = get_free_port()  # the hub is down: nothing listens there
    install = install_factory(
        hub_url=f"http://127.0.0.1:{hub_port}",
        retry_max_attempts=3,
        retry_base_delay=1.0,
        hub_start_before_active=False,
    )
    backend = backend_factory(install)
    cust, stdid = backend.customer(WORKSHOP)
    before = backend.student(stdid)["password"]

    backend.send(f"CREATE {stdid} {cust['id']} {cust['email']}", WORKSHOP)
    deadline = time.monotonic() + 20
    # The first attempt reports the password, then the customer active (the api-db mails).
    while not install.registry.customer(cust["id"])["active"]:
        assert time.monotonic() < deadline, "the seat was never reported"
        time.sleep(0.02)
    mailed = backend.student(stdid)["password"]
    assert mailed != before
    job = backend.wait(1, timeout=30)[-1]

    assert job.status == "failed" and job.attempts == 3, (job.reason, job.output)
    assert "hub unreachable" in job.reason
    assert backend.student(stdid)["password"] == mailed
    assert install.accounts.verify_password(stdid, mailed)  # the mailed password opens it
    assert [s.attempt for s in job.steps if s.name == "report"] == [1]
    assert [s.status for s in job.steps if s.name == "hub"] == ["retry"] * 3
    # An admin's retry (after fixing the cause) prepares the seat again from the start.
    backend.queue.retry(job.id)
    again = backend.wait(1, timeout=30)[-1]
    assert [s.attempt for s in again.steps if s.name == "report"] == [1, 4]
    assert install.accounts.verify_password(stdid, backend.student(stdid)["password"])


def test_hub_down_the_participant_is_never_reported_active(install_factory, backend_factory):
    """Default order: the password is reported once, but ``active`` (after which the api-db
    mails the link) waits for the hub server; a hub still down at ``hub_active_deadline``
    fails the job before its attempts run out, the customer never active, so the api-db's
    stuck-seat handling takes over."""
    hub_port = get_free_port()  # the hub is down: nothing listens there
    install = install_factory(
        hub_url=f"http://127.0.0.1:{hub_port}",
        retry_max_attempts=50,
        retry_base_delay=0.3,
        retry_max_delay=0.3,
        hub_active_deadline=3.0,
    )
    backend = backend_factory(install)
    cust, stdid = backend.customer(WORKSHOP)
    before = backend.student(stdid)["password"]

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", WORKSHOP, timeout=30)

    assert job.status == "failed", (job.reason, job.output)
    assert "hub unreachable" in job.reason and "hub_active_deadline" in job.reason
    assert 1 < job.attempts < 50
    assert install.registry.customer(cust["id"])["active"] is False
    reported = backend.student(stdid)["password"]
    assert reported != before and install.accounts.verify_password(stdid, reported)
    assert [s.attempt for s in job.steps if s.name == "report"] == [1]
    assert not [s for s in job.steps if s.name == "active"]
