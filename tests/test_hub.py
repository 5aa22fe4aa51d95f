"""The JupyterHub client against a real JupyterHub (``jupyterhub`` fixture) and real
misbehaving HTTP peers on local ports (closed port, silent socket, gateway error)."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.plugins.hub import HubBrowser, RunningHub
from tests.plugins.paths import get_free_port
from wod.errors import Permanent, Transient
from wod.services.hub import TOKEN_REJECTED, Hub
from wod.settings import load_settings


@pytest.fixture
def hub(jupyterhub: RunningHub) -> Iterator[Hub]:
    with Hub(jupyterhub.url, jupyterhub.token, timeout=15, spawn_wait=30) as client:
        yield client


def user_page(jupyterhub: RunningHub, user: str) -> int:
    """Status of the user's single-user server API as a browser reaches it (via the proxy)."""
    return httpx.get(f"{jupyterhub.url}/user/{user}/api", timeout=10).status_code


@pytest.mark.hub
def test_start_serves_the_notebook_and_starting_again_is_success(
    hub: Hub, jupyterhub: RunningHub
) -> None:
    try:
        assert hub.start_server("alice") == "started"
        status = hub.server_status("alice")
        assert status is not None and status["ready"] is True
        assert user_page(jupyterhub, "alice") == 200
        # A retried CREATE starts it again: the hub says "already running", we say fine.
        assert hub.start_server("alice") == "already running"
        assert user_page(jupyterhub, "alice") == 200
    finally:
        hub.stop_server("alice")


@pytest.mark.hub
def test_stop_ends_the_server_and_stopping_again_is_success(
    jupyterhub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    # Built from settings as the lifecycle builds it; the token must never reach a log.
    settings = load_settings(
        None, environ={}, hub_url=jupyterhub.url + "/", hub_token=jupyterhub.token
    )
    caplog.set_level(logging.DEBUG)
    with Hub.from_settings(settings) as hub:
        hub.start_server("bob")
        assert hub.stop_server("bob") == "stopped"
        assert hub.server_status("bob") is None
        assert user_page(jupyterhub, "bob") != 200
        assert hub.stop_server("bob") == "stopped"
        assert hub.stop_server("nobody-at-all") == "not running"
    assert "hub server of bob stopped" in caplog.text
    assert jupyterhub.token not in caplog.text


@pytest.mark.hub
def test_unknown_user_is_created_then_started_under_its_lower_case_name(
    hub: Hub, jupyterhub: RunningHub
) -> None:
    try:
        assert hub.server_status("dave") is None
        assert hub.start_server("Dave") == "started"
        assert user_page(jupyterhub, "dave") == 200
        status = hub.server_status("DAVE")
        assert status is not None and status["ready"] is True
        assert hub.ensure_user("dave") is False
    finally:
        hub.stop_server("dave")


@pytest.mark.hub
def test_ensure_user_creates_once(hub: Hub) -> None:
    assert hub.ensure_user("erin") is True
    assert hub.ensure_user("erin") is False
    assert hub.server_status("erin") is None


@pytest.mark.hub
def test_wrong_token_is_permanent_with_a_clear_reason(jupyterhub: RunningHub) -> None:
    with Hub(jupyterhub.url, "not-the-token", timeout=10, spawn_wait=5) as hub:
        with pytest.raises(Permanent) as failure:
            hub.start_server("carol")
        with pytest.raises(Permanent, match="token rejected"):
            hub.stop_server("carol")
    assert TOKEN_REJECTED in failure.value.reason
    assert "not-the-token" not in failure.value.reason


@pytest.mark.hub
def test_spawn_failure_is_permanent_with_the_hubs_reason(hub: Hub, jupyterhub: RunningHub) -> None:
    with pytest.raises(Permanent) as failure:
        hub.start_server(jupyterhub.broken_user)
    reason = failure.value.reason
    assert "Spawn failed" in reason
    assert "No such file or directory" in reason
    assert hub.server_status(jupyterhub.broken_user) is None


@pytest.mark.hub
def test_pending_spawn_is_polled_until_ready(hub: Hub, jupyterhub: RunningHub) -> None:
    user = jupyterhub.slow_user
    try:
        # Waiting less than the spawn takes: still pending at the end is worth a retry.
        with Hub(jupyterhub.url, jupyterhub.token, timeout=10, spawn_wait=0.5) as impatient:
            with pytest.raises(Transient, match="still starting"):
                impatient.start_server(user)
        # The retry finds the spawn pending (202) and polls until it is ready.
        started = time.monotonic()
        assert hub.start_server(user) == "started"
        status = hub.server_status(user)
        assert status is not None and status["ready"] is True
        assert user_page(jupyterhub, user) == 200
        assert time.monotonic() - started < 30
    finally:
        hub.stop_server(user)


def test_hub_down_is_transient() -> None:
    port = get_free_port()  # nothing listens there
    with Hub(f"http://127.0.0.1:{port}", "t", timeout=2, spawn_wait=1) as hub:
        with pytest.raises(Transient, match="hub unreachable"):
            hub.start_server("alice")
        with pytest.raises(Transient, match="hub unreachable"):
            hub.stop_server("alice")


def test_hub_not_answering_is_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel, never answered
        port = silent.getsockname()[1]
        with Hub(f"http://127.0.0.1:{port}", "t", timeout=0.3, spawn_wait=1) as hub:
            started = time.monotonic()
            with pytest.raises(Transient, match="no answer from the hub within 0.3 s"):
                hub.start_server("alice")
            assert time.monotonic() - started < 3


class _GatewayDown(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html>502 Bad Gateway</html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_gateway_error_in_front_of_the_hub_is_transient() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatewayDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Hub(url, "t", timeout=5, spawn_wait=1) as hub:
            with pytest.raises(Transient, match="hub answered 502"):
                hub.start_server("alice")
            with pytest.raises(Transient, match="hub answered 502"):
                hub.server_status("alice")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _SpawnLimit(http.server.BaseHTTPRequestHandler):
    """What JupyterHub answers a start when its ``concurrent_spawn_limit`` (or
    ``active_server_limit``) is reached (``handlers/base.py``: 429 + Retry-After)."""

    def do_POST(self) -> None:
        body = (
            b'{"status": 429, "message": "Too many users trying to log in right now. '
            b'Try again in 1 minute."}'
        )
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "57")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_hub_at_its_spawn_limit_is_transient_with_its_retry_delay() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SpawnLimit)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Hub(url, "t", timeout=5, spawn_wait=1) as hub:
            with pytest.raises(Transient, match="Too many users") as busy:
                hub.start_server("alice")
        assert busy.value.delay == 57.0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _ProxyWithoutHub(http.server.BaseHTTPRequestHandler):
    """What configurable-http-proxy answers before the hub has added its route (a hub
    starting up): a plain 404, not the hub's JSON one."""

    def _answer(self) -> None:
        body = b"404: Not Found"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_proxy_404_is_transient_not_an_unknown_user() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyWithoutHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Hub(url, "t", timeout=5, spawn_wait=1) as hub:
            for call in (hub.start_server, hub.end_sessions, hub.server_status):
                with pytest.raises(Transient, match="no JupyterHub API"):
                    call("alice")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.hub
def test_end_sessions_voids_the_users_login_and_keeps_the_user(
    hub: Hub, jupyterhub: RunningHub
) -> None:
    user = "carol"
    browser = HubBrowser(jupyterhub.url)
    try:
        hub.start_server(user)
        # The test hub's DummyAuthenticator takes any password.
        browser.log_in(user, "any", f"/user/{user}/api/status")
        assert browser.path() == f"/user/{user}/api/status", browser.history
        assert browser.get("/hub/api/user").json()["name"] == user

        ended = hub.end_sessions(user)
        assert ended.recreated and ended.servers_stopped == ("",)
        assert "deleted and re-created" in ended.summary()
        assert hub.server_status(user) is None
        assert browser.get("/hub/api/user").status_code == 403
        hub.start_server(user)
        assert browser.get(f"/user/{user}/api/status").status_code == 403, browser.history
        assert hub.ensure_user(user) is False  # the seat's hub user is back
        # Unknown to the hub (a retried CLEANUP after a crash mid-way): only created.
        assert hub.end_sessions("frank").recreated is False
        assert hub.ensure_user("frank") is False
    finally:
        browser.close()
        hub.stop_server(user)


@pytest.mark.hub
def test_session_probe_passes_with_the_needed_scopes_and_names_the_missing_one(
    hub: Hub, jupyterhub: RunningHub
) -> None:
    probe = hub.probe_session_end()
    assert probe.ok and probe.checked == "cycle", probe.problems
    assert probe.version.startswith(("5.", "6.", "7."))
    assert hub.server_status("wod-session-probe") is None
    with Hub(jupyterhub.url, jupyterhub.weak_token, timeout=10, spawn_wait=5) as weak:
        refused = weak.probe_session_end()
    assert not refused.ok
    assert any("admin:users" in p for p in refused.problems), refused.problems
    assert jupyterhub.weak_token not in " ".join(refused.problems)
    # Allowed to read the hub's info, the probe sees this test hub lets anyone in.
    with Hub(jupyterhub.url, jupyterhub.info_token, timeout=10, spawn_wait=5) as reader:
        open_door = reader.probe_session_end()
    assert not open_door.ok and open_door.authenticator.endswith("DummyAuthenticator")
    assert any("anyone can log in" in p for p in open_door.problems), open_door.problems
