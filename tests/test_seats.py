"""``wod seats``: the real CLI over the real job database of a backend that ran a few
requests shows each seat's state, workshop, customer and last job."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.plugins.lifecycle import write_hook
from tests.plugins.paths import ROOT
from wod.registry.models import Customer

S101 = "WKSHP-Sample101"  # reset: false
S201 = "WKSHP-Sample201"  # reset: true


def wod(install, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "wod", "-c", str(install.config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(install.root)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_seats_shows_each_seat_state_and_last_job(backend):
    a, s1 = backend.customer(S101, email="a@example.com")
    b, s2 = backend.customer(S101, email="b@example.com")
    c, s3 = backend.customer(S101, email="c@example.com")
    d, s4 = backend.customer(S201, email="d@example.com")
    assert (s1, s2, s3, s4) == (1, 2, 3, 4)
    runs = [
        (f"CREATE 1 {a['id']} a@example.com", S101),
        (f"CREATE 2 {b['id']} b@example.com", S101),
        (f"CLEANUP 2 {b['id']}", S101),
        (f"CREATE 3 {c['id']} c@example.com", "WKSHP-Nowhere"),
        (f"CREATE 4 {d['id']} d@example.com", S201),
        (f"CLEANUP 4 {d['id']}", S201),
        (f"RESET 4 {d['id']}", S201),
    ]
    jobs = [backend.run(subject, workshop) for subject, workshop in runs]
    assert [j.status for j in jobs] == ["done"] * 3 + ["failed"] + ["done"] * 3
    # A deployment that really fails: the create hook exits 3 after the seat was wiped.
    write_hook(backend.install.settings.scripts_dir, "create", S201, "exit 3")
    e, _ = backend.customer(S201, email="e@example.com")
    jobs.append(backend.run(f"CREATE 5 {e['id']} e@example.com", S201))
    assert jobs[-1].status == "failed"

    table = {row["stdid"]: row for row in json.loads(wod(backend.install, "seats", "--json"))}

    assert sorted(table) == list(range(1, 9))  # the configured range
    assert table[1]["state"] == "in use"
    assert (table[1]["workshop"], table[1]["customer"]) == (S101, a["id"])
    assert table[1]["last_job"]["id"] == jobs[0].id
    assert table[2]["state"] == "cleaned"
    assert {k: table[2]["last_job"][k] for k in ("id", "verb", "status", "reason", "finished")} == {
        "id": jobs[2].id,
        "verb": "CLEANUP",
        "status": "done",
        "reason": "",
        "finished": jobs[2].finished,
    }
    # Refused for an unknown workshop: the seat was never touched.
    assert table[3]["state"] == "free"
    assert (table[3]["workshop"], table[3]["customer"]) == ("", None)
    assert table[3]["last_job"]["status"] == "failed"
    assert "WKSHP-Nowhere" in table[3]["last_job"]["reason"]
    assert table[4]["state"] == "free"
    assert (table[4]["workshop"], table[4]["customer"]) == ("", None)
    assert table[4]["last_job"]["verb"] == "RESET"
    assert table[5]["state"] == "deployment failed"
    assert (table[5]["workshop"], table[5]["customer"]) == (S201, e["id"])
    assert table[6]["state"] == "free" and table[6]["last_job"] is None
    assert all(row["home"] for row in table.values())
    assert table[1]["account"] == "student1"

    text = wod(backend.install, "seats").splitlines()
    assert text[0].split()[:4] == ["SEAT", "ACCOUNT", "HOME", "STATE"]
    rows = {int(line.split()[0]): line for line in text[1:]}
    assert "in use" in rows[1] and S101 in rows[1] and f"#{jobs[0].id} CREATE done" in rows[1]
    assert f"#{jobs[2].id} CLEANUP done" in rows[2]
    assert f"#{jobs[3].id} CREATE failed" in rows[3] and "deployment failed" not in rows[3]
    assert f"#{jobs[6].id} RESET done" in rows[4]
    assert f"#{jobs[7].id} CREATE failed" in rows[5] and "deployment failed" in rows[5]
    assert rows[6].rstrip().endswith("-")


def test_a_create_for_a_seat_another_active_participant_holds_is_refused(backend):
    """The api-db hands one seat to two simultaneous registrations: the second CREATE must
    not wipe the first participant's live session; once the api-db says the first one is
    gone, the seat is prepared for the second as usual."""
    reg = backend.install.registry
    first, stdid = backend.customer(S101, email="first@example.com")
    second, _ = backend.customer(S101, email="second@example.com")
    job = backend.run(f"CREATE {stdid} {first['id']} first@example.com", S101)
    assert job.status == "done", job.reason
    assert reg.customer(first["id"])["active"] is True
    home = backend.install.home(stdid)
    (home / S101 / "my-work.txt").write_text("first participant's work")
    password = backend.student(stdid)["password"]

    refused = backend.run(f"CREATE {stdid} {second['id']} second@example.com", S101)

    assert refused.status == "failed"
    assert refused.reason == (
        f"seat {stdid} is busy: customer {first['id']} is still active there (never cleaned); "
        f"refused CREATE for customer {second['id']}"
    )
    assert refused.attempts == 1  # refused, not retried
    # The first participant's session is untouched: files, password.
    assert (home / S101 / "my-work.txt").read_text() == "first participant's work"
    assert backend.student(stdid)["password"] == password
    assert backend.install.accounts.verify_password(stdid, password)
    rows = {row["stdid"]: row for row in json.loads(wod(backend.install, "seats", "--json"))}
    seat = rows[stdid]
    assert seat["state"] == f"busy: refused CREATE for customer {second['id']}"
    assert (seat["workshop"], seat["customer"]) == (S101, first["id"])
    assert seat["last_job"]["id"] == refused.id
    text = wod(backend.install, "seats")
    assert f"busy: refused CREATE for customer {second['id']}" in text

    # The api-db now says the first participant is gone: the CREATE goes on as today.
    reg.set_fields(Customer, first["id"], active=False)
    job = backend.run(f"CREATE {stdid} {second['id']} second@example.com", S101)
    assert job.status == "done", job.reason
    seat_step = next(s for s in job.steps if s.name == "seat")
    assert (
        seat_step.output == f"previous customer {first['id']} is no longer active: seat taken over"
    )
    assert not (home / S101 / "my-work.txt").exists()
    assert backend.install.accounts.verify_password(stdid, backend.student(stdid)["password"])
    rows = {row["stdid"]: row for row in json.loads(wod(backend.install, "seats", "--json"))}
    assert rows[stdid]["state"] == "in use" and rows[stdid]["customer"] == second["id"]


# -- the seat table replays only what matters ----------------------------------------------
def _full_replay(queue, first: int, last: int) -> list[dict]:
    """The seat table as replaying every job of the history gives it (the reference)."""
    from wod.ops import seats as seats_mod

    table = {n: seats_mod.Seat(n, f"s{n}", True) for n in range(first, last + 1)}
    for job in queue.history(first, last):
        if job.verb == "CREATE" and job.status == "failed":
            job = queue.job(job.id)
        for n in job.request.stdids:
            if n in table:
                seats_mod._apply(table[n], job)
    return [s.to_dict() for s in table.values()]


def test_the_seat_table_equals_a_replay_of_the_whole_history(tmp_path):
    """Random histories (every verb, done / failed / queued, ranges, CREATEs refused at the
    check, as busy, or failed after ``active``): the table read newest-first with early
    stops equals the one a replay of every job gives."""
    import random

    from wod.ops.seats import seats
    from wod.queue import JobQueue, StepEnd
    from wod.requests import Request, Verb

    class Accounts:
        def exists(self, n: int) -> bool:
            return True

    class Settings:
        def account(self, n: int) -> str:
            return f"s{n}"

    rnd = random.Random(7)
    for round_ in range(6):
        queue = JobQueue(tmp_path / f"jobs{round_}.db")
        for i in range(250):
            verb = rnd.choice(["CREATE"] * 4 + ["CLEANUP"] * 3 + ["RESET", "PURGE"])
            low = rnd.randint(1, 10)
            high = (
                min(10, low + rnd.randint(1, 4)) if verb == "RESET" and rnd.random() < 0.5 else low
            )
            request = Request(Verb(verb), low, 100 + i, rnd.choice(["W1", "W2"]), stdid_max=high)
            job_id = queue.submit(request)
            if i >= 245:
                continue  # the last ones left queued: their seats show the pending job
            claimed = queue.claim("t")
            assert claimed is not None and claimed.id == job_id
            if i == 244:
                continue  # and one running
            outcome = rnd.random()
            if verb == "CREATE" and outcome < 0.3:
                names = rnd.choice(
                    [
                        ["workshop"],
                        ["workshop", "seat"],
                        ["workshop", "password", "active"],
                        ["workshop", "password", "deploy"],
                    ]
                )
                ended = []
                for k, name in enumerate(names):
                    step = queue.start_step(job_id, name, ended)
                    last_failed = k == len(names) - 1 and name in ("seat", "deploy")
                    ended = [StepEnd(step, "failed" if last_failed else "done", 0.001)]
                queue.fail(job_id, "boom", ended=ended)
            elif outcome < 0.4:
                queue.fail(job_id, "boom")
            else:
                queue.complete(job_id)
        for first, last in ((1, 10), (3, 3), (2, 7)):
            got = [s.to_dict() for s in seats(Settings(), queue, Accounts(), first, last)]
            assert got == _full_replay(queue, first, last), (round_, first, last)
        queue.close()
