"""``wod registry``: run the api-db-compatible registry; ``wod registry add-user``.

Defaults come from the settings (see :mod:`wod.ops.registry`).
"""

from __future__ import annotations

from pathlib import Path

import click

from wod.cli import Context, pass_ctx, reported
from wod.ops import registry as ops

COMMANDS = ["registry"]


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

    with reported():
        built = ops.registry_app(
            ctx.settings,
            host=host,
            port=port,
            db=db,
            notebooks=notebooks,
            base_stdid=base_stdid,
            token_ttl=token_ttl,
            user=user,
            seed=not no_seed,
        )
    if built.generated_password:
        login = user or ctx.settings.apidb_user
        click.echo(
            f"apidb_password is not set: login {login!r} gets password {built.generated_password}",
            err=True,
        )
    click.echo(
        f"registry on http://{built.host}:{built.port}/api (seeded from "
        f"{', '.join(map(str, built.seeded_from)) or 'nothing'})",
        err=True,
    )
    uvicorn.run(built.app, host=built.host, port=built.port, log_level="info", lifespan="off")


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
    db = db or click_ctx.meta.get("wod.registry.db")
    with reported():
        ops.add_user(ctx.settings, username, password, roles=roles, email=email, db=db)
    click.echo(f"registry user {username} ({', '.join(roles)}) saved")
