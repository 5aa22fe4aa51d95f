"""Fixture plugin: registry (see tests/conftest.py).

``registry`` starts the api-db-compatible registry in a real uvicorn server on a free port
(a thread of the test process), on a fresh SQLite file, seeded from the bundled sample
workshops and, when present, the shared fixture workshops (or, if neither exists, one
generated ``wod.yml``), with a moderator login.  It yields a :class:`RunningRegistry`:
``.url`` (base URL including ``/api``), ``.username``, ``.password``, and helpers to create
customers and read rows back.  ``registry_factory(**options)`` starts more, configured
differently (token lifetime, base_stdid, trees, users).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.plugins.paths import SAMPLES, _fixtures_path, serve_in_thread
from wod.registry import RegistryConfig, SeedOptions, build_app, state_of
from wod.registry.models import Base, Customer, Student, Workshop
from wod.registry.seats import register_customer, workshop_by_notebook
from wod.registry.security import new_secret

START_TIMEOUT = 10.0


def default_trees(tmp_path: Path) -> list[Path]:
    """Samples, then the shared fixtures (if present); else one generated workshop."""
    trees = [t for t in (SAMPLES, _fixtures_path()) if t.is_dir() and any(t.glob("*/wod.yml"))]
    if trees:
        return trees
    tree = tmp_path / "notebooks"
    (tree / "WKSHP-Sample101").mkdir(parents=True)
    (tree / "WKSHP-Sample101" / "wod.yml").write_text(
        "name: 'Sample 101'\nactive: true\ncapacity: 10\npriority: 1\nrange: [1,10]\n"
        "reset: false\nldap: false\nvarpass: true\ncompile: false\n"
    )
    return [tree]


class RunningRegistry:
    """A registry serving on a real port, plus direct access to its database."""

    def __init__(self, app: Any, url: str, username: str, password: str, db_url: str) -> None:
        self.app = app
        self.url = url
        self.username = username
        self.password = password
        self.db_url = db_url
        self.state = state_of(app)

    @property
    def logins(self) -> int:
        """Successful logins so far."""
        return self.state.logins

    def rotate_secret(self) -> None:
        """Invalidate every issued token (as a restarted api-db with a new secret does)."""
        self.state.config.secret = new_secret()

    def _row(self, model: type[Base], key: int) -> dict[str, Any] | None:
        with self.state.session() as session:
            row = session.get(model, key)
            return row.to_dict() if row is not None else None

    def workshop(self, key: int) -> dict[str, Any] | None:
        return self._row(Workshop, key)

    def workshop_by_notebook(self, notebook: str) -> dict[str, Any]:
        with self.state.session() as session:
            row = workshop_by_notebook(session, notebook)
            assert row is not None, f"no workshop {notebook} in the registry"
            return row.to_dict()

    def workshops(self) -> list[dict[str, Any]]:
        with self.state.session() as session:
            return [w.to_dict() for w in session.scalars(select(Workshop).order_by(Workshop.id))]

    def student(self, key: int) -> dict[str, Any] | None:
        """Student row by api-db id (stdid + base_stdid)."""
        return self._row(Student, key)

    def customer(self, key: int) -> dict[str, Any] | None:
        return self._row(Customer, key)

    def set_fields(self, model: type[Base], key: int, **fields: Any) -> dict[str, Any]:
        """Change a row directly (test set-up), as an admin editing the database would."""
        with self.state.session() as session:
            row = session.get(model, key)
            assert row is not None, f"no {model.__tablename__} row {key}"
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            return row.to_dict()

    def create_customer(
        self,
        notebook: str,
        email: str = "alice@example.com",
        name: str = "Alice",
        **fields: Any,
    ) -> dict[str, Any]:
        """Register a participant to ``notebook``: a free seat is assigned (its student
        row id is ``studentId``); extra ``fields`` are set on the customer row."""
        with self.state.session() as session:
            shop = workshop_by_notebook(session, notebook)
            assert shop is not None, f"no workshop {notebook} in the registry"
            row = register_customer(
                session, shop, name=name, email=email, base_stdid=self.state.config.base_stdid
            )
            for key, value in fields.items():
                setattr(row, key, value)
            session.flush()
            return row.to_dict()

    def create_student(self, key: int, **fields: Any) -> dict[str, Any]:
        """Add (or replace fields of) student row ``key``."""
        with self.state.session() as session:
            row = session.get(Student, key)
            if row is None:
                row = Student(id=key, username=f"student{key - self.state.config.base_stdid}")
                session.add(row)
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            return row.to_dict()


@contextmanager
def start_registry(
    tmp_path: Path,
    *,
    trees: list[Path] | None = None,
    token_ttl: float = 180.0,
    base_stdid: int = 0,
    username: str = "moderator",
    password: str | None = None,
    roles: tuple[str, ...] = ("moderator",),
    users: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
) -> Iterator[RunningRegistry]:
    """Run a registry in a uvicorn thread until the block ends."""
    password = password or secrets.token_urlsafe(12)
    db_url = f"sqlite:///{tmp_path / f'registry-{secrets.token_hex(4)}.db'}"
    config = RegistryConfig(db_url=db_url, token_ttl=token_ttl, base_stdid=base_stdid)
    app = build_app(
        config,
        default_trees(tmp_path) if trees is None else trees,
        SeedOptions(base_stdid=base_stdid),
        [(username, password, roles), *users],
    )
    with serve_in_thread(app, "registry", START_TIMEOUT) as port:
        yield RunningRegistry(app, f"http://127.0.0.1:{port}/api", username, password, db_url)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """The registry on a free port, seeded, with a moderator login."""
    with start_registry(tmp_path) as running:
        yield running


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    """``registry_factory(**start_registry options)`` -> another running registry."""
    stack: list[Any] = []

    def start(**options: Any) -> RunningRegistry:
        cm = start_registry(tmp_path, **options)
        running = cm.__enter__()
        stack.append(cm)
        return running

    try:
        yield start
    finally:
        while stack:
            stack.pop().__exit__(None, None, None)
