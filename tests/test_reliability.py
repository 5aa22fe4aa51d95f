"""Reliability under load and faults, short versions of ``bench/reliability.py``.

Each test runs a whole install: ``wod registry`` (the api-db peer) and ``wod serve`` as
processes, real Linux accounts (root) or directory homes, mails over concurrent smtplib
connections; see ``tests/plugins/reliability.py`` for the rig and the checks.  What every
test asserts about a burst (``check_burst``): each acknowledged mail became exactly one
job and it is done, no job came from nowhere or twice, one seat's jobs ran one at a time in
the order of their ``250`` replies, and each seat is as the api-db has it (its password
opens the account; the last participant active, or cleaned and the seat free).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest

from tests.plugins.reliability import (
    HOOKED,
    NOTEBOOK,
    Mail,
    Rig,
    check_burst,
    fill,
    integrity_check,
    rig,
    send_burst,
    session_plan,
    started_at,
    tmpfs,
    wait_for,
)

IS_ROOT = os.geteuid() == 0
ACCOUNTS = "system" if IS_ROOT else "directory"


def _explain(verdict: object, rig: Rig) -> str:
    return f"{verdict}\n--- serve.log (tail) ---\n{rig.log_text()[-3000:]}"


def test_burst_every_mail_once_in_order(rig_factory: Callable[..., Rig]) -> None:
    """100 CREATEs (and the 80 CLEANUPs between participants) for 20 seats over 20
    concurrent connections: all acknowledged, all done once, per-seat order kept."""
    r = rig_factory(seats=20, accounts=ACCOUNTS)
    mails = session_plan(r, list(range(1, 21)), sessions=5)
    send_burst(r, mails, connections=20)
    assert all(m.accepted for m in mails), [(m.n, m.code, m.reply, m.error) for m in mails][:5]
    jobs = r.wait_settled(len(mails), timeout=180)
    verdict = check_burst(r, mails, jobs)
    assert verdict.ok, _explain(verdict, r)
    assert verdict.done == len(mails) == 180
    assert verdict.order_pairs > 0  # the order check had pairs to compare


def test_kill9_during_a_hook_then_restart(rig_factory: Callable[..., Rig]) -> None:
    """``kill -9`` of ``wod serve`` while a create hook runs, mid-burst: after the restart
    nothing of the killed run is still running, every acknowledged mail is done exactly
    once in effect, and the seats match the api-db."""
    r = rig_factory(seats=10, accounts=ACCOUNTS, slow_hook=6.0)
    mails = session_plan(r, list(range(1, 11)), sessions=2, workshop=HOOKED)
    sender = threading.Thread(target=send_burst, args=(r, mails, 10), kwargs={"timeout": 120})
    sender.start()
    try:
        # A slow hook (seats 5 and 10 sleep) is running: kill now.
        wait_for(lambda: bool(r.sleeping_hooks()), "a slow create hook running", timeout=60)
        assert r.serve is not None
        r.kill_serve()
        killed_at = r.kills[-1]
        left = [p for p in r.orphans() if started_at(p) <= killed_at]
        assert left, "the kill was meant to land while a hook ran"
        r.start_serve()
        # The restart ends what the killed run left before resuming its jobs.
        survivors = [p for p in left if p in r.orphans()]
        assert not survivors, (
            f"processes of the killed run still running after the restart: {survivors}"
        )
    finally:
        sender.join(180)
    accepted = [m for m in mails if m.accepted]
    assert accepted
    jobs = r.wait_settled(len(accepted), timeout=240)
    verdict = check_burst(r, mails, jobs)
    assert verdict.ok, _explain(verdict, r)
    assert verdict.reruns >= 1  # the interrupted job was resumed
    assert not r.orphans()


def test_apidb_down_during_burst_all_complete_after(rig_factory: Callable[..., Rig]) -> None:
    """The api-db (registry) stopped for a few seconds during a burst: jobs wait and retry,
    and all are done once it is back."""
    r = rig_factory(seats=10, accounts=ACCOUNTS, retry_max_attempts=40)
    mails = session_plan(r, list(range(1, 11)), sessions=2)
    r.stop_registry()
    send_burst(r, mails, connections=10)
    assert all(m.accepted for m in mails)  # intake does not need the api-db

    def retried(times: int) -> bool:
        # Every seat's first job has met the outage ``times`` times.
        return sum(j.attempts > times for j in r.jobs()) >= 10

    wait_for(lambda: retried(3), "jobs retried during the outage", timeout=60, interval=0.2)
    assert not any(j.status == "done" for j in r.jobs())  # nothing finished without it
    r.start_registry()
    jobs = r.wait_settled(len(mails), timeout=180)
    verdict = check_burst(r, mails, jobs)
    assert verdict.ok, _explain(verdict, r)
    assert verdict.reruns > 0  # jobs did meet the outage


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="mounting a tmpfs needs root")
def test_full_disk_answers_451_then_recovers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The state folder (job database) on a small tmpfs filled up: SMTP answers 451 with a
    clear log line, nothing acknowledged is lost, the database stays intact, and once space
    is freed the next mail is accepted and done."""
    with rig(tmp_path / "rig", seats=4, accounts="system", start=False) as r:
        with tmpfs(r.settings.state_dir, "4m"):
            r.start_registry()
            r.start_serve()
            first = session_plan(r, [1], sessions=1)
            send_burst(r, first, connections=1)
            assert first[0].accepted
            r.wait_settled(1, timeout=60)

            filler = r.settings.state_dir / "filler"
            fill(filler)
            # The write-ahead log may still have room for a few requests: send until one
            # is refused (each refused one is the client's to send again).
            tried = session_plan(r, [2, 3, 4], sessions=20)[:60]
            for mail in tried:
                send_burst(r, [mail], connections=1)
                if mail.code == 451:
                    break
            refused = [m for m in tried if m.code == 451]
            assert refused, [(m.code, m.reply) for m in tried[:5]]
            assert refused[0].reply.startswith("4.3.0 could not persist the request")
            assert "not persisted" in r.log_text() and "full" in r.log_text()

            filler.unlink()
            # The first participant's session ends: the next mail.
            again = [Mail(0, "CLEANUP", 1, first[0].customer, NOTEBOOK)]
            send_burst(r, again, connections=1)
            assert again[0].accepted, (again[0].code, again[0].reply)
            mails = first + [m for m in tried if m.code is not None] + again
            accepted = [m for m in mails if m.accepted]
            jobs = r.wait_settled(len(accepted), timeout=120)
            verdict = check_burst(r, [m for m in mails if m.code != 451], jobs)
            assert verdict.ok, _explain(verdict, r)
            r.stop_serve()
            assert integrity_check(r.settings.db_path) == "ok"
            r.stop_registry()
