"""``wod deploy``, ``wod vars``, ``wod completion``: workshop content for admins.

For writing or debugging a workshop: deploy it into one student's home (or only check that
every template renders with ``--dry-run``), show the variables a student's templates see and
where each comes from (secrets masked), and the completion ratio of a student's copy.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import click

from wod.cli import Context, pass_ctx
from wod.errors import WodError

COMMANDS = ["deploy", "vars_", "completion"]


def _owner(ctx: Context, stdid: int) -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(ctx.settings.account(stdid))
    except KeyError:
        return None, None
    return entry.pw_uid, entry.pw_gid


def _extra(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--var")
        out[name] = value
    return out


student_option = click.option(
    "--student",
    "-s",
    "stdid",
    type=int,
    required=True,
    help="Student number N (account student<N>).",
)
var_option = click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra variable (highest precedence); repeatable.",
)


@click.command("deploy")
@click.argument("workshop")
@student_option
@click.option("--dry-run", is_flag=True, help="List what would be copied/rendered; write nothing.")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Deploy into this folder instead of the student's home.",
)
@var_option
@pass_ctx
def deploy(
    ctx: Context,
    workshop: str,
    stdid: int,
    dry_run: bool,
    home: Path | None,
    variables: tuple[str, ...],
) -> None:
    """Deploy WORKSHOP into a student's home, as a CREATE would (SPEC 4.3)."""
    from wod.content.service import Content

    content = Content(ctx.settings)
    uid, gid = _owner(ctx, stdid)
    target = home or ctx.settings.home(stdid)
    try:
        report = content.deploy(
            workshop, stdid, target, uid=uid, gid=gid, dry_run=dry_run, extra=_extra(variables)
        )
    except WodError as exc:
        raise click.ClickException(exc.reason) from None
    if dry_run:
        for rel, action in report.files:
            click.echo(f"{action:7} {rel}")
        click.echo(
            f"dry run: {report.rendered} to render, {report.copied} to copy, "
            f"{report.links} links, {report.folders} folders; every template renders"
        )
        return
    click.echo(
        f"deployed {report.workshop} to {report.path}: {report.rendered} rendered, "
        f"{report.copied} copied, {report.bytes} bytes in {report.seconds * 1000:.1f} ms"
    )


@click.command("vars")
@click.argument("workshop")
@student_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@var_option
@pass_ctx
def vars_(
    ctx: Context, workshop: str, stdid: int, as_json: bool, variables: tuple[str, ...]
) -> None:
    """Show the variables WORKSHOP's templates see for a student, and their origin."""
    from wod.content.service import Content

    content = Content(ctx.settings)
    try:
        rows = content.explain(workshop, stdid, extra=_extra(variables))
    except WodError as exc:
        raise click.ClickException(exc.reason) from None
    if as_json:
        click.echo(
            json.dumps({n: {"value": v, "origin": o} for n, v, o in rows}, indent=2, default=str)
        )
        return
    width = max((len(n) for n, _, _ in rows), default=0)
    for name, value, origin in rows:
        click.echo(f"{name:<{width}}  {value!s:<30}  {origin}")


@click.command("completion")
@click.argument("workshop")
@student_option
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Measure this folder's copy instead of the student's home.",
)
@pass_ctx
def completion(ctx: Context, workshop: str, stdid: int, home: Path | None) -> None:
    """Completion ratio (executed / all code cells) of a student's copy of WORKSHOP."""
    from wod.content.service import Content

    content = Content(ctx.settings)
    try:
        content.catalog.resolve(workshop)
        result = content.completion_details(workshop, home or ctx.settings.home(stdid))
    except WodError as exc:
        raise click.ClickException(exc.reason) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{result.percent}% ({result.executed} of {result.total} code cells executed)")
