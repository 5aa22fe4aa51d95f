"""``wod deliver``: render the install's ``*.sh*.j2`` scripts and ``<group>/*.yml.j2`` files."""

from __future__ import annotations

import sys

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported
from wod.ops.deliver import deliver as run_deliver

COMMANDS = ["deliver"]


@click.command("deliver")
@click.option("--dry-run", is_flag=True, help="Render and compare only; write nothing.")
@click.option("--no-mail", is_flag=True, help="Do not mail monitor on failure.")
@json_option
@pass_ctx
def deliver(ctx: Context, dry_run: bool, no_mail: bool, as_json: bool) -> None:
    """Render the templated scripts (0755) and Ansible files (0644) with the install's
    variables, each atomically; say which changed.  Exit 1 (and mail monitor) on failure."""
    with reported():
        report = run_deliver(ctx.settings, dry_run=dry_run, mail=not no_mail)
    if as_json:
        echo_json(report)
    else:
        for line in report.log_text().splitlines():
            click.echo(line, err=line.startswith(("failed", "error")))
        if report.mailed:
            click.echo(f"failure mailed to monitor ({report.mailed})", err=True)
    if not report.ok:
        sys.exit(1)
