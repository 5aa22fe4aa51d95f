"""``wod seats``: each seat of the configured range, as the backend last left it."""

from __future__ import annotations

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported
from wod.ops.seats import seat_view

COMMANDS = ["seats"]


@click.command("seats")
@json_option
@click.option("--min", "first", type=int, help="First student (default user_min).")
@click.option("--max", "last", type=int, help="Last student (default user_max).")
@pass_ctx
def seats(ctx: Context, as_json: bool, first: int | None, last: int | None) -> None:
    """Show every seat: account, home, state, workshop/customer, last job (read-only)."""
    with reported():
        view = seat_view(ctx.settings, first, last)
    for note in view.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        echo_json(view.seats)
        return
    click.echo(
        f"{'SEAT':>5}  {'ACCOUNT':<12} {'HOME':<4} {'STATE':<18} {'WORKSHOP':<22} "
        f"{'CUST':>6}  LAST JOB"
    )
    for seat in view.seats:
        j = seat.last_job
        last_job = f"#{j.id} {j.verb} {j.status} {j.reason}".rstrip() if j else "-"
        click.echo(
            f"{seat.stdid:>5}  {seat.account:<12} {'yes' if seat.home else 'NO':<4} "
            f"{seat.state:<18} {seat.workshop:<22} {seat.customer or '':>6}  {last_job}"
        )
