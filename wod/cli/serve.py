"""``wod serve``: run the SMTP intake, the HTTP API and the workers until stopped."""

from __future__ import annotations

import importlib

import click

from wod.cli import Context, pass_ctx
from wod.errors import WodError

COMMANDS = ["serve"]


def _load(spec: str):
    module, _, name = spec.partition(":")
    if not module or not name:
        raise click.BadParameter("expected MODULE:CALLABLE", param_hint="--runner")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec}: {exc}", param_hint="--runner") from None


@click.command("serve")
@click.option("--workers", type=int, help="Parallel jobs (default: the 'workers' setting).")
@click.option("--no-smtp", is_flag=True, help="Do not start the SMTP listener.")
@click.option("--no-http", is_flag=True, help="Do not start the HTTP API.")
@click.option(
    "--stop-timeout",
    default=30.0,
    show_default=True,
    help="Seconds to let running jobs finish on SIGTERM/SIGINT.",
)
@click.option(
    "--runner",
    default="wod.lifecycle:make_runner",
    show_default=True,
    help="MODULE:CALLABLE building the job runner from (settings, queue).",
)
@pass_ctx
def serve(
    ctx: Context,
    workers: int | None,
    no_smtp: bool,
    no_http: bool,
    stop_timeout: float,
    runner: str,
) -> None:
    """Run the backend: resume interrupted jobs, then SMTP intake + HTTP + workers.

    Stops cleanly on SIGTERM or SIGINT."""
    from wod.server import Server, run_server

    settings = ctx.settings
    factory = _load(runner)
    try:
        server = Server(
            settings,
            runner_factory=factory,
            workers=workers,
            smtp=not no_smtp,
            http=not no_http,
            stop_timeout=stop_timeout,
        )
        run_server(server)
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
    except WodError as exc:
        raise click.ClickException(exc.reason) from None
    click.echo("wod serve stopped", err=True)
