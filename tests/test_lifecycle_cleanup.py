"""CLEANUP end to end (SPEC 3.2) through the api-db's raw SMTP block: new password, hooks,
completion, the api-db calls in order, and the seat kept or freed by the workshop's reset
flag; plus the full seat cycles (a seat is clean for the next participant)."""

from __future__ import annotations

import json

from tests.plugins.lifecycle import (
    TRACES,
    listing,
    participant_leaves_traces,
    read_env,
    record_hook,
    run_cells,
)
from tests.plugins.recorder import recording_registry
from wod.content.service import Content

S101 = "WKSHP-Sample101"  # reset: false, varpass: true
S201 = "WKSHP-Sample201"  # reset: true


def create(backend, workshop, cust, stdid):
    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", workshop)
    assert job.status == "done", (job.reason, job.output)
    return job


def test_cleanup_of_a_non_resettable_workshop_scores_and_frees_the_seat(
    install_factory, backend_factory, registry, tmp_path
):
    with recording_registry(registry) as rec:
        install = install_factory(apidb_url=rec.url)
        hooks = tmp_path / "hooks"
        record_hook(install, "cleanup", S101, hooks)
        backend = backend_factory(install)
        cust, stdid = backend.customer(S101)
        create(backend, S101, cust, stdid)
        home = install.home(stdid)
        old_password = backend.student(stdid)["password"]
        ran, total = run_cells(home, S101, 3)
        assert (ran, total) == (3, 4)
        participant_leaves_traces(home)
        rec.clear()

        job = backend.run(f"CLEANUP {stdid} {cust['id']}", S101)

        assert job.status == "done", (job.reason, job.output)
        customer = registry.customer(cust["id"])
        assert customer["completionPercentage"] == 75
        assert customer["cleaned"] is True
        student = backend.student(stdid)
        assert student["assigned"] is False
        new_password = student["password"]
        assert new_password != old_password
        assert install.accounts.verify_password(stdid, new_password)
        assert not install.accounts.verify_password(stdid, old_password)
        # varpass: the templates' PASSSTU follows the account's password.
        assert Content(install.settings).variables(S101, stdid)["PASSSTU"] == new_password
        # The home is wiped and re-seeded: skeleton and a fresh key pair, nothing else.
        assert not (home / S101).exists()
        for trace in TRACES:
            assert not (home / trace).exists()
        assert (home / ".bashrc").is_file()
        assert any((home / ".ssh").glob("id_*.pub"))
        # The cleanup hook ran with the SPEC 5 environment.
        env = read_env(hooks / f"cleanup-{stdid}.env")
        assert env["stdid"] == str(stdid)
        assert env["w"] == env["ws"] == S101
        assert env["wid"] == str(registry.workshop_by_notebook(S101)["id"])
        assert env["randompw"] == new_password
        assert env["accessToken"]
        assert env["WODAPIDBEXTURL"] == rec.url
        assert "WODRTARGET" not in env  # no appliance for this workshop
        # The api-db hears, in this order: completion, password, unassigned, cleaned.
        puts = [(c.path, c.body) for c in rec.puts()]
        sid, cid = install.settings.apidb_student_id(stdid), cust["id"]
        assert puts == [
            (f"/api/customer/{cid}", {"completionPercentage": 75}),
            (f"/api/student/{sid}", {"password": new_password}),
            (f"/api/student/{sid}", {"assigned": False}),
            (f"/api/customer/{cid}", {"cleaned": True}),
        ]
        names = [s.name for s in job.steps]
        assert names == [
            "workshop",
            "password",
            "cleanup-hooks",
            "completion",
            "hub",
            "report",
            "release",
            "cleaned",
        ]
        # The password never reaches the job record.
        assert new_password not in json.dumps(backend.queue.job(job.id).to_dict(steps=True))


def test_cleanup_of_a_resettable_workshop_keeps_the_seat_for_its_reset(
    install_factory, backend_factory, registry
):
    with recording_registry(registry) as rec:
        install = install_factory(apidb_url=rec.url)
        backend = backend_factory(install)
        cust, stdid = backend.customer(S201)
        create(backend, S201, cust, stdid)
        home = install.home(stdid)
        assert run_cells(home, S201, 1) == (1, 2)
        rec.clear()

        job = backend.run(f"CLEANUP {stdid} {cust['id']}", S201)

        assert job.status == "done", (job.reason, job.output)
        customer = registry.customer(cust["id"])
        assert (customer["active"], customer["cleaned"]) == (False, True)
        assert customer["completionPercentage"] == 50
        student = backend.student(stdid)
        assert student["assigned"] is True
        assert install.accounts.verify_password(stdid, student["password"])
        # Not wiped: the RESET that follows does that.
        assert (home / S201 / "1-Lab.ipynb").is_file()
        sid, cid = install.settings.apidb_student_id(stdid), cust["id"]
        assert [(c.path, c.body) for c in rec.puts()] == [
            (f"/api/customer/{cid}", {"completionPercentage": 50}),
            (f"/api/student/{sid}", {"password": student["password"]}),
            (f"/api/student/{sid}", {"assigned": True}),
            (f"/api/customer/{cid}", {"active": False}),
            (f"/api/customer/{cid}", {"cleaned": True}),
        ]


def test_full_cycle_create_cleanup_create_leaves_the_seat_clean(backend):
    reg = backend.install.registry
    first, stdid = backend.customer(S101, email="first@example.com")
    create(backend, S101, first, stdid)
    home = backend.install.home(stdid)
    participant_leaves_traces(home)
    first_password = backend.student(stdid)["password"]
    job = backend.run(f"CLEANUP {stdid} {first['id']}", S101)
    assert job.status == "done", job.reason
    assert [p for p in listing(home) if not p.startswith(".ssh/")] == [".bashrc", ".ssh"]

    # The registry gives the freed seat to the next participant.
    second, again = backend.customer(S101, email="second@example.com")
    assert again == stdid
    create(backend, S101, second, stdid)

    for trace in TRACES:
        assert not (home / trace).exists()
    password = backend.student(stdid)["password"]
    assert password != first_password
    assert backend.install.accounts.verify_password(stdid, password)
    assert not backend.install.accounts.verify_password(stdid, first_password)
    notebook = (home / S101 / "1-Sample-Notebook.ipynb").read_text()
    assert password in notebook and first_password not in notebook
    assert backend.student(stdid)["assigned"] is True
    assert reg.customer(second["id"])["active"] is True
    assert reg.customer(first["id"])["cleaned"] is True


def test_full_cycle_create_cleanup_reset_create_leaves_the_seat_clean(backend):
    reg = backend.install.registry
    first, stdid = backend.customer(S201, email="first@example.com")
    create(backend, S201, first, stdid)
    home = backend.install.home(stdid)
    participant_leaves_traces(home)
    first_password = backend.student(stdid)["password"]

    assert backend.run(f"CLEANUP {stdid} {first['id']}", S201).status == "done"
    assert backend.student(stdid)["assigned"] is True  # kept for the reset
    job = backend.run(f"RESET {stdid} {first['id']}", S201)
    assert job.status == "done", (job.reason, job.output)
    assert backend.student(stdid)["assigned"] is False
    assert not (home / S201).exists()
    assert not backend.install.accounts.verify_password(stdid, first_password)

    second, again = backend.customer(S201, email="second@example.com")
    assert again == stdid
    create(backend, S201, second, stdid)
    for trace in TRACES:
        assert not (home / trace).exists()
    assert (home / S201 / "lab-setup.sh").is_file()
    password = backend.student(stdid)["password"]
    assert password != first_password
    assert backend.install.accounts.verify_password(stdid, password)
    assert reg.customer(second["id"])["active"] is True
