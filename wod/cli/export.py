"""``wod export``: a student's notebooks of a workshop as PDF, Word or HTML."""

from __future__ import annotations

from pathlib import Path

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported
from wod.ops import export as ops

COMMANDS = ["export"]


@click.command("export")
@click.argument("workshop")
@click.option("--student", "-s", "stdid", type=int, help="Student number N.")
@click.option("--range", "students", metavar="A-B", help="Students A..B (or A,B) instead.")
@click.option(
    "--format", "-f", "fmt", type=click.Choice(ops.FORMATS), required=True, help="Output format."
)
@click.option(
    "--into",
    type=click.Path(path_type=Path),
    help="Write into DIR/<account>/<workshop>/ instead of next to the notebooks.",
)
@json_option
@pass_ctx
def export(
    ctx: Context,
    workshop: str,
    stdid: int | None,
    students: str | None,
    fmt: str,
    into: Path | None,
    as_json: bool,
) -> None:
    """Export a student's notebooks of WORKSHOP (upstream's PDF / WORD test actions):
    next to them (mode 0644, the student's) or into a folder."""
    if (stdid is None) == (students is None):
        raise click.UsageError("give --student N or --range A-B")
    many = students is not None

    def shown(p: ops.Progress) -> None:
        if many and not as_json:
            click.echo(f"[{p.done}/{p.total}] student {p.stdid}: {p.files} file(s)", err=True)

    with reported():
        report = ops.export(
            ctx.settings,
            workshop,
            fmt,
            students=students if students is not None else str(stdid),
            into=into,
            progress=shown,
        )
    if as_json:
        echo_json(report)
        return
    for f in report.files:
        click.echo(f"{f.output} ({f.bytes} bytes)")
    if report.skipped:
        click.echo(
            "no copy of the workshop (skipped): " + ", ".join(map(str, report.skipped)), err=True
        )
    click.echo(
        f"{len(report.files)} notebook(s) exported to {fmt} with {report.converter} "
        f"in {report.seconds:.1f} s"
    )
