"""``wod watch [--list] [--json]``: what the abuse watcher (inside ``wod serve``) did.

Each action: when, what (throttle, notify, kill, purge), the rule (blacklist, cpu,
kernel-age), the seat's account, the process and the evidence.
"""

from __future__ import annotations

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported, when

COMMANDS = ["watch"]


@click.command("watch")
@click.option(
    "--list", "listing", is_flag=True, default=True, help="List the recorded actions (the default)."
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--student", "stdid", type=int, help="Only this seat.")
@json_option
@pass_ctx
def watch(ctx: Context, listing: bool, limit: int, stdid: int | None, as_json: bool) -> None:
    """Actions of the abuse watcher, newest first."""
    from wod.ops.watch import list_actions

    with reported():
        actions = list_actions(ctx.settings, limit=limit, stdid=stdid)
    if as_json:
        echo_json(actions)
        return
    if not actions:
        click.echo("no action recorded")
        return
    for a in actions:
        cpu = f" {a.cpu:.0f}%" if a.cpu is not None else ""
        click.echo(
            f"{when(a.time)}  {a.action:<13} {a.rule:<10} {a.account:<12} pid {a.pid:<7} "
            f"{a.process or a.cmdline[:20]}{cpu}: {a.detail}"
        )
