"""Ordering between requests (SPEC 3.5) and bad input, end to end through the api-db's raw
SMTP block: one student's jobs run in arrival order, the api-db ``cleaned`` poll is a
bounded fallback that never blocks other students, and malformed requests are refused."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.plugins.lifecycle import run_cells, write_hook
from wod.registry.models import Customer
from wod.requests import Request, Verb

S101 = "WKSHP-Sample101"  # reset: false
S201 = "WKSHP-Sample201"  # reset: true


def create(backend, workshop, cust, stdid):
    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", workshop)
    assert job.status == "done", (job.reason, job.output)
    return job


def by_id(jobs, job_id):
    return next(j for j in jobs if j.id == job_id)


def send_in_a_row(backend, subjects, workshop):
    """Send each mail as soon as the previous one is on record (arrival order is then the
    send order; separate connections are otherwise handled concurrently)."""
    for subject in subjects:
        count = len(backend.queue.jobs(limit=10_000))
        backend.send(subject, workshop)
        backend.wait_until(lambda js, n=count: len(js) > n, timeout=5)


def _slow_cleanup(install, workshop):
    write_hook(install.settings.scripts_dir, "cleanup", workshop, "sleep 0.8\necho cleaned up")


def test_purge_sent_with_a_cleanup_runs_after_it(install_factory, backend_factory):
    install = install_factory(workers=2)
    _slow_cleanup(install, S101)
    backend = backend_factory(install)
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)

    # The api-db's 10-minute "welcome" timeout sends both in the same instant (two
    # connections: the second mail follows as soon as the first is on record).
    send_in_a_row(backend, [f"CLEANUP {stdid} {cust['id']}", f"PURGE {stdid} {cust['id']}"], S101)
    jobs = backend.wait(3, timeout=30)

    cleanup, purge = jobs[1], jobs[2]
    assert (cleanup.verb, purge.verb) == ("CLEANUP", "PURGE")
    assert (cleanup.status, purge.status) == ("done", "done"), (cleanup.reason, purge.reason)
    assert purge.created < cleanup.finished  # it arrived while the CLEANUP was running
    assert purge.started >= cleanup.finished
    # The later request wins: the PURGE's password is the one the registry holds.
    student = backend.student(stdid)
    assert student["assigned"] is False
    assert install.accounts.verify_password(stdid, student["password"])
    assert install.registry.customer(cust["id"])["cleaned"] is True


def test_reset_sent_with_a_cleanup_runs_after_it(install_factory, backend_factory):
    install = install_factory(workers=2)
    _slow_cleanup(install, S201)
    backend = backend_factory(install)
    cust, stdid = backend.customer(S201)
    create(backend, S201, cust, stdid)

    send_in_a_row(backend, [f"CLEANUP {stdid} {cust['id']}", f"RESET {stdid} {cust['id']}"], S201)
    jobs = backend.wait(3, timeout=30)

    cleanup, reset = jobs[1], jobs[2]
    assert (cleanup.verb, reset.verb) == ("CLEANUP", "RESET")
    assert (cleanup.status, reset.status) == ("done", "done"), (cleanup.reason, reset.reason)
    assert reset.created < cleanup.finished
    assert reset.started >= cleanup.finished
    # The CLEANUP kept the seat for the RESET, which then freed it.
    assert backend.student(stdid)["assigned"] is False
    assert not (install.home(stdid) / S201).exists()


def test_purge_waits_for_the_api_db_to_report_cleaned_without_blocking_others(
    install_factory, backend_factory
):
    install = install_factory(workers=1, cleaned_poll_timeout=30.0, cleaned_poll_interval=0.2)
    backend = backend_factory(install)
    reg = install.registry
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)
    assert reg.customer(cust["id"])["cleaned"] is False

    backend.send(f"PURGE {stdid} {cust['id']}", S101)
    jobs = backend.wait_until(
        lambda js: len(js) == 2 and js[1].status == "queued" and "not cleaned" in js[1].reason
    )
    purge_id = jobs[1].id

    # Another student's CREATE runs meanwhile, even with a single worker.
    other, other_stdid = backend.customer(S101, email="bob@example.com")
    assert other_stdid != stdid
    backend.send(f"CREATE {other_stdid} {other['id']} bob@example.com", S101)
    jobs = backend.wait_until(lambda js: len(js) == 3 and js[2].status in ("done", "failed"))
    assert jobs[2].status == "done", jobs[2].reason
    assert by_id(jobs, purge_id).status in ("queued", "running")  # still polling
    assert backend.student(stdid)["assigned"] is True

    reg.set_fields(Customer, cust["id"], cleaned=True)
    jobs = backend.wait(3, timeout=20)
    purge = by_id(jobs, purge_id)
    assert purge.status == "done", purge.reason
    assert purge.attempts == 1  # waiting used no attempt
    waits = [s for s in purge.steps if s.name == "wait-cleaned"]
    assert waits[0].status == "waiting" and waits[-1].status == "done"
    assert backend.student(stdid)["assigned"] is False


@pytest.mark.parametrize("verb,workshop", [("PURGE", S101), ("RESET", S201)])
def test_purge_or_reset_received_before_the_cleanup_lets_it_run_first(
    install_factory, backend_factory, verb, workshop
):
    """The api-db sends the PURGE (or RESET) first and the seat's CLEANUP after it: the
    CLEANUP runs first (the completion is reported, the customer cleaned), and the PURGE
    does not wait the cleaned_poll_timeout on the api-db."""
    install = install_factory(workers=1, cleaned_poll_timeout=120.0, cleaned_poll_interval=0.2)
    backend = backend_factory(install)
    cust, stdid = backend.customer(workshop)
    create(backend, workshop, cust, stdid)
    executed, total = run_cells(install.home(stdid), workshop, 2)

    backend.send(f"{verb} {stdid} {cust['id']}", workshop)
    backend.wait_until(lambda js: len(js) == 2 and "not cleaned" in js[1].reason, timeout=20)
    backend.send(f"CLEANUP {stdid} {cust['id']}", workshop)
    jobs = backend.wait(3, timeout=30)

    first, cleanup = jobs[1], jobs[2]
    assert (first.verb, cleanup.verb) == (verb, "CLEANUP")
    assert (first.status, cleanup.status) == ("done", "done"), (first.reason, cleanup.reason)
    assert first.finished > cleanup.finished  # the CLEANUP ran first
    assert first.finished - first.created < 20  # not the 120 s poll timeout
    assert first.attempts == 1
    customer = install.registry.customer(cust["id"])
    assert customer["cleaned"] is True
    assert customer["completionPercentage"] == round(100 * executed / total)
    assert backend.student(stdid)["assigned"] is False


def test_purge_proceeds_after_the_cleaned_poll_timeout(install_factory, backend_factory):
    install = install_factory(cleaned_poll_timeout=1.5, cleaned_poll_interval=0.3)
    backend = backend_factory(install)
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)

    purge = backend.run(f"PURGE {stdid} {cust['id']}", S101, timeout=20)

    assert purge.status == "done", purge.reason
    assert purge.finished - purge.created >= 1.5
    # One row for all the polls, with their count and time span (not two rows a poll).
    [waited] = [s for s in purge.steps if s.status == "waiting"]
    assert waited.name == "wait-cleaned" and waited.count >= 3
    assert waited.seconds >= 0.3 * (waited.count - 1)
    assert "not cleaned yet" in waited.output
    names = [s.name for s in purge.steps]
    assert names[0] == "wait-cleaned" and names.count("workshop") == 1
    assert names.count("wait-cleaned") == 2  # the waits, then the poll that went through
    assert backend.student(stdid)["assigned"] is False


# -- bad input ---------------------------------------------------------------------------
def test_malformed_reset_and_purge_are_refused_at_intake(backend):
    cust, _ = backend.customer(S201)
    cid = cust["id"]
    subjects = [f"RESET 5,3 {cid}", f"RESET 0,3 {cid}", f"RESET 3,99 {cid}", f"PURGE 2,3 {cid}"]
    for subject in subjects:
        backend.send(subject, S201)
    deadline = time.monotonic() + 10
    while len(backend.queue.rejections()) < len(subjects) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The four connections are handled concurrently: compare without order.
    reasons = sorted(r.reason for r in backend.queue.rejections())
    assert reasons == [
        "PURGE takes one student id, not a range",
        "range 5,3 is reversed: expected <min>,<max>",
        "range end 99 is outside this backend's range 1-8",
        "range start 0 is outside this backend's range 1-8",
    ]
    assert backend.queue.jobs() == []


def test_cleanup_of_a_seat_whose_home_is_missing_fails_clearly(backend):
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)
    shutil.rmtree(backend.install.home(stdid))
    job = backend.run(f"CLEANUP {stdid} {cust['id']}", S101)
    assert job.status == "failed"
    assert f"home {backend.install.home(stdid)} is missing" in job.reason
    assert "Traceback" not in job.reason + job.output
    assert backend.install.registry.customer(cust["id"])["cleaned"] is False


def test_a_hanging_hook_is_killed_at_the_timeout_and_fails_the_job(
    install_factory, backend_factory
):
    install = install_factory(hook_timeout=1.0)
    write_hook(
        install.settings.scripts_dir,
        "cleanup",
        S101,
        "echo 'contacting the appliance'\nsleep 60\necho never",
    )
    backend = backend_factory(install)
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)

    job = backend.run(f"CLEANUP {stdid} {cust['id']}", S101, timeout=30)

    assert job.status == "failed"
    assert job.reason == f"hook cleanup-{S101}.sh killed after 1 s timeout"
    assert "contacting the appliance" in job.output
    assert "never" not in job.output
    assert job.seconds < 10
    assert install.registry.customer(cust["id"])["cleaned"] is False


def test_purge_with_the_api_dbs_object_promise_student_id_is_recovered(backend):
    # The current api-db sends "PURGE [object Promise] <customer>" (SPEC 2.2).
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)
    job = backend.run(f"PURGE [object Promise] {cust['id']}", S101)
    assert job.status == "done", (job.reason, job.output)
    assert job.request.stdid == stdid
    recovered = next(s for s in job.steps if s.name == "recover-student")
    assert recovered.output == f"student {stdid} recovered from customer {cust['id']}"
    assert backend.student(stdid)["assigned"] is False
    assert not (backend.install.home(stdid) / S101).exists()


def test_a_stored_request_the_lifecycle_cannot_act_on_fails_with_a_reason(backend):
    """A request that reached the queue without one student (written by another tool, or an
    older release) fails with a readable reason and changes nothing; no assertion error."""
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)
    backend.queue.submit(Request(Verb.PURGE, stdid, cust["id"], S101, stdid_max=stdid + 1))
    backend.queue.submit(Request(Verb.CLEANUP, None, cust["id"], S101))
    jobs = backend.wait(3)
    assert [(j.status, j.reason) for j in jobs[1:]] == [
        ("failed", "PURGE takes one student id, not a range"),
        ("failed", "CLEANUP has no student id to act on"),
    ]
    assert backend.student(stdid)["assigned"] is True
