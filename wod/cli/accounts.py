"""``wod accounts``: create the student accounts, wipe homes, kill stale processes.

- ``provision [--min N --max M]`` — install time: the accounts and homes of a range.
- ``wipe N[-M]`` — upstream ``cleanup-users``: empty and re-seed the homes of a range.
- ``kill-stale [--older-than 30d]`` — upstream's weekly cleanup of old jupyter processes.
"""

from __future__ import annotations

import click

from wod.cli import AGE, Context, echo_json, json_option, pass_ctx, reported
from wod.ops import accounts as ops

COMMANDS = ["accounts"]


def _rows(rows: list[ops.AccountRow], as_json: bool, verb: str) -> None:
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row.account}: {verb.get(row.action, row.action)} ({row.home})")


@click.group("accounts")
def accounts() -> None:
    """Student accounts: create them, wipe homes, kill stale processes."""


@accounts.command("provision")
@click.option("--min", "low", type=int, help="First student number (default user_min).")
@click.option("--max", "high", type=int, help="Last student number (default user_max).")
@json_option
@pass_ctx
def provision(ctx: Context, low: int | None, high: int | None, as_json: bool) -> None:
    """Create the accounts and homes of a student range (install time)."""
    with reported():
        rows = ops.provision(ctx.settings, low, high)
    _rows(rows, as_json, {})


@accounts.command("wipe")
@click.argument("students")
@json_option
@pass_ctx
def wipe(ctx: Context, students: str, as_json: bool) -> None:
    """Empty and re-seed the homes of STUDENTS (N, N-M or N,M)."""
    with reported():
        rows = ops.wipe(ctx.settings, students)
    _rows(rows, as_json, {"wiped": "home wiped"})


@accounts.command("kill-stale")
@click.option(
    "--older-than", type=AGE, default="30d", show_default=True, help="Age: 30d, 12h, 90m, 45s."
)
@click.option(
    "--match",
    default="jupyter",
    show_default=True,
    help="Only processes whose command line contains this.",
)
@json_option
@pass_ctx
def kill_stale_cmd(ctx: Context, older_than: float, match: str, as_json: bool) -> None:
    """Kill students' long-running jupyter processes (upstream weekly cleanup)."""
    with reported():
        killed = ops.kill_stale(ctx.settings, older_than, match)
    if as_json:
        echo_json(killed)
        return
    for p in killed:
        click.echo(f"{p.account}: killed {p.pid} ({p.age / 86400:.1f} d) {p.cmdline[:80]}")
    click.echo(f"{len(killed)} process(es) killed")
