"""``wod accounts``: create the student accounts, wipe homes, kill stale processes.

- ``provision [--min N --max M]`` — install time: the account, group and home of every
  student of the range (default: the configured ``user_min..user_max``); a newly created
  home is seeded like a wiped one.  Existing accounts are left as they are.
- ``wipe N[-M]`` — upstream ``cleanup-users``: empty and re-seed the homes of a range.
- ``kill-stale [--older-than 30d]`` — upstream's weekly cleanup: kill students' jupyter
  processes that have run longer than the given age.
"""

from __future__ import annotations

import re

import click

from wod.cli import Context, pass_ctx
from wod.errors import WodError
from wod.services.accounts import kill_stale, make_accounts, parse_range

COMMANDS = ["accounts"]

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r}: expected a number with s, m, h, d or w")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def _fail(exc: WodError) -> click.ClickException:
    message = exc.reason
    if exc.output.strip():
        message += "\n" + exc.output.rstrip()
    return click.ClickException(message)


@click.group("accounts")
def accounts() -> None:
    """Student accounts: create them, wipe homes, kill stale processes."""


@accounts.command("provision")
@click.option("--min", "low", type=int, help="First student number (default user_min).")
@click.option("--max", "high", type=int, help="Last student number (default user_max).")
@pass_ctx
def provision(ctx: Context, low: int | None, high: int | None) -> None:
    """Create the accounts and homes of a student range (install time)."""
    s = ctx.settings
    low = s.user_min if low is None else low
    high = s.user_max if high is None else high
    try:
        stdids = parse_range(f"{low}-{high}", s)
        acct = make_accounts(s)
        for n in stdids:
            if acct.exists(n):
                click.echo(f"{acct.name(n)}: present ({acct.home(n)})")
                continue
            acct.provision(n)
            acct.reset_home(n)
            click.echo(f"{acct.name(n)}: created ({acct.home(n)})")
    except WodError as exc:
        raise _fail(exc) from None


@accounts.command("wipe")
@click.argument("students")
@pass_ctx
def wipe(ctx: Context, students: str) -> None:
    """Empty and re-seed the homes of STUDENTS (N or N-M)."""
    try:
        stdids = parse_range(students, ctx.settings)
        acct = make_accounts(ctx.settings)
        for n in stdids:
            acct.reset_home(n)
            click.echo(f"{acct.name(n)}: home wiped ({acct.home(n)})")
    except WodError as exc:
        raise _fail(exc) from None


@accounts.command("kill-stale")
@click.option("--older-than", default="30d", show_default=True, help="Age: 30d, 12h, 90m, 45s.")
@click.option(
    "--match",
    default="jupyter",
    show_default=True,
    help="Only processes whose command line contains this.",
)
@pass_ctx
def kill_stale_cmd(ctx: Context, older_than: str, match: str) -> None:
    """Kill students' long-running jupyter processes (upstream weekly cleanup)."""
    s = ctx.settings
    age = parse_age(older_than)
    try:
        acct = make_accounts(s)
        killed = kill_stale(acct, range(s.user_min, s.user_max + 1), age, match)
    except WodError as exc:
        raise _fail(exc) from None
    for n, p in killed:
        click.echo(f"{acct.name(n)}: killed {p.pid} ({p.age / 86400:.1f} d) {p.cmdline[:80]}")
    click.echo(f"{len(killed)} process(es) killed")
