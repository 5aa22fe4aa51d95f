"""The registry: a standalone, api-db-compatible REST service (SPEC 3.6).

It answers the api-db routes the backend calls, with the same paths, JSON and errors, on
SQLite (or any SQLAlchemy URL), seeded from the ``wod.yml`` files of notebooks trees.  It
lets the whole loop run on one machine and is the real peer of the tests; production
points the backend at the upstream api-db instead.

- ``models.py``   tables shaped like the api-db's, and update-value coercion
- ``security.py`` scrypt password hashes, expiring HS256 tokens
- ``seed.py``     workshops and students from ``wod.yml``, login users
- ``seats.py``    registration: a customer gets a free student of the workshop's range
- ``rows.py``     one row by id on a Connection: the roles check and the calls of every job
- ``app.py``      the FastAPI app (``create_app``)

:func:`build_app` is the one-call entry used by ``wod registry`` and the test fixture.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI

from wod.registry.app import RegistryConfig, RegistryState, create_app
from wod.registry.seed import SeedError, SeedOptions, ensure_user, seed_trees

__all__ = [
    "RegistryConfig",
    "RegistryState",
    "SeedError",
    "SeedOptions",
    "build_app",
    "create_app",
    "state_of",
]


def state_of(app: FastAPI) -> RegistryState:
    return app.state.registry


def build_app(
    config: RegistryConfig,
    trees: Iterable[Path] = (),
    options: SeedOptions | None = None,
    users: Iterable[tuple[str, str, tuple[str, ...]]] = (),
) -> FastAPI:
    """The registry app, its schema created and seeded from ``trees`` and ``users``
    (``(name, password, roles)``); raises :class:`SeedError` on a bad ``wod.yml``."""
    options = options or SeedOptions(base_stdid=config.base_stdid)
    app = create_app(config)
    with state_of(app).session() as session:
        trees = list(trees)
        if trees:
            seed_trees(session, trees, options)
        for name, password, roles in users:
            ensure_user(session, name, password, roles=roles)
    return app
