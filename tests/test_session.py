"""A seat's hub login ends with its participant (a real JupyterHub with PAM logins and
local student servers, real Linux accounts, the participant's browser over HTTP).

Every participant of a seat shares the seat's hub user.  Stopping the server is not
enough: the hub's login cookie names the user, so an old browser gets into whatever
server the user runs next.  ``Hub.end_sessions`` (used by CLEANUP, RESET, PURGE) voids it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.plugins.hub import HubBrowser, PamHub, is_jupyterlab, is_login_page
from wod.services.hub import Hub

pytestmark = [pytest.mark.hub, pytest.mark.root]

S101 = "WKSHP-Sample101"
S201 = "WKSHP-Sample201"  # reset: true (a CLEANUP keeps the seat; the RESET frees it)


@pytest.fixture
def pam_hub_client(pam_jupyterhub: PamHub) -> Iterator[Hub]:
    with Hub(pam_jupyterhub.url, pam_jupyterhub.token, timeout=30, spawn_wait=60) as hub:
        yield hub


@pytest.fixture
def browsers(pam_jupyterhub: PamHub) -> Iterator[list[HubBrowser]]:
    made: list[HubBrowser] = []
    yield made
    for browser in made:
        browser.close()


def test_stopping_the_server_leaves_the_login_valid_ending_the_sessions_does_not(
    pam_jupyterhub: PamHub, pam_hub_client: Hub, install_factory, browsers
):
    """The hub itself, without the backend: why CLEANUP must do more than stop."""
    hub = pam_hub_client
    install = install_factory(**pam_jupyterhub.install_values())
    user = install.settings.account(1)
    install.accounts.set_password(1, "first-Participant-1")
    browser = HubBrowser(pam_jupyterhub.url)
    browsers.append(browser)
    try:
        hub.start_server(user)
        assert is_jupyterlab(browser.log_in(user, "first-Participant-1", f"/user/{user}/lab"), user)

        # What upstream does at CLEANUP: the server stops.  The hub login stays valid, so
        # the old browser would pass the hub's hand-off into the seat's next server.
        hub.stop_server(user)
        whoami = browser.get("/hub/api/user")
        assert whoami.status_code == 200 and whoami.json()["name"] == user

        assert hub.end_sessions(user).recreated
        assert hub.server_status(user) is None
        assert browser.get("/hub/api/user").status_code == 403
        assert is_login_page(browser.get(f"/user/{user}/lab")), browser.history
        # wod check's probe finds this hub fit.  PAM takes no throw-away hub user (no
        # system account): only the token is checked, or the cycle runs on a free seat.
        probe = hub.probe_session_end()
        assert probe.ok and probe.authenticator.endswith("PAMAuthenticator"), probe
        assert probe.checked == "scopes"
        on_seat = hub.probe_session_end(user)
        assert on_seat.ok and on_seat.checked == "cycle", on_seat
        # Idempotent: ending again (a retried CLEANUP) is fine, the user is still there.
        assert hub.end_sessions(user).servers_stopped == ()
        assert hub.ensure_user(user) is False
    finally:
        hub.stop_server(user)


def wait_active(install, customer: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not install.registry.customer(customer)["active"]:
        assert time.monotonic() < deadline, f"customer {customer} never reported active"
        time.sleep(0.02)


def test_the_next_participant_of_a_seat_is_out_of_reach_of_the_previous_one(
    pam_jupyterhub: PamHub, install_factory, backend_factory, browsers
):
    install = install_factory(**pam_jupyterhub.install_values(), hub_spawn_wait=90.0)
    backend = backend_factory(install)
    hub = Hub(pam_jupyterhub.url, pam_jupyterhub.token)
    a, stdid = backend.customer(S101, email="a@example.com", name="A")
    user = install.settings.account(stdid)
    lab = f"/user/{user}/lab"
    a_browser, b_browser = HubBrowser(pam_jupyterhub.url), HubBrowser(pam_jupyterhub.url)
    browsers.extend([a_browser, b_browser])
    try:
        # A gets in with the mailed password, and works.
        created = backend.run(f"CREATE {stdid} {a['id']} {a['email']}", S101, timeout=120)
        assert created.status == "done", (created.reason, created.output)
        a_password = backend.student(stdid)["password"]
        assert is_jupyterlab(a_browser.log_in(user, a_password), user), a_browser.history
        assert not a_browser.visited("spawn-pending")
        saved = a_browser.put_text(user, "a-notes.txt", "A's answers")
        assert saved.status_code in (200, 201), saved.text
        assert a_browser.get(f"/user/{user}/api/contents/{S101}").status_code == 200

        cleanup = backend.run(f"CLEANUP {stdid} {a['id']}", S101, timeout=120)
        assert cleanup.status == "done", (cleanup.reason, cleanup.output)
        hub_step = next(s for s in cleanup.steps if s.name == "hub")
        assert "deleted and re-created" in hub_step.output
        assert hub.server_status(user) is None
        assert install.accounts.processes(stdid) == []

        # The seat goes to B; the first request on B's mailed link, as soon as the api-db
        # sees B active, opens JupyterLab (no "Your server is starting up" page).
        b, b_stdid = backend.customer(S101, email="b@example.com", name="B")
        assert b_stdid == stdid
        backend.send(f"CREATE {stdid} {b['id']} {b['email']}", S101)
        wait_active(install, b["id"])
        b_password = backend.student(stdid)["password"]
        # The api-db mails <hub>/hub/login: logged in, the hub sends B to their server.
        assert is_jupyterlab(b_browser.log_in(user, b_password), user), b_browser.history
        assert not b_browser.visited("spawn-pending")
        assert backend.wait(3, timeout=60)[-1].status == "done"
        assert b_browser.get(f"/user/{user}/api/contents/{S101}").status_code == 200
        assert b_browser.get(f"/user/{user}/api/contents/a-notes.txt").status_code == 404

        # A's browser, same cookie jar: only the login page, never B's server or files.
        notebook = f"/user/{user}/files/{S101}/0-ReadMeFirst.ipynb"
        assert b_browser.get(notebook).status_code == 200
        for path in (lab, notebook):
            response = a_browser.get(path)
            assert is_login_page(response), (path, response.status_code, a_browser.history)
        contents = a_browser.get(f"/user/{user}/api/contents/{S101}")
        assert contents.status_code == 403 and "0-ReadMeFirst" not in contents.text
        assert a_browser.get("/hub/api/user").status_code == 403
        # A's mailed password no longer opens the seat.
        assert is_login_page(a_browser.log_in(user, a_password, lab))
    finally:
        hub.stop_server(user)
        hub.close()


def test_reset_ends_every_login_of_the_seat_and_its_old_passwords_are_refused(
    pam_jupyterhub: PamHub, install_factory, backend_factory, browsers
):
    install = install_factory(**pam_jupyterhub.install_values(), hub_spawn_wait=90.0)
    backend = backend_factory(install)
    hub = Hub(pam_jupyterhub.url, pam_jupyterhub.token)
    a, stdid = backend.customer(S201, email="a@example.com", name="A")
    user = install.settings.account(stdid)
    lab = f"/user/{user}/lab"
    a_browser, other = HubBrowser(pam_jupyterhub.url), HubBrowser(pam_jupyterhub.url)
    browsers.extend([a_browser, other])
    try:
        created = backend.run(f"CREATE {stdid} {a['id']} {a['email']}", S201, timeout=120)
        assert created.status == "done", (created.reason, created.output)
        a_password = backend.student(stdid)["password"]
        assert is_jupyterlab(a_browser.log_in(user, a_password), user), a_browser.history
        assert a_browser.get(f"/user/{user}/api/contents/{S201}").status_code == 200

        cleanup = backend.run(f"CLEANUP {stdid} {a['id']}", S201, timeout=120)
        assert cleanup.status == "done", (cleanup.reason, cleanup.output)
        assert backend.student(stdid)["assigned"] is True  # kept for the RESET
        # Between the CLEANUP and the RESET the seat's password (the api-db's student row)
        # opens a hub login: the RESET must end that one too.
        kept_password = backend.student(stdid)["password"]
        assert kept_password != a_password
        other.log_in(user, kept_password, "/hub/home")
        whoami = other.get("/hub/api/user")
        assert whoami.status_code == 200 and whoami.json()["name"] == user

        reset = backend.run(f"RESET {stdid} {a['id']}", S201, timeout=120)

        assert reset.status == "done", (reset.reason, reset.output)
        hub_step = next(s for s in reset.steps if s.name == "hub")
        assert "deleted and re-created" in hub_step.output, hub_step.output
        assert backend.student(stdid)["assigned"] is False
        assert hub.server_status(user) is None
        # A's browser, same cookie jar: only the login page; so for the login in between.
        for browser in (a_browser, other):
            response = browser.get(lab)
            assert is_login_page(response), (response.status_code, browser.history)
            assert browser.get("/hub/api/user").status_code == 403
        contents = a_browser.get(f"/user/{user}/api/contents/{S201}")
        assert is_login_page(contents), (contents.status_code, a_browser.history)
        # Neither A's mailed password nor the one kept until the RESET opens the seat.
        assert is_login_page(a_browser.log_in(user, a_password, lab)), a_browser.history
        assert a_browser.get("/hub/api/user").status_code == 403
        assert is_login_page(other.log_in(user, kept_password, lab)), other.history
        assert other.get("/hub/api/user").status_code == 403
    finally:
        hub.stop_server(user)
        hub.close()


def test_with_the_hub_down_the_participant_is_reported_active_once_the_server_runs(
    pam_jupyterhub: PamHub, install_factory, backend_factory, browsers
):
    install = install_factory(
        **pam_jupyterhub.install_values(),
        hub_spawn_wait=90.0,
        retry_max_attempts=100,
        retry_base_delay=0.5,
        retry_max_delay=0.5,
    )
    backend = backend_factory(install)
    hub = Hub(pam_jupyterhub.url, pam_jupyterhub.token)
    c, stdid = backend.customer(S101, email="c@example.com", name="C")
    user = install.settings.account(stdid)
    browser = HubBrowser(pam_jupyterhub.url)
    browsers.append(browser)
    pam_jupyterhub.stop()
    try:
        backend.send(f"CREATE {stdid} {c['id']} {c['email']}", S101)
        # The seat is prepared and its password reported; the hub start is retried.
        backend.wait_until(
            lambda jobs: any(
                s.name == "hub" and s.status == "retry" for s in steps_of(backend, jobs)
            )
        )
        assert install.registry.customer(c["id"])["active"] is False
        password = backend.student(stdid)["password"]
        assert install.accounts.verify_password(stdid, password)

        pam_jupyterhub.start()
        wait_active(install, c["id"])
        status = hub.server_status(user)
        assert status is not None and status["ready"] is True
        assert is_jupyterlab(browser.log_in(user, password), user), browser.history
        assert not browser.visited("spawn-pending")
        job = backend.wait(1, timeout=60)[-1]
        assert job.status == "done", (job.reason, job.output)
        assert [s.attempt for s in job.steps if s.name == "report"] == [1]
        assert backend.student(stdid)["password"] == password
    finally:
        pam_jupyterhub.start()
        hub.stop_server(user)
        hub.close()


def steps_of(backend, jobs):
    return [step for job in jobs for step in backend.queue.job(job.id).steps]
