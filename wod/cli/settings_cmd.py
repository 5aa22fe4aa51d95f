"""``wod settings``: show effective settings or the reference of all settings."""

from __future__ import annotations

import json

import click

from wod.cli import Context, pass_ctx
from wod.settings import settings_reference

COMMANDS = ["settings"]


@click.command("settings")
@click.option("--reference", is_flag=True, help="List every setting with default and help.")
@click.option("--markdown", is_flag=True, help="The reference as a Markdown table (README).")
@pass_ctx
def settings(ctx: Context, reference: bool, markdown: bool) -> None:
    """Show the effective settings (secrets masked)."""
    if markdown:
        click.echo("| setting | default | upstream name | meaning |")
        click.echo("|---|---|---|---|")
        for name, default, upstream, help_ in settings_reference():
            click.echo(f"| `{name}` | `{default}` | {upstream and f'`{upstream}`'} | {help_} |")
        return
    if reference:
        for name, default, upstream, help_ in settings_reference():
            alias = f" (upstream {upstream})" if upstream else ""
            click.echo(f"{name} = {default}{alias}\n    {help_}")
        return
    click.echo(json.dumps(ctx.settings.public_dict(), indent=2, default=str))
