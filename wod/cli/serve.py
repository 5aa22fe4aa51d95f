"""``wod serve``: run the SMTP intake, the HTTP API and the workers until stopped."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

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
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log lines as text or one JSON object per line (default: the 'log_format' setting).",
)
@pass_ctx
def serve(
    ctx: Context,
    workers: int | None,
    no_smtp: bool,
    no_http: bool,
    stop_timeout: float,
    runner: str,
    log_format: str | None,
) -> None:
    """Run the backend: resume interrupted jobs, then SMTP intake + HTTP + workers.

    Logs at INFO (-v for debug) to stderr (journald under systemd). Stops cleanly on
    SIGTERM or SIGINT; SIGHUP re-reads the settings and says which changes need a restart."""
    from wod.logs import configure
    from wod.ops.preflight import secure_settings_file
    from wod.server import Server, StartRefused, run_server
    from wod.settings import DEFAULT_CONFIG_PATHS, load_settings

    os.umask(0o077)  # every file the daemon creates is its own, also when started by hand
    settings = ctx.settings
    verbose = click.get_current_context().find_root().params.get("verbose") or 0
    configure(log_format or settings.log_format, logging.DEBUG if verbose else logging.INFO)
    path = ctx.config or os.environ.get("WOD_CONFIG")
    if path is None:
        path = next((str(p) for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
    if path is not None and Path(path).is_file():
        for note in secure_settings_file(Path(path)):
            logging.getLogger("wod.serve").warning("%s", note)
    factory = _load(runner)
    try:
        server = Server(
            settings,
            runner_factory=factory,
            workers=workers,
            smtp=not no_smtp,
            http=not no_http,
            stop_timeout=stop_timeout,
            reload_settings=lambda: load_settings(path),
        )
        run_server(server)
    except StartRefused as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
    except WodError as exc:
        raise click.ClickException(exc.reason) from None
    logging.getLogger("wod.serve").info("wod serve stopped")
