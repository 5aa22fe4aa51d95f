"""The ``wod`` command: one entry point, one module per area.

This package is the only place that prints or exits.  Each area adds its commands in its
own module (``jobs.py``, ``content.py``…) and is registered in :func:`main`'s group below.
"""

from __future__ import annotations

import logging
import sys

import click

from wod.settings import Settings, SettingsError, load_settings


class Context:
    """Lazily loaded settings shared by subcommands."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings


pass_ctx = click.make_pass_decorator(Context)


@click.group()
@click.option(
    "-c",
    "--config",
    envvar="WOD_CONFIG",
    type=click.Path(dir_okay=False),
    help="Settings file (default: $WOD_CONFIG, ./wod.yml, /etc/wod/wod.yml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="wod-backend")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int) -> None:
    """Workshops-on-Demand backend."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = Context(config)


def _register() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for name in getattr(module, "COMMANDS", ()):
            cli.add_command(getattr(module, name))


def main() -> None:
    _register()
    cli(prog_name="wod")
