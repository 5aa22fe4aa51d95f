"""``wod seats``: each seat of the configured range, as the backend last left it."""

from __future__ import annotations

import json

import click

from wod.cli import Context, pass_ctx
from wod.ops.seats import seats as seat_table
from wod.queue import JobQueue
from wod.services.accounts import make_accounts

COMMANDS = ["seats"]


@click.command("seats")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--min", "first", type=int, help="First student (default user_min).")
@click.option("--max", "last", type=int, help="Last student (default user_max).")
@pass_ctx
def seats(ctx: Context, as_json: bool, first: int | None, last: int | None) -> None:
    """Show every seat: account, home, state, workshop/customer, last job."""
    s = ctx.settings
    s.state_dir.mkdir(parents=True, exist_ok=True)
    table = seat_table(s, JobQueue(s.db_path), make_accounts(s), first, last)
    if as_json:
        click.echo(json.dumps([seat.to_dict() for seat in table], indent=2))
        return
    click.echo(
        f"{'SEAT':>5}  {'ACCOUNT':<12} {'HOME':<4} {'STATE':<18} {'WORKSHOP':<22} "
        f"{'CUST':>6}  LAST JOB"
    )
    for seat in table:
        j = seat.last_job
        last_job = f"#{j.id} {j.verb} {j.status} {j.reason}".rstrip() if j else "-"
        click.echo(
            f"{seat.stdid:>5}  {seat.account:<12} {'yes' if seat.home else 'NO':<4} "
            f"{seat.state:<18} {seat.workshop:<22} {seat.customer or '':>6}  {last_job}"
        )
