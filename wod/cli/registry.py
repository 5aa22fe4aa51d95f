"""``wod registry``: run the api-db-compatible registry; ``wod registry add-user``.

Defaults come from the settings so that one ``wod.yml`` serves backend and registry: it
listens where ``apidb_url`` points, seeds workshops from ``notebooks_dir`` (and
``private_notebooks_dir``) and a moderator login ``apidb_user``/``apidb_password``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import click

from wod.cli import Context, pass_ctx
from wod.settings import Settings

COMMANDS = ["registry"]


def _db_url(settings: Settings, db: str | None) -> str:
    if db:
        return db
    if settings.registry_db_url:
        return settings.registry_db_url
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.state_dir / 'registry.db'}"


def _trees(settings: Settings, notebooks: tuple[Path, ...]) -> list[Path]:
    if notebooks:
        return list(notebooks)
    trees = [settings.notebooks_dir, settings.private_notebooks_dir]
    return [t for t in trees if t is not None and t.is_dir()]


@click.group("registry", invoke_without_command=True)
@click.option("--host", help="Address to bind (default: the host of apidb_url).")
@click.option("--port", type=int, help="Port (default: the port of apidb_url).")
@click.option(
    "--db",
    help="SQLAlchemy URL (default: registry_db_url, else sqlite:///<state_dir>/registry.db).",
)
@click.option(
    "--notebooks",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Notebooks tree to seed workshops from (repeatable; default: "
    "notebooks_dir and private_notebooks_dir).",
)
@click.option("--base-stdid", type=int, help="Student id offset (default: base_stdid).")
@click.option("--token-ttl", type=float, help="Token lifetime in s (default: registry_token_ttl).")
@click.option("--user", help="Moderator login to create (default: apidb_user).")
@click.option("--no-seed", is_flag=True, help="Serve the database as it is.")
@pass_ctx
@click.pass_context
def registry(
    click_ctx: click.Context,
    ctx: Context,
    host: str | None,
    port: int | None,
    db: str | None,
    notebooks: tuple[Path, ...],
    base_stdid: int | None,
    token_ttl: float | None,
    user: str | None,
    no_seed: bool,
) -> None:
    """Run the api-db-compatible registry (SQLite by default) until interrupted."""
    if click_ctx.invoked_subcommand is not None:
        click_ctx.meta["wod.registry.db"] = db
        return
    import uvicorn

    from wod.registry import RegistryConfig, SeedError, SeedOptions, build_app

    settings = ctx.settings
    target = urlsplit(settings.apidb_url)
    host = host or target.hostname or "127.0.0.1"
    port = port or target.port or 8021
    user = user or settings.apidb_user
    password = settings.apidb_password
    if not password and not no_seed:
        password = secrets.token_urlsafe(12)
        click.echo(f"apidb_password is not set: login {user!r} gets password {password}", err=True)
    base = settings.base_stdid if base_stdid is None else base_stdid
    config = RegistryConfig(
        db_url=_db_url(settings, db),
        token_ttl=token_ttl or settings.registry_token_ttl,
        base_stdid=base,
    )
    if settings.registry_secret:
        config.secret = settings.registry_secret
    trees = [] if no_seed else _trees(settings, notebooks)
    users = [] if no_seed else [(user, password, ("moderator",))]
    try:
        app = build_app(
            config,
            trees,
            SeedOptions(
                base_stdid=base,
                account_pattern=settings.account_pattern,
                url_pattern=settings.hub_url.rstrip("/") + "/user/{account}/lab",
            ),
            users,
        )
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"registry on http://{host}:{port}/api (seeded from "
        f"{', '.join(map(str, trees)) or 'nothing'})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off")


@registry.command("add-user")
@click.argument("username")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="WOD_REGISTRY_PASSWORD",
    show_envvar=True,
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    default=("moderator",),
    show_default=True,
    type=click.Choice(["user", "moderator", "admin"]),
)
@click.option("--email")
@click.option("--db", help="SQLAlchemy URL (default as for 'wod registry').")
@pass_ctx
@click.pass_context
def add_user(
    click_ctx: click.Context,
    ctx: Context,
    username: str,
    password: str,
    roles: tuple[str, ...],
    email: str | None,
    db: str | None,
) -> None:
    """Create a login USERNAME, or reset its password and roles."""
    from wod.registry import SeedError
    from wod.registry.models import ensure_schema, make_engine, make_sessionmaker
    from wod.registry.seed import ensure_user

    db = db or click_ctx.meta.get("wod.registry.db")
    engine = make_engine(_db_url(ctx.settings, db))
    ensure_schema(engine)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            ensure_user(session, username, password, email=email, roles=roles)
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"registry user {username} ({', '.join(roles)}) saved")
