"""The student's JupyterHub server across the lifecycle, against the session's real hub:
running after CREATE, stopped by CLEANUP and by PURGE (SPEC 3.1 step 11, 3.2, 3.4)."""

from __future__ import annotations

import time

import pytest

from wod.services.hub import Hub

pytestmark = pytest.mark.hub

S101 = "WKSHP-Sample101"


def wait_stopped(hub: Hub, user: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := hub.server_status(user)) is not None:
        assert time.monotonic() < deadline, f"server of {user} still there: {status}"
        time.sleep(0.1)


def test_server_runs_after_create_and_is_stopped_by_cleanup_and_purge(
    install_factory, backend_factory, jupyterhub
):
    install = install_factory(
        hub_url=jupyterhub.url, hub_token=jupyterhub.token, hub_spawn_wait=30.0
    )
    backend = backend_factory(install)
    hub = Hub(jupyterhub.url, jupyterhub.token)
    (a, sa), (b, sb) = backend.customer(S101), backend.customer(S101, email="bob@example.com")
    users = [install.settings.account(sa), install.settings.account(sb)]
    try:
        # Both seats are prepared in parallel (two workers).
        backend.send(f"CREATE {sa} {a['id']} {a['email']}", S101)
        backend.send(f"CREATE {sb} {b['id']} {b['email']}", S101)
        jobs = backend.wait(2, timeout=60)
        assert [j.status for j in jobs] == ["done", "done"], [j.reason for j in jobs]
        for user in users:
            status = hub.server_status(user)
            assert status is not None and status["ready"] is True, (user, status)
        assert install.registry.customer(a["id"])["active"] is True

        cleanup = backend.run(f"CLEANUP {sa} {a['id']}", S101)
        assert cleanup.status == "done", (cleanup.reason, cleanup.output)
        wait_stopped(hub, users[0])
        assert hub.server_status(users[1])["ready"] is True  # the other seat is untouched

        purge = backend.run(f"PURGE {sb} {b['id']}", S101)
        assert purge.status == "done", (purge.reason, purge.output)
        wait_stopped(hub, users[1])
        assert install.registry.customer(a["id"])["cleaned"] is True
        assert backend.student(sb)["assigned"] is False
    finally:
        for user in users:
            hub.stop_server(user)
        hub.close()
