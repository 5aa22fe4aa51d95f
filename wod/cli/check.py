"""``wod check [--fix] [--json] [--monitor] [--only NAME]``: is this a compliant backend?

Exit status: 0 every check ok (or fixed, or not applicable), 1 warnings, 2 failures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported

COMMANDS = ["check"]

MARK = {"ok": "ok", "fixed": "FIXED", "warn": "WARN", "fail": "FAIL", "skipped": "skip"}


@click.command("check")
@click.option(
    "--fix",
    is_flag=True,
    help="Repair what is safe (folders, modes, ACLs, "
    "missing accounts and hub users, limits, sysctl); never deletes data.",
)
@click.option("--monitor", is_flag=True, help="Mail failures to the monitor address (timer).")
@click.option(
    "--only", "only", multiple=True, metavar="NAME", help="Run only this check (repeatable)."
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    hidden=True,
    help="Prefix of the host's /etc, /proc/sys, /home.",
)
@json_option
@pass_ctx
def check(
    ctx: Context, fix: bool, monitor: bool, only: tuple[str, ...], root: Path, as_json: bool
) -> None:
    """Check (and with --fix repair) this host as a WoD backend; exit 0 ok, 1 warn, 2 fail."""
    from wod.ops.check import run_checks, unreadable_settings

    try:
        settings = ctx.settings
    except click.ClickException as exc:  # unreadable settings are a failed check (exit 2)
        report = unreadable_settings(exc.message)
    else:
        with reported():
            report = run_checks(settings, fix=fix, only=only or None, root=root, monitor=monitor)
    if as_json:
        echo_json(report)
    else:
        width = max((len(r.name) for r in report.results), default=10)
        for r in report.results:
            click.echo(f"{MARK[r.status]:<5} {r.name:<{width}}  {r.detail}")
            if r.remedy and r.status in ("warn", "fail"):
                click.echo(f"{'':<5} {'':<{width}}  -> {r.remedy}")
        c = report.counts
        click.echo(
            f"{c['ok']} ok, {c['fixed']} fixed, {c['warn']} warning(s), {c['fail']} failure(s), "
            f"{c['skipped']} skipped in {report.seconds:.1f} s"
            + (f"; failures mailed ({report.mailed})" if report.mailed else "")
        )
    sys.exit(report.exit_code)
