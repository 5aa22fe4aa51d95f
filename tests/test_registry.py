"""The registry answers like the upstream api-db (SPEC 3.6), on a real port."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import create_engine, text

from tests.plugins.paths import get_free_port
from tests.plugins.registry import start_registry
from wod.registry import SeedError, SeedOptions
from wod.registry.models import Customer, Workshop, ensure_schema, make_engine, make_sessionmaker
from wod.registry.seed import ensure_user, seed_trees

JSON = "application/json"


def login(reg, username=None, password=None) -> httpx.Response:
    return httpx.post(
        f"{reg.url}/login",
        json={
            "username": username or reg.username,
            "password": password or reg.password,
        },
    )


def token(reg) -> str:
    response = login(reg)
    assert response.status_code == 200, response.text
    return response.json()["accessToken"]


# -- login ------------------------------------------------------------------------------
def test_login_returns_the_api_db_answer_with_a_180_s_token(registry):
    response = login(registry)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "username", "email", "roles", "accessToken"}
    assert body["username"] == registry.username
    assert body["roles"] == ["ROLE_MODERATOR"]
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == pytest.approx(180, abs=1.5)


def test_login_failures_have_the_api_db_bodies(registry):
    wrong = login(registry, password="not-the-password")
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"accessToken": None, "message": "Invalid Password!"},
    )
    unknown = login(registry, username="nobody")
    assert (unknown.status_code, unknown.json()) == (404, {"message": "User Not found."})


def test_passwords_are_stored_hashed(registry):
    engine = create_engine(registry.db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password FROM users")).scalars().all()
    engine.dispose()
    assert stored and all(p.startswith("scrypt$") for p in stored)
    assert registry.password not in "".join(stored)


# -- workshops --------------------------------------------------------------------------
def test_workshops_are_sorted_by_priority_and_flag_popular(registry):
    shops = httpx.get(f"{registry.url}/workshops").json()
    assert shops, "the fixture registry is seeded"
    assert [w["priority"] for w in shops] == sorted(w["priority"] for w in shops)
    assert all(w["popular"] is False for w in shops)
    target = shops[-1]
    registry.create_customer(target["notebook"], email="a@example.com")
    registry.create_customer(target["notebook"], email="b@example.com")
    again = {w["id"]: w for w in httpx.get(f"{registry.url}/workshops").json()}
    assert again[target["id"]]["popular"] is True


def test_workshop_by_id_and_not_found_text(registry):
    first = httpx.get(f"{registry.url}/workshops").json()[0]
    one = httpx.get(f"{registry.url}/workshops/{first['id']}")
    assert one.status_code == 200
    body = one.json()
    for key in (
        "id",
        "notebook",
        "range",
        "reset",
        "ldap",
        "varpass",
        "compile",
        "monoappliance",
        "multiappliance",
        "capacity",
    ):
        assert key in body
    assert isinstance(body["reset"], bool) and isinstance(body["range"], list)
    for missing in ("99999", "abc"):
        response = httpx.get(f"{registry.url}/workshops/{missing}")
        assert (response.status_code, response.text) == (400, "Workshop Not Found")


# -- customers and tokens ---------------------------------------------------------------
def test_customer_needs_a_valid_token(registry):
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    url = f"{registry.url}/customers/{customer['id']}"
    missing = httpx.get(url)
    assert (missing.status_code, missing.json()) == (403, {"message": "No token provided!"})
    bad = httpx.get(url, headers={"x-access-token": "not.a.token"})
    assert (bad.status_code, bad.json()) == (401, {"message": "Unauthorized!"})
    good = httpx.get(url, headers={"x-access-token": token(registry)})
    assert good.status_code == 200
    body = good.json()
    assert body["studentId"] == customer["studentId"]
    assert body["cleaned"] is False and body["active"] is False
    unknown = httpx.get(
        f"{registry.url}/customers/99999", headers={"x-access-token": token(registry)}
    )
    assert (unknown.status_code, unknown.text) == (400, "Customer Not Found")


def test_token_expires(registry_factory):
    # 3 s tokens: the first call is in time even on a loaded machine.
    reg = registry_factory(token_ttl=3)
    customer = reg.create_customer(reg.workshops()[0]["notebook"])
    headers = {"x-access-token": token(reg)}
    url = f"{reg.url}/customers/{customer['id']}"
    assert httpx.get(url, headers=headers).status_code == 200
    time.sleep(3.3)
    expired = httpx.get(url, headers=headers)
    assert (expired.status_code, expired.json()) == (401, {"message": "Unauthorized!"})


# -- updates ----------------------------------------------------------------------------
def test_updates_need_moderator_or_admin(registry_factory):
    reg = registry_factory(
        users=(("viewer", "viewer-pw", ("user",)), ("boss", "boss-pw", ("admin",)))
    )
    viewer = login(reg, "viewer", "viewer-pw").json()
    assert viewer["roles"] == ["ROLE_USER"]
    refused = httpx.put(
        f"{reg.url}/student/1",
        json={"assigned": True},
        headers={"x-access-token": viewer["accessToken"]},
    )
    assert (refused.status_code, refused.json()) == (
        403,
        {"message": "Require Moderator or Admin Role!"},
    )
    boss = login(reg, "boss", "boss-pw").json()["accessToken"]
    ok = httpx.put(
        f"{reg.url}/student/1", json={"assigned": True}, headers={"x-access-token": boss}
    )
    assert ok.status_code == 200 and ok.json()["assigned"] is True
    missing = httpx.put(f"{reg.url}/student/1", json={"assigned": True})
    assert (missing.status_code, missing.json()) == (403, {"message": "No token provided!"})


@pytest.mark.parametrize("route", ["student", "customer", "workshop"])
def test_update_of_unknown_id_is_400_error(registry, route):
    response = httpx.put(
        f"{registry.url}/{route}/99999",
        json={"active": True},
        headers={"x-access-token": token(registry)},
    )
    assert (response.status_code, response.json()) == (400, {"error": {}})


def test_updates_return_the_row_and_accept_string_booleans(registry):
    headers = {"x-access-token": token(registry)}
    shop = registry.workshops()[0]
    customer = registry.create_customer(shop["notebook"])
    sid = customer["studentId"]

    student = httpx.put(
        f"{registry.url}/student/{sid}",
        json={"password": "s3cret-Pw", "assigned": "false"},
        headers=headers,
    )
    assert student.status_code == 200
    assert student.json()["password"] == "s3cret-Pw" and student.json()["assigned"] is False
    assert registry.student(sid)["assigned"] is False

    updated = httpx.put(
        f"{registry.url}/customer/{customer['id']}",
        content=b'{"active": "true", "completionPercentage": 42}',
        headers={**headers, "content-type": JSON},
    )
    assert updated.status_code == 200
    assert updated.json()["active"] is True and updated.json()["completionPercentage"] == 42
    cleaned = httpx.put(
        f"{registry.url}/customer/{customer['id']}", json={"cleaned": True}, headers=headers
    )
    assert cleaned.json()["cleaned"] is True
    assert registry.customer(customer["id"])["cleaned"] is True

    capacity = httpx.put(
        f"{registry.url}/workshop/{shop['id']}", json={"capacity": 3}, headers=headers
    )
    assert capacity.status_code == 200 and capacity.json()["capacity"] == 3
    assert httpx.get(f"{registry.url}/workshops/{shop['id']}").json()["capacity"] == 3


def test_update_with_an_impossible_value_is_refused_not_hung(registry):
    headers = {"x-access-token": token(registry)}
    response = httpx.put(
        f"{registry.url}/customer/1",
        json={"completionPercentage": "lots"},
        headers=headers,
        timeout=5,
    )
    # No customer 1 yet: unknown id wins, like the api-db.
    assert response.status_code == 400
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    response = httpx.put(
        f"{registry.url}/customer/{customer['id']}",
        json={"completionPercentage": "lots"},
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 400
    assert "completionPercentage" in response.json()["error"]["message"]
    assert registry.customer(customer["id"])["completionPercentage"] is None


def test_an_update_writes_only_what_changes_and_answers_the_stored_row(registry):
    """As the api-db's Sequelize ``update``: the same values again write nothing (the
    row's ``updatedAt`` stays); a change moves it; the answer is the row as stored."""
    headers = {"x-access-token": token(registry)}
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    url = f"{registry.url}/customer/{customer['id']}"
    old = dt.datetime(2020, 1, 2, 3, 4, 5)
    registry.set_fields(Customer, customer["id"], location="lab", updatedAt=old)

    same = httpx.put(url, json={"location": "lab", "active": False}, headers=headers)
    assert same.status_code == 200
    assert same.json()["updatedAt"] == "2020-01-02T03:04:05.000Z"
    assert same.json() == registry.customer(customer["id"])

    changed = httpx.put(url, json={"location": "lab", "active": "true"}, headers=headers)
    assert changed.status_code == 200 and changed.json()["active"] is True
    assert changed.json()["updatedAt"] != "2020-01-02T03:04:05.000Z"
    assert changed.json() == registry.customer(customer["id"])
    assert (
        changed.json()
        == httpx.get(f"{registry.url}/customers/{customer['id']}", headers=headers).json()
    )


def test_roles_are_checked_before_the_body_is_read(registry_factory):
    reg = registry_factory(users=(("viewer", "viewer-pw", ("user",)),))
    viewer = {"x-access-token": login(reg, "viewer", "viewer-pw").json()["accessToken"]}
    moderator = {"x-access-token": token(reg)}
    customer = reg.create_customer(reg.workshops()[0]["notebook"])
    url = f"{reg.url}/customer/{customer['id']}"
    bad = {"content": b"{not json", "headers": {"content-type": JSON}}
    refused = httpx.put(url, content=bad["content"], headers={**bad["headers"], **viewer})
    assert (refused.status_code, refused.json()) == (
        403,
        {"message": "Require Moderator or Admin Role!"},
    )
    malformed = httpx.put(url, content=bad["content"], headers={**bad["headers"], **moderator})
    assert (malformed.status_code, malformed.json()) == (
        400,
        {"error": {"message": "malformed JSON body"}},
    )


# -- roles are read on every call ----------------------------------------------------------
def _set_roles_with_the_cli(reg, username: str, password: str, roles: tuple[str, ...]) -> None:
    """``wod registry add-user``: another process writing the registry's database."""
    env = {**os.environ, "WOD_STATE_DIR": str(Path(reg.db_url.split("///")[1]).parent)}
    wod = [str(Path(sys.executable).parent / "wod"), "registry", "--db", reg.db_url]
    role_args = [arg for role in roles for arg in ("--role", role)]
    done = subprocess.run(
        [*wod, "add-user", username, "--password", password, *role_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_user_demoted_after_login_is_refused_with_the_same_token(registry_factory):
    reg = registry_factory(users=(("boss", "boss-pw", ("admin",)),))
    boss = {"x-access-token": login(reg, "boss", "boss-pw").json()["accessToken"]}
    url = f"{reg.url}/student/1"
    assert httpx.put(url, json={"assigned": True}, headers=boss).status_code == 200

    _set_roles_with_the_cli(reg, "boss", "boss-pw", ("user",))
    refused = httpx.put(url, json={"assigned": False}, headers=boss)
    assert (refused.status_code, refused.json()) == (
        403,
        {"message": "Require Moderator or Admin Role!"},
    )
    assert reg.student(1)["assigned"] is True
    # Still a valid user: reads are allowed, the seat's password is not shown any more.
    seen = httpx.get(f"{reg.url}/students/1", headers=boss)
    assert seen.status_code == 200 and "password" not in seen.json()

    _set_roles_with_the_cli(reg, "boss", "boss-pw", ("moderator",))
    again = httpx.put(url, json={"assigned": False}, headers=boss)
    assert again.status_code == 200 and again.json()["assigned"] is False


def test_a_user_deleted_after_login_is_unauthorized_with_the_same_token(registry_factory):
    reg = registry_factory(users=(("boss", "boss-pw", ("admin",)),))
    boss = {"x-access-token": login(reg, "boss", "boss-pw").json()["accessToken"]}
    customer = reg.create_customer(reg.workshops()[0]["notebook"])
    assert httpx.put(f"{reg.url}/student/1", json={}, headers=boss).status_code == 200
    engine = create_engine(reg.db_url)  # an admin editing the database: not a route
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE username = 'boss'"))
    engine.dispose()
    for method, path in (
        ("PUT", "/student/1"),
        ("PUT", f"/customer/{customer['id']}"),
        ("GET", f"/customers/{customer['id']}"),
        ("GET", "/students/1"),
        ("GET", "/customers"),
    ):
        response = httpx.request(method, f"{reg.url}{path}", json={}, headers=boss)
        assert (response.status_code, response.json()) == (401, {"message": "Unauthorized!"})


# -- registration -----------------------------------------------------------------------
def test_registration_assigns_free_seats_until_full(tmp_path):
    tree = tmp_path / "tree"
    (tree / "WKSHP-Tiny").mkdir(parents=True)
    (tree / "WKSHP-Tiny" / "wod.yml").write_text(
        "name: Tiny\ncapacity: 5\npriority: 1\nrange: [3, 4]\nactive: true\n"
    )
    with start_registry(tmp_path, trees=[tree], base_stdid=100) as reg:
        seats = []
        for n in range(2):
            response = httpx.post(
                f"{reg.url}/customer",
                json={"title": "Tiny", "name": f"p{n}", "email": f"p{n}@example.com"},
            )
            assert response.status_code == 200
            seats.append(response.json()["studentId"])
        assert seats == [103, 104]
        assert all(reg.student(s)["assigned"] for s in seats)
        assert reg.workshop_by_notebook("WKSHP-Tiny")["capacity"] == 3
        full = httpx.post(
            f"{reg.url}/customer",
            json={"title": "Tiny", "name": "late", "email": "late@example.com"},
        )
        assert full.status_code == 202
        assert full.text == "Registration full, no student account. Please try again later"


# -- seeding ----------------------------------------------------------------------------
def test_seeding_from_the_fixture_workshops(fixtures_dir, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'seed.db'}")
    ensure_schema(engine)
    sessions = make_sessionmaker(engine)
    options = SeedOptions(base_stdid=1000)
    with sessions() as session, session.begin():
        seed_trees(session, [fixtures_dir], options)
    with sessions() as session, session.begin():
        seed_trees(session, [fixtures_dir], options)  # idempotent
    with start_registry(tmp_path, trees=[fixtures_dir], base_stdid=1000) as reg:
        shops = {w["notebook"]: w for w in httpx.get(f"{reg.url}/workshops").json()}
        assert len(shops) == len(list(fixtures_dir.glob("*/wod.yml")))
        api = shops["WKSHP-API101"]
        assert api["name"] == "API 101 - API basics and the value they provide"
        assert api["range"] == [1, 6] and api["capacity"] == 20 and api["active"] is True
        assert api["compile"] == "false" and api["category"] == ["Open Source"]
        docker = shops["WKSHP-Docker101"]
        assert docker["monoappliance"] is True and docker["reset"] is True
        first, last = reg.student(1001), reg.student(1006)
        assert first["username"] == "student1" and last["username"] == "student6"
        assert first["assigned"] is False
        assert reg.student(1000) is None
    with sessions() as session:
        assert session.query(Workshop).count() == len(shops)
    engine.dispose()


def test_seeding_rejects_a_bad_wod_yml(tmp_path):
    tree = tmp_path / "tree"
    (tree / "WKSHP-Broken").mkdir(parents=True)
    (tree / "WKSHP-Broken" / "wod.yml").write_text("name: Broken\nrange: 7\n")
    with pytest.raises(SeedError, match=r"WKSHP-Broken/wod.yml.*range"):
        with start_registry(tmp_path, trees=[tree]):
            pass


@pytest.mark.parametrize("value", ["'1,10'", "[true, 2]", "[1, 2, 3]", "[5, 1]", "[-1, 2]"])
def test_seeding_rejects_a_range_that_is_not_two_student_numbers(tmp_path, value):
    tree = tmp_path / "tree"
    (tree / "WKSHP-Odd").mkdir(parents=True)
    (tree / "WKSHP-Odd" / "wod.yml").write_text(f"name: Odd\nrange: {value}\n")
    with pytest.raises(SeedError, match=r"WKSHP-Odd/wod.yml.*range"):
        with start_registry(tmp_path, trees=[tree]):
            pass


# -- the command ------------------------------------------------------------------------
def test_wod_registry_command_serves_seeded_workshops(tmp_path, fixtures_dir):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {
        **os.environ,
        "WOD_STATE_DIR": str(tmp_path),
        "WOD_APIDB_USER": "mod",
        "WOD_APIDB_PASSWORD": "mod-pw",
    }
    wod = [str(Path(sys.executable).parent / "wod")]
    added = subprocess.run(
        [
            *wod,
            "registry",
            "add-user",
            "boss",
            "--password",
            "boss-pw",
            "--role",
            "admin",
            "--db",
            db,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    port = get_free_port()
    proc = subprocess.Popen(
        [*wod, "registry", "--port", str(port), "--db", db, "--notebooks", str(fixtures_dir)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 20
        while True:
            try:
                shops = httpx.get(f"{base}/workshops", timeout=1).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "wod registry did not start"
                time.sleep(0.1)
        assert "WKSHP-API101" in {w["notebook"] for w in shops}
        mod = httpx.post(f"{base}/login", json={"username": "mod", "password": "mod-pw"})
        assert mod.json()["roles"] == ["ROLE_MODERATOR"]
        boss = httpx.post(f"{base}/login", json={"username": "boss", "password": "boss-pw"})
        assert boss.json()["roles"] == ["ROLE_ADMIN"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_ensure_user_needs_a_password(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    ensure_schema(engine)
    with make_sessionmaker(engine)() as session, pytest.raises(SeedError):
        ensure_user(session, "x", "")
    engine.dispose()


def test_a_body_is_read_by_its_content_type_as_the_api_db_does(registry):
    """express.json + urlencoded: a JSON text sent as text/plain is no body at all (the
    api-db ignores it), a form body is read; a JSON body that is not an object is 400."""
    headers = {"x-access-token": token(registry)}
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    url = f"{registry.url}/customer/{customer['id']}"
    ignored = httpx.put(
        url, content=b'{"active": true}', headers={**headers, "content-type": "text/plain"}
    )
    assert ignored.status_code == 200 and ignored.json()["active"] is False
    assert registry.customer(customer["id"])["active"] is False
    form = httpx.put(url, data={"active": "true", "location": "lab"}, headers=headers)
    assert form.status_code == 200 and form.json()["active"] is True
    assert form.json()["location"] == "lab"
    charset = httpx.put(
        url,
        content=b'{"cleaned": true}',
        headers={**headers, "content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200 and charset.json()["cleaned"] is True
    for body in (b"[1, 2]", b'"text"', b"{not json"):
        bad = httpx.put(url, content=body, headers={**headers, "content-type": JSON})
        assert bad.status_code == 400, body
    login_form = httpx.post(
        f"{registry.url}/login",
        data={"username": registry.username, "password": registry.password},
    )
    assert login_form.status_code == 200 and login_form.json()["accessToken"]
    login_text = httpx.post(
        f"{registry.url}/login",
        content=f'{{"username": "{registry.username}", "password": "{registry.password}"}}',
        headers={"content-type": "text/plain"},
    )
    assert login_text.status_code == 404 and login_text.json() == {"message": "User Not found."}


# -- reading students and customers --------------------------------------------------------
def test_students_and_customers_are_read_like_the_api_db(registry_factory):
    reg = registry_factory(users=(("viewer", "viewer-pw", ("user",)),))
    notebook = reg.workshops()[0]["notebook"]
    customer = reg.create_customer(notebook)
    seat = customer["studentId"]
    reg.create_student(seat, password="Seat-Secret-1")
    moderator = {"x-access-token": token(reg)}
    viewer = {"x-access-token": login(reg, "viewer", "viewer-pw").json()["accessToken"]}

    for path in ("/students", f"/students/{seat}", "/customers"):
        missing = httpx.get(f"{reg.url}{path}")
        assert (missing.status_code, missing.json()) == (403, {"message": "No token provided!"})
        bad = httpx.get(f"{reg.url}{path}", headers={"x-access-token": "not.a.token"})
        assert (bad.status_code, bad.json()) == (401, {"message": "Unauthorized!"})

    rows = httpx.get(f"{reg.url}/students", headers=moderator).json()
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) > 1
    one = httpx.get(f"{reg.url}/students/{seat}", headers=moderator)
    assert one.status_code == 200
    assert one.json() == next(r for r in rows if r["id"] == seat)
    assert one.json()["assigned"] is True and one.json()["password"] == "Seat-Secret-1"
    # The seat's password goes only to the roles that set it.
    seen = httpx.get(f"{reg.url}/students/{seat}", headers=viewer).json()
    assert "password" not in seen and seen["assigned"] is True
    listed = httpx.get(f"{reg.url}/students", headers=viewer).json()
    assert all("password" not in r for r in listed) and len(listed) == len(rows)
    assert "Seat-Secret-1" not in httpx.get(f"{reg.url}/students", headers=viewer).text

    for unknown in ("99999", "abc", "9" * 30):
        response = httpx.get(f"{reg.url}/students/{unknown}", headers=moderator)
        assert (response.status_code, response.text) == (400, "Student Not Found")

    customers = httpx.get(f"{reg.url}/customers", headers=viewer).json()
    assert [c["id"] for c in customers] == [customer["id"]]
    assert customers[0]["studentId"] == seat


def test_wod_registry_keeps_its_database_private(tmp_path):
    """registry.db holds e-mails and the seats' passwords: created 0600 under a 0700 state
    folder, and a file left readable by an older version is closed on the next open."""
    state = tmp_path / "state"
    env = {**os.environ, "WOD_STATE_DIR": str(state), "WOD_APIDB_USER": "mod"}
    wod = [str(Path(sys.executable).parent / "wod"), "registry", "add-user"]
    first = subprocess.run(
        [*wod, "boss", "--password", "boss-pw"], env=env, capture_output=True, text=True, timeout=30
    )
    assert first.returncode == 0, first.stderr
    db = state / "registry.db"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    db.chmod(0o644)
    again = subprocess.run(
        [*wod, "boss2", "--password", "pw2"], env=env, capture_output=True, text=True, timeout=30
    )
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for extra in state.glob("registry.db-*"):
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_add_user_takes_its_password_from_the_variable_its_help_names(registry_factory):
    """``--password`` advertises ``WOD_REGISTRY_PASSWORD``; the settings loader must not
    refuse that variable as an unknown setting."""
    reg = registry_factory()
    env = {
        **os.environ,
        "WOD_STATE_DIR": str(Path(reg.db_url.split("///")[1]).parent),
        "WOD_REGISTRY_PASSWORD": "from-the-env-1",
    }
    wod = [str(Path(sys.executable).parent / "wod"), "registry", "--db", reg.db_url]
    done = subprocess.run(
        [*wod, "add-user", "envuser", "--role", "moderator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "from-the-env-1" not in done.stdout + done.stderr
    answer = login(reg, "envuser", "from-the-env-1")
    assert answer.status_code == 200 and answer.json()["accessToken"]
