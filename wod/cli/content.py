"""``wod deploy``, ``wod vars``, ``wod completion``: workshop content for admins.

For writing or debugging a workshop: deploy it into one student's home (or only check that
every template renders with ``--dry-run``), show the variables a student's templates see and
where each comes from (secrets masked), and the completion ratio of a student's copy.
"""

from __future__ import annotations

from pathlib import Path

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported
from wod.ops import content as ops
from wod.ops.common import jsonable

COMMANDS = ["deploy", "vars_", "completion"]

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
@json_option
@pass_ctx
def deploy(
    ctx: Context,
    workshop: str,
    stdid: int,
    dry_run: bool,
    home: Path | None,
    variables: tuple[str, ...],
    as_json: bool,
) -> None:
    """Deploy WORKSHOP into a student's home, as a CREATE would (SPEC 4.3)."""
    with reported():
        report = ops.deploy(
            ctx.settings,
            workshop,
            stdid,
            home=home,
            dry_run=dry_run,
            variables=ops.parse_variables(variables),
        )
    if as_json:
        echo_json(report)
        return
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
@json_option
@var_option
@pass_ctx
def vars_(
    ctx: Context, workshop: str, stdid: int, as_json: bool, variables: tuple[str, ...]
) -> None:
    """Show the variables WORKSHOP's templates see for a student, and their origin."""
    with reported():
        rows = ops.variables(ctx.settings, workshop, stdid, extra=ops.parse_variables(variables))
    if as_json:
        echo_json({r.name: {"value": r.value, "origin": r.origin} for r in rows})
        return
    width = max((len(r.name) for r in rows), default=0)
    for r in rows:
        click.echo(f"{r.name:<{width}}  {r.value!s:<30}  {r.origin}")


@click.command("completion")
@click.argument("workshop")
@student_option
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Measure this folder's copy instead of the student's home.",
)
@json_option
@pass_ctx
def completion(ctx: Context, workshop: str, stdid: int, home: Path | None, as_json: bool) -> None:
    """Completion ratio (executed / all code cells) of a student's copy of WORKSHOP."""
    with reported():
        result = ops.completion(ctx.settings, workshop, stdid, home=home)
    if as_json:
        echo_json({**jsonable(result), "percent": result.percent})
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{result.percent}% ({result.executed} of {result.total} code cells executed)")
