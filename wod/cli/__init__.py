"""The ``wod`` command: one entry point, one module per area.

This package is the only place that prints or exits.  Each area adds its commands in its
own module (``jobs.py``, ``content.py``…) and is registered in :func:`main`'s group below.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from wod.errors import WodError
from wod.ops.version import version_text
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

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@contextmanager
def reported() -> Iterator[None]:
    """Run an operation; its error becomes a one-line ``Error: …`` and exit status 1."""
    try:
        yield
    except WodError as exc:
        message = str(exc)
        if exc.output.strip():
            message += "\n" + exc.output.rstrip()
        raise click.ClickException(message) from None


def echo_json(value: Any) -> None:
    """A typed result as indented JSON on stdout."""
    from wod.ops.common import jsonable

    click.echo(json.dumps(jsonable(value), indent=2, default=str))


class _Age(click.ParamType):
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or seconds -> seconds (exit 2 when not)."""

    name = "age"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        from wod.values import parse_age

        if isinstance(value, float):
            return value
        try:
            return parse_age(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


AGE = _Age()


def when(stamp: float | None) -> str:
    """A timestamp for people: local ISO time, or ``-``."""
    from wod.values import local_time

    return local_time(stamp) or "-"


@click.group()
@click.option(
    "-c",
    "--config",
    envvar="WOD_CONFIG",
    type=click.Path(dir_okay=False),
    help="Settings file (default: $WOD_CONFIG, ./wod.yml, /etc/wod/wod.yml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(version_text(), message="%(prog)s %(version)s")
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
