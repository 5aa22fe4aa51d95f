"""RESET (single and range, SPEC 3.3) and PURGE (SPEC 3.4) end to end through the api-db's
raw SMTP block, and every verb's idempotence (run twice = run once)."""

from __future__ import annotations

import pytest

from tests.plugins.lifecycle import (
    TRACES,
    participant_leaves_traces,
    read_env,
    record_hook,
    run_cells,
    state,
)
from tests.plugins.recorder import recording_registry

S101 = "WKSHP-Sample101"  # reset: false
S201 = "WKSHP-Sample201"  # reset: true, public reset hook


def create(backend, workshop, cust, stdid):
    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", workshop)
    assert job.status == "done", (job.reason, job.output)


def test_reset_runs_public_then_private_hooks_and_frees_the_seat(
    install_factory, backend_factory, tmp_path
):
    install = install_factory(private_scripts_dir=str(tmp_path / "private-scripts"))
    hooks = tmp_path / "hooks"
    record_hook(install, "reset", S201, hooks)
    record_hook(install, "reset", S201, hooks, folder=tmp_path / "private-scripts", label="private")
    backend = backend_factory(install)
    cust, stdid = backend.customer(S201)
    create(backend, S201, cust, stdid)
    home = install.home(stdid)
    participant_leaves_traces(home)
    session_password = backend.student(stdid)["password"]
    assert backend.run(f"CLEANUP {stdid} {cust['id']}", S201).status == "done"
    cleanup_password = backend.student(stdid)["password"]

    job = backend.run(f"RESET {stdid} {cust['id']}", S201)

    assert job.status == "done", (job.reason, job.output)
    assert (hooks / "order").read_text().splitlines() == [
        f"public reset {stdid}",
        f"private reset {stdid}",
    ]
    assert read_env(hooks / f"private-reset-{stdid}.env")["randompw"]
    env = read_env(hooks / f"reset-{stdid}.env")
    assert env["stdid"] == str(stdid) and env["w"] == S201 and env["randompw"]
    # A new password nobody has seen: neither the session's nor the cleanup's opens it.
    for old in (session_password, cleanup_password):
        assert not install.accounts.verify_password(stdid, old)
    assert install.accounts.verify_password(stdid, env["randompw"])
    assert backend.student(stdid)["assigned"] is False
    assert not (home / S201).exists()
    for trace in TRACES:
        assert not (home / trace).exists()
    names = [s.name for s in job.steps]
    assert names == ["workshop", "wait-cleaned", "password", "hub", "reset-hooks", "release"]
    assert "reset hook ran" in job.steps[names.index("reset-hooks")].output


def test_reset_of_a_range_restores_capacity_and_frees_every_seat(
    install_factory, backend_factory, registry, tmp_path
):
    with recording_registry(registry) as rec:
        install = install_factory(apidb_url=rec.url)
        hooks = tmp_path / "hooks"
        record_hook(install, "reset", S201, hooks)
        backend = backend_factory(install)
        seats = [backend.customer(S201, email=f"p{n}@example.com") for n in range(4)]
        assert [s for _, s in seats] == [1, 2, 3, 4]
        for _, stdid in seats:
            participant_leaves_traces(install.home(stdid))
        wid = registry.workshop_by_notebook(S201)["id"]
        rec.clear()

        job = backend.run(f"RESET 2,4 {seats[0][0]['id']}", S201)

        assert job.status == "done", (job.reason, job.output)
        assert registry.workshop(wid)["capacity"] == 3
        assert sorted((hooks / "order").read_text().splitlines()) == [
            "public reset 2",
            "public reset 3",
            "public reset 4",
        ]
        for stdid in (2, 3, 4):
            assert backend.student(stdid)["assigned"] is False
            assert not (install.home(stdid) / "notes.txt").exists()
            env = read_env(hooks / f"reset-{stdid}.env")
            assert install.accounts.verify_password(stdid, env["randompw"])
        # Seat 1 is outside the range: untouched.
        assert backend.student(1)["assigned"] is True
        assert (install.home(1) / "notes.txt").exists()
        puts = [(c.path, c.body) for c in rec.puts()]
        assert puts[0] == (f"/api/workshop/{wid}", {"capacity": 3})
        assert puts[1:] == [(f"/api/student/{n}", {"assigned": False}) for n in (2, 3, 4)]


def test_reset_of_a_workshop_that_is_not_resettable_is_refused(backend):
    cust, stdid = backend.customer(S101)
    create(backend, S101, cust, stdid)
    password = backend.student(stdid)["password"]
    job = backend.run(f"RESET {stdid} {cust['id']}", S101)
    assert job.status == "failed"
    assert f"{S101} is not resettable (its reset flag is false)" == job.reason
    assert job.attempts == 1
    # Nothing changed: the participant's session goes on.
    assert backend.install.accounts.verify_password(stdid, password)
    assert (backend.install.home(stdid) / S101).is_dir()
    assert backend.student(stdid)["assigned"] is True


def test_reset_without_any_reset_hook_fails_before_changing_anything(
    install_factory, backend_factory
):
    install = install_factory()
    (install.settings.scripts_dir / f"reset-{S201}.sh").unlink()
    backend = backend_factory(install)
    cust, stdid = backend.customer(S201)
    create(backend, S201, cust, stdid)
    password = backend.student(stdid)["password"]
    job = backend.run(f"RESET {stdid} {cust['id']}", S201)
    assert job.status == "failed"
    assert job.reason.startswith(f"no executable reset-{S201}.sh in ")
    assert str(install.settings.scripts_dir) in job.reason
    assert install.accounts.verify_password(stdid, password)
    assert (install.home(stdid) / S201).is_dir()


def test_purge_stops_unassigns_with_the_new_password_in_one_update_and_wipes(
    install_factory, backend_factory, registry
):
    with recording_registry(registry) as rec:
        install = install_factory(apidb_url=rec.url)
        backend = backend_factory(install)
        cust, stdid = backend.customer(S101)
        create(backend, S101, cust, stdid)
        home = install.home(stdid)
        participant_leaves_traces(home)
        old = backend.student(stdid)["password"]
        rec.clear()

        job = backend.run(f"PURGE {stdid} {cust['id']}", S101)

        assert job.status == "done", (job.reason, job.output)
        student = backend.student(stdid)
        assert student["assigned"] is False
        assert student["password"] != old
        assert install.accounts.verify_password(stdid, student["password"])
        assert not install.accounts.verify_password(stdid, old)
        assert not (home / S101).exists()
        for trace in TRACES:
            assert not (home / trace).exists()
        sid = install.settings.apidb_student_id(stdid)
        assert [(c.path, c.body) for c in rec.puts()] == [
            (f"/api/student/{sid}", {"assigned": False, "password": student["password"]})
        ]
        assert [s.name for s in job.steps] == [
            "workshop",
            "wait-cleaned",
            "hub",
            "password",
            "release",
        ]


# -- idempotence: every verb twice in a row ends as once ---------------------------------
def _prepare(backend, verb, workshop):
    """A seat in the state the verb is normally sent in; returns (subject, stdid,
    customer id)."""
    cust, stdid = backend.customer(workshop)
    if verb != "CREATE":
        create(backend, workshop, cust, stdid)
    if verb == "RESET":
        assert backend.run(f"CLEANUP {stdid} {cust['id']}", workshop).status == "done"
    subject = {
        "CREATE": f"CREATE {stdid} {cust['id']} {cust['email']}",
        "CLEANUP": f"CLEANUP {stdid} {cust['id']}",
        "RESET": f"RESET {stdid} {cust['id']}",
        "PURGE": f"PURGE {stdid} {cust['id']}",
    }[verb]
    return subject, stdid, cust["id"]


@pytest.mark.parametrize(
    "verb, workshop",
    [
        ("CREATE", S101),
        ("CLEANUP", S101),
        ("CLEANUP", S201),
        ("RESET", S201),
        ("PURGE", S101),
    ],
)
def test_each_verb_twice_ends_in_the_same_state_as_once(backend, verb, workshop):
    subject, stdid, customer = _prepare(backend, verb, workshop)
    if verb == "CLEANUP":
        run_cells(backend.install.home(stdid), workshop, 2)
    first = backend.run(subject, workshop)
    assert first.status == "done", (first.reason, first.output)
    once = state(backend, stdid, customer)
    second = backend.run(subject, workshop)
    assert second.status == "done", (second.reason, second.output)
    twice = state(backend, stdid, customer)
    assert twice == once
    if verb == "CLEANUP":
        # 2 of 4 code cells (Sample101), 2 of 2 (Sample201); a repeated CLEANUP of a
        # wiped seat keeps the ratio reported by the first.
        assert twice["completion"] == (50 if workshop == S101 else 100)
        assert twice["cleaned"] is True
    if verb in ("CREATE", "CLEANUP"):
        assert twice["password_works"] is True
