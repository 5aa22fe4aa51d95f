"""The student's JupyterHub server across the lifecycle, against the session's real hub:
running after CREATE, stopped by CLEANUP and by PURGE (SPEC 3.1 step 11, 3.2, 3.4); and what
a CREATE given up at the hub leaves, before and after ``active`` was reported."""

from __future__ import annotations

import time

import pytest

from tests.plugins.paths import get_free_port
from wod.ops.seats import seat_view
from wod.services.hub import Hub

S101 = "WKSHP-Sample101"


def wait_stopped(hub: Hub, user: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := hub.server_status(user)) is not None:
        assert time.monotonic() < deadline, f"server of {user} still there: {status}"
        time.sleep(0.1)


@pytest.mark.hub
def test_server_runs_after_create_and_is_stopped_by_cleanup_and_purge(
    install_factory, backend_factory, jupyterhub
):
    install = install_factory(
        hub_url=jupyterhub.url, hub_token=jupyterhub.token, hub_spawn_wait=90.0
    )
    backend = backend_factory(install)
    hub = Hub(jupyterhub.url, jupyterhub.token)
    (a, sa), (b, sb) = backend.customer(S101), backend.customer(S101, email="bob@example.com")
    users = [install.settings.account(sa), install.settings.account(sb)]
    try:
        # Both seats are prepared in parallel (two workers).
        backend.send(f"CREATE {sa} {a['id']} {a['email']}", S101)
        backend.send(f"CREATE {sb} {b['id']} {b['email']}", S101)
        jobs = backend.wait(2, timeout=180)
        assert [j.status for j in jobs] == ["done", "done"], [j.reason for j in jobs]
        for user in users:
            status = hub.server_status(user)
            assert status is not None and status["ready"] is True, (user, status)
        assert install.registry.customer(a["id"])["active"] is True

        cleanup = backend.run(f"CLEANUP {sa} {a['id']}", S101, timeout=120)
        assert cleanup.status == "done", (cleanup.reason, cleanup.output)
        hub_step = next(step for step in cleanup.steps if step.name == "hub")
        assert f"hub user {users[0]} deleted and re-created" in hub_step.output
        assert "server(s) stopped: default" in hub_step.output
        wait_stopped(hub, users[0])
        assert hub.server_status(users[1])["ready"] is True  # the other seat is untouched

        purge = backend.run(f"PURGE {sb} {b['id']}", S101, timeout=120)
        assert purge.status == "done", (purge.reason, purge.output)
        wait_stopped(hub, users[1])
        assert install.registry.customer(a["id"])["cleaned"] is True
        assert backend.student(sb)["assigned"] is False
    finally:
        for user in users:
            hub.stop_server(user)
        hub.close()


def test_a_create_given_up_after_active_shows_as_a_seat_in_use_without_server(
    install_factory, backend_factory
):
    """Upstream's order: ``active`` is reported before the server starts.  A hub down for
    the job's every attempt leaves a participant the api-db mails and shows active; the
    seat is ready (the hub starts the server at their login once it can), and ``wod seats``
    says so rather than "deployment failed"."""
    install = install_factory(
        hub_url=f"http://127.0.0.1:{get_free_port()}",  # nothing listens: the hub is down
        hub_start_before_active=False,
        retry_max_attempts=2,
        retry_base_delay=0.2,
    )
    backend = backend_factory(install)
    cust, stdid = backend.customer(S101)
    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S101, timeout=60)

    assert job.status == "failed" and "hub unreachable" in job.reason
    assert install.registry.customer(cust["id"])["active"] is True
    assert install.accounts.verify_password(stdid, backend.student(stdid)["password"])
    seat = next(s for s in seat_view(install.settings).seats if s.stdid == stdid)
    assert seat.state == "in use, hub server not started"
    assert (seat.workshop, seat.customer) == (S101, cust["id"])
    assert seat.last_job is not None and "hub unreachable" in seat.last_job.reason


def test_a_create_given_up_before_active_is_a_failed_deployment(install_factory, backend_factory):
    install = install_factory(
        hub_url=f"http://127.0.0.1:{get_free_port()}",
        retry_max_attempts=2,
        retry_base_delay=0.2,
    )
    backend = backend_factory(install)
    cust, stdid = backend.customer(S101)
    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S101, timeout=60)

    assert job.status == "failed"
    assert install.registry.customer(cust["id"])["active"] is False
    seat = next(s for s in seat_view(install.settings).seats if s.stdid == stdid)
    assert seat.state == "deployment failed"
