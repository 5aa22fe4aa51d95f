"""The api-db client against the real registry, and against servers that misbehave."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.plugins.paths import get_free_port
from wod.errors import Permanent, Transient
from wod.registry.models import Customer, Workshop
from wod.services.apidb import ApiDb, parse_compile
from wod.settings import load_settings


def client(reg, **kw) -> ApiDb:
    return ApiDb(reg.url, reg.username, reg.password, timeout=kw.pop("timeout", 5), **kw)


# -- peers that misbehave ------------------------------------------------------------------
Reply = tuple[int, str, bytes]


@contextmanager
def http_server(reply: Callable[[str, str, dict, bytes], Reply]) -> Iterator[tuple[str, list]]:
    """A real HTTP server on a free port answering ``reply(method, path, headers, body)``;
    yields its base URL (``/api``) and the list of requests it saw."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            status, ctype, out = reply(self.command, self.path, dict(self.headers), body)
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", get_free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def logged_in(method: str, path: str, _headers: dict, _body: bytes) -> Reply | None:
    if path == "/api/login":
        return 200, "application/json", json.dumps({"accessToken": "t0k"}).encode()
    return None


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (the api-db on a value PostgreSQL rejects)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


# -- login and tokens ----------------------------------------------------------------------
def test_login_and_from_settings(registry):
    settings = load_settings(
        environ={},
        apidb_url=registry.url,
        apidb_user=registry.username,
        apidb_password=registry.password,
        apidb_timeout=3,
    )
    with ApiDb.from_settings(settings) as api:
        assert api.timeout == 3
        token = api.login()
        assert token.count(".") == 2
        assert registry.logins == 1


def test_wrong_password_and_unknown_user_are_permanent_with_the_api_db_message(registry):
    with ApiDb(registry.url, registry.username, "wrong", timeout=5) as api:
        with pytest.raises(Permanent, match="Invalid Password!") as wrong:
            api.login()
        assert "wrong" not in str(wrong.value)
    with ApiDb(registry.url, "nobody", "x", timeout=5) as api:
        with pytest.raises(Permanent, match="User Not found."):
            api.customer(1)


def test_expired_token_is_renewed_transparently(registry_factory):
    # 4 s tokens: long enough that a loaded machine still makes both calls on one token.
    reg = registry_factory(token_ttl=4)
    customer = reg.create_customer(reg.workshops()[0]["notebook"])
    with client(reg) as api:
        assert api.customer(customer["id"])["id"] == customer["id"]
        assert api.customer(customer["id"])["cleaned"] is False
        assert reg.logins == 1  # the token is cached
        time.sleep(4.3)
        api.update_customer(customer["id"], active=True)
        assert reg.logins == 2
    assert reg.customer(customer["id"])["active"] is True


def test_token_refused_after_a_registry_restart_is_renewed(registry):
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    with client(registry) as api:
        api.customer(customer["id"])
        registry.rotate_secret()
        api.update_customer(customer["id"], cleaned=True)
        assert registry.logins == 2
    assert registry.customer(customer["id"])["cleaned"] is True


def test_missing_moderator_role_is_permanent(registry_factory):
    reg = registry_factory(users=(("viewer", "viewer-pw", ("user",)),))
    with ApiDb(reg.url, "viewer", "viewer-pw", timeout=5) as api:
        with pytest.raises(Permanent, match="Require Moderator or Admin Role!"):
            api.update_student(1, assigned=False)
    assert reg.student(1)["assigned"] is False


# -- workshops -----------------------------------------------------------------------------
def test_workshop_fields(registry):
    row = registry.workshops()[0]
    with client(registry) as api:
        shop = api.workshop(row["id"])
        assert shop.id == row["id"] and shop.notebook == row["notebook"]
        assert (shop.range_min, shop.range_max) == tuple(row["range"])
        assert shop.capacity == row["capacity"] and shop.reset is row["reset"]
        assert api.workshop_by_notebook(row["notebook"]) == shop
        assert [w["notebook"] for w in api.workshops()] == [
            w["notebook"]
            for w in sorted(registry.workshops(), key=lambda w: (w["priority"], w["id"]))
        ]


def test_unknown_workshop_is_permanent(registry):
    with client(registry) as api:
        with pytest.raises(Permanent, match="Workshop Not Found"):
            api.workshop(99999)
        with pytest.raises(Permanent, match="WKSHP-Nope"):
            api.workshop_by_notebook("WKSHP-Nope")


class Clock:
    """A monotonic clock the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingTransport(httpx.HTTPTransport):
    """The real HTTP transport, noting the path of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


def test_workshop_lookups_use_the_list_until_the_ttl(registry):
    row = registry.workshops()[0]
    clock, transport = Clock(), CountingTransport()
    with client(registry, workshop_cache_ttl=5.0, clock=clock, transport=transport) as api:
        assert api.workshop_by_notebook(row["notebook"]).capacity == row["capacity"]
        registry.set_fields(Workshop, row["id"], capacity=row["capacity"] + 7)
        clock.now += 4.9
        assert api.workshop_by_notebook(row["notebook"]).capacity == row["capacity"]
        assert transport.paths.count("/api/workshops") == 1
        clock.now += 0.2  # past the TTL: the change is seen
        assert api.workshop_by_notebook(row["notebook"]).capacity == row["capacity"] + 7
        assert transport.paths.count("/api/workshops") == 2


def test_workshop_missing_from_the_cached_list_is_fetched_at_once(registry):
    row = registry.workshops()[0]
    clock, transport = Clock(), CountingTransport()
    with client(registry, workshop_cache_ttl=60.0, clock=clock, transport=transport) as api:
        api.workshop_by_notebook(row["notebook"])
        registry.set_fields(Workshop, row["id"], notebook="WKSHP-Renamed")
        shop = api.workshop_by_notebook("WKSHP-Renamed")  # same instant, not in the list
        assert shop.id == row["id"] and shop.notebook == "WKSHP-Renamed"
        with pytest.raises(Permanent, match="WKSHP-Nope"):
            api.workshop_by_notebook("WKSHP-Nope")
        # each miss fetched once more, and not more than once
        assert transport.paths.count("/api/workshops") == 3


def test_workshop_cache_off_fetches_every_time(registry):
    row = registry.workshops()[0]
    transport = CountingTransport()
    with client(registry, workshop_cache_ttl=0, transport=transport) as api:
        api.workshop_by_notebook(row["notebook"])
        registry.set_fields(Workshop, row["id"], capacity=row["capacity"] + 1)
        assert api.workshop_by_notebook(row["notebook"]).capacity == row["capacity"] + 1
        assert transport.paths.count("/api/workshops") == 2


def test_workshop_cache_ttl_comes_from_the_settings(registry):
    settings = load_settings(environ={}, apidb_url=registry.url, apidb_workshop_cache_ttl=2.5)
    with ApiDb.from_settings(settings) as api:
        assert api.workshop_cache_ttl == 2.5
    assert load_settings(environ={}).apidb_workshop_cache_ttl == 5.0


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, []),
        ("", []),
        ("false", []),
        ("secret.sh", ["secret.sh"]),
        ("a.sh, b.sh", ["a.sh", "b.sh"]),
        ("a.sh,b.sh,", ["a.sh", "b.sh"]),
    ],
)
def test_compile_variants_from_the_api_db(registry, stored, expected):
    row = registry.workshops()[0]
    registry.set_fields(Workshop, row["id"], compile=stored, ldap=True)
    with client(registry) as api:
        shop = api.workshop(row["id"])
    assert shop.compile == expected
    assert shop.ldap is True


def test_compile_parser_accepts_json_false_and_lists():
    assert parse_compile(False) == []
    assert parse_compile(["x.sh", " y.sh "]) == ["x.sh", "y.sh"]
    with pytest.raises(ValueError):
        parse_compile(3)


def test_unusable_workshop_is_permanent(registry):
    row = registry.workshops()[0]
    registry.set_fields(Workshop, row["id"], range=None)
    with client(registry) as api, pytest.raises(Permanent, match="range"):
        api.workshop(row["id"])


# -- customers and updates -----------------------------------------------------------------
def test_updates_change_the_registry(registry):
    row = registry.workshops()[0]
    customer = registry.create_customer(row["notebook"])
    sid = customer["studentId"]
    with client(registry) as api:
        student = api.update_student(sid, password="N3w-pass", assigned=False)
        assert student["password"] == "N3w-pass"
        done = api.update_customer(customer["id"], completionPercentage=75, cleaned=True)
        assert done["completionPercentage"] == 75
        api.update_workshop(row["id"], capacity=2)
        assert api.workshop(row["id"]).capacity == 2
        assert api.customer(customer["id"])["cleaned"] is True
    assert registry.student(sid)["assigned"] is False
    assert registry.customer(customer["id"])["completionPercentage"] == 75


def test_unknown_customer_and_student_are_permanent(registry):
    with client(registry) as api:
        with pytest.raises(Permanent, match="Customer Not Found"):
            api.customer(99999)
        with pytest.raises(Permanent, match="HTTP 400"):
            api.update_student(99999, assigned=False)


def test_requests_are_well_typed_json():
    def reply(method, path, headers, body):
        return logged_in(method, path, headers, body) or (200, "application/json", b"{}")

    with http_server(reply) as (url, seen), ApiDb(url, "u", "p", timeout=5) as api:
        api.update_customer(7, active=True, completionPercentage=50)
    login, put = seen
    assert json.loads(login["body"]) == {"username": "u", "password": "p"}
    assert put["method"] == "PUT" and put["path"] == "/api/customer/7"
    assert put["headers"]["content-type"] == "application/json"
    assert put["headers"]["x-access-token"] == "t0k"
    assert json.loads(put["body"]) == {"active": True, "completionPercentage": 50}


# -- faults --------------------------------------------------------------------------------
def test_silent_api_db_times_out_as_transient():
    with silent_server() as url, ApiDb(url, "u", "p", timeout=0.5) as api:
        started = time.monotonic()
        with pytest.raises(Transient, match="no answer within 0.5 s"):
            api.workshops()
        assert time.monotonic() - started < 3


def test_connection_refused_is_transient():
    url = f"http://127.0.0.1:{get_free_port()}/api"
    with ApiDb(url, "u", "p", timeout=2) as api, pytest.raises(Transient, match="Connect"):
        api.workshop(1)


@pytest.mark.parametrize(
    ("status", "ctype", "body"),
    [
        (500, "application/json", b'{"error": {}}'),
        (502, "text/html", b"<html>Bad Gateway</html>"),
        (503, "text/plain", b""),
    ],
)
def test_server_errors_are_transient(status, ctype, body):
    def reply(method, path, headers, raw):
        return logged_in(method, path, headers, raw) or (status, ctype, body)

    with http_server(reply) as (url, _seen), ApiDb(url, "u", "p", timeout=5) as api:
        with pytest.raises(Transient, match=f"HTTP {status}"):
            api.update_student(3, assigned=False)


def test_plain_text_client_error_is_permanent_with_its_text():
    def reply(method, path, headers, raw):
        return 400, "text/html; charset=utf-8", b"Workshop Not Found"

    with http_server(reply) as (url, _seen), ApiDb(url, "u", "p", timeout=5) as api:
        with pytest.raises(Permanent, match="HTTP 400: Workshop Not Found"):
            api.workshop(4)


def test_non_json_success_is_permanent():
    def reply(method, path, headers, raw):
        return 200, "text/html", b"<html>portal</html>"

    with http_server(reply) as (url, _seen), ApiDb(url, "u", "p", timeout=5) as api:
        with pytest.raises(Permanent, match="not JSON"):
            api.workshops()


# -- waiting for cleaned -------------------------------------------------------------------
def test_wait_cleaned_returns_when_the_customer_is_cleaned(registry):
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    timer = threading.Timer(0.3, registry.set_fields, (Customer, customer["id"]), {"cleaned": True})
    timer.start()
    try:
        with client(registry) as api:
            started = time.monotonic()
            assert api.wait_cleaned(customer["id"], timeout=5, interval=0.05) is True
            assert time.monotonic() - started < 3
    finally:
        timer.cancel()


def test_wait_cleaned_gives_up_at_timeout_and_on_stop(registry):
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    with client(registry) as api:
        started = time.monotonic()
        assert api.wait_cleaned(customer["id"], timeout=0.3, interval=0.1) is False
        assert time.monotonic() - started < 2
        stop = threading.Event()
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        assert api.wait_cleaned(customer["id"], timeout=30, interval=10, stop_event=stop) is False
        assert time.monotonic() - started < 2


def test_wait_cleaned_polls_through_an_unreachable_api_db():
    url = f"http://127.0.0.1:{get_free_port()}/api"
    with ApiDb(url, "u", "p", timeout=1) as api:
        assert api.wait_cleaned(5, timeout=0.3, interval=0.1) is False
