"""The api-db-compatible registry as an operation: build its app, add a login.

``wod registry`` serves :func:`registry_app` with uvicorn; defaults come from the settings so
that one ``wod.yml`` serves backend and registry: it listens where ``apidb_url`` points,
seeds workshops from ``notebooks_dir`` (and ``private_notebooks_dir``) and a moderator login
``apidb_user``/``apidb_password`` (a random password, returned, when none is set).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wod.ops.common import OpsError
from wod.settings import Settings


def db_url(settings: Settings, db: str | None = None) -> str:
    """``db``, else ``registry_db_url``, else ``sqlite:///<state_dir>/registry.db``."""
    if db:
        return db
    if settings.registry_db_url:
        return settings.registry_db_url
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{settings.state_dir / 'registry.db'}"


def trees(settings: Settings, notebooks: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """The notebooks trees workshops are seeded from."""
    if notebooks:
        return list(notebooks)
    found = [settings.notebooks_dir, settings.private_notebooks_dir]
    return [t for t in found if t is not None and t.is_dir()]


@dataclass
class RegistryApp:
    """A built registry: its ASGI ``app``, where it listens, what it was seeded from, and
    the moderator password when one was generated (to show once)."""

    app: Any
    host: str
    port: int
    seeded_from: list[Path]
    generated_password: str | None = None


def registry_app(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    db: str | None = None,
    notebooks: list[Path] | tuple[Path, ...] = (),
    base_stdid: int | None = None,
    token_ttl: float | None = None,
    user: str | None = None,
    seed: bool = True,
) -> RegistryApp:
    """The registry app, seeded (unless ``seed`` is false) from the notebooks trees."""
    from wod.registry import RegistryConfig, SeedError, SeedOptions, build_app

    target = urlsplit(settings.apidb_url)
    user = user or settings.apidb_user
    password = settings.apidb_password
    generated = None
    if not password and seed:
        password = generated = secrets.token_urlsafe(12)
    base = settings.base_stdid if base_stdid is None else base_stdid
    config = RegistryConfig(
        db_url=db_url(settings, db),
        token_ttl=token_ttl or settings.registry_token_ttl,
        base_stdid=base,
    )
    if settings.registry_secret:
        config.secret = settings.registry_secret
    seeded = trees(settings, notebooks) if seed else []
    users = [(user, password, ("moderator",))] if seed else []
    options = SeedOptions(
        base_stdid=base,
        account_pattern=settings.account_pattern,
        url_pattern=settings.hub_url.rstrip("/") + "/user/{account}/lab",
    )
    try:
        app = build_app(config, seeded, options, users)
    except SeedError as exc:
        raise OpsError(str(exc)) from None
    return RegistryApp(
        app,
        host or target.hostname or "127.0.0.1",
        port or target.port or 8021,
        seeded,
        generated,
    )


def add_user(
    settings: Settings,
    username: str,
    password: str,
    *,
    roles: tuple[str, ...] = ("moderator",),
    email: str | None = None,
    db: str | None = None,
) -> None:
    """Create a registry login, or reset its password and roles."""
    from wod.registry import SeedError
    from wod.registry.models import ensure_schema, make_engine, make_sessionmaker
    from wod.registry.seed import ensure_user

    engine = make_engine(db_url(settings, db))
    ensure_schema(engine)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            ensure_user(session, username, password, email=email, roles=roles)
    except SeedError as exc:
        raise OpsError(str(exc)) from None
    finally:
        engine.dispose()
