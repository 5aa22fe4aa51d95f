"""``wod init DIR``: write a working local install (settings file and layout)."""

from __future__ import annotations

from pathlib import Path

import click

from wod.ops.init import init_install
from wod.settings import SettingsError, load_settings

COMMANDS = ["init"]


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing settings file.")
@click.option("--no-samples", is_flag=True, help="Do not copy the bundled sample workshops.")
@click.option("--smtp-port", type=int, default=2525, show_default=True)
@click.option("--http-port", type=int, default=8025, show_default=True)
@click.option("--registry-port", type=int, default=8021, show_default=True)
def init(
    directory: Path,
    force: bool,
    no_samples: bool,
    smtp_port: int,
    http_port: int,
    registry_port: int,
) -> None:
    """Create a self-contained local install under DIRECTORY."""
    values = {
        "smtp_port": smtp_port,
        "http_port": http_port,
        "apidb_url": f"http://127.0.0.1:{registry_port}/api",
    }
    try:
        config = init_install(
            directory,
            force=force,
            values=values,
            **({"samples": None} if no_samples else {}),
        )
        load_settings(config, environ={})
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {exc.filename or directory}: {exc.strerror}"
        ) from None
    except SettingsError as exc:
        raise click.ClickException(f"generated settings do not load: {exc}") from None
    click.echo(f"wrote {config}")
    click.echo(
        "this is a local/demo layout (demo: true, directory accounts, no hub); "
        "for a production JupyterHub host use `wod install`"
    )
    click.echo(f"next: wod -c {config} accounts provision && wod -c {config} serve")
