"""``wod install``: set up a production backend on this host (root, idempotent)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from wod.ops.install import InstallError, InstallOptions, install

COMMANDS = ["install_cmd"]


@click.command("install")
@click.option("--dry-run", is_flag=True, help="Show each change without making it.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Install every file and folder under this prefix, named with it (tests); the "
    "accounts are real; units are not enabled.",
)
@click.option("--sender", "senders", multiple=True, help="Accepted sender (the api-db's address).")
@click.option("--allow-any-sender", is_flag=True, help="Accept requests from any sender.")
@click.option("--admin-user", default="wodadmin", show_default=True)
@click.option("--account-pattern", default="student{n}", show_default=True)
@click.option("--user-min", type=int, default=1, show_default=True)
@click.option("--user-max", type=int, default=20, show_default=True)
@click.option("--uid-base", type=int, default=2000, show_default=True)
@click.option("--gid-base", type=int, default=2000, show_default=True)
@click.option("--hub-url", default="http://127.0.0.1:8000", show_default=True)
@click.option(
    "--mail",
    type=click.Choice(["auto", "postfix", "smtp"]),
    default="auto",
    show_default=True,
    help="Mail intake: Postfix's mailbox_command (auto when Postfix is installed) or the "
    "built-in SMTP listener.",
)
@click.option("--smtp-port", type=int, default=25, show_default=True)
@click.option(
    "--smtp-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the SMTP listener binds to (0.0.0.0 for an api-db on another host).",
)
@click.option(
    "--allowed-client",
    "allowed_clients",
    multiple=True,
    help="Network (CIDR) allowed besides this host, e.g. the api-db's (SMTP and HTTP).",
)
@click.option(
    "--postfix-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/postfix"),
    show_default=True,
    help="Postfix's configuration folder (under --root).",
)
@click.option(
    "--wod-command",
    help="How the units and Postfix run wod (default: this wod executable).",
)
@click.option("--no-check", is_flag=True, help="Do not run wod check at the end.")
@click.option(
    "--from-upstream",
    "upstream",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the settings of an upstream install from this wod.sh (or wod.yml).",
)
def install_cmd(
    dry_run: bool,
    root: Path,
    senders: tuple[str, ...],
    allow_any_sender: bool,
    admin_user: str,
    account_pattern: str,
    user_min: int,
    user_max: int,
    uid_base: int,
    gid_base: int,
    hub_url: str,
    mail: str,
    smtp_port: int,
    smtp_host: str,
    allowed_clients: tuple[str, ...],
    postfix_dir: Path,
    wod_command: str | None,
    no_check: bool,
    upstream: Path | None,
) -> None:
    """Install the backend for production: settings, accounts, units, mail, hub, check.

    Run it again at any time: it only makes what is missing (a second run reports no
    changes). For a local/demo layout use `wod init DIR` instead."""
    opts = InstallOptions(
        root=root,
        admin_user=admin_user,
        account_pattern=account_pattern,
        user_min=user_min,
        user_max=user_max,
        uid_base=uid_base,
        gid_base=gid_base,
        senders=list(senders),
        allow_any_sender=allow_any_sender,
        hub_url=hub_url,
        mail=mail,  # type: ignore[arg-type]
        smtp_port=smtp_port,
        smtp_host=smtp_host,
        allowed_clients=list(allowed_clients),
        postfix_dir=postfix_dir,
        wod_command=wod_command,
        run_check=not no_check,
    )
    if upstream is not None:
        from wod.ops.migrate import MigrateError, apply_upstream

        try:
            taken = apply_upstream(opts, upstream)
        except MigrateError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"settings taken from {upstream}:")
        for item in taken:
            click.echo(f"  {item.setting} = {item.shown}   ({item.origin})")
    if not opts.senders and not opts.allow_any_sender and sys.stdin.isatty():
        opts.senders = [click.prompt("Accepted sender (the api-db's e-mail address)")]
    try:
        report = install(opts, dry_run=dry_run)
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    if not report.changes:
        click.echo("no changes: this host is already installed as asked")
    for change in report.changes:
        click.echo(f"{'would' if dry_run else 'done'}: {change.what}")
    if report.check is not None:
        counts = ", ".join(f"{n} {s}" for s, n in report.check.counts.items() if n)
        click.echo(f"wod check: {counts}")
        for result in report.check.results:
            if result.status in ("fail", "warn"):
                click.echo(f"  {result.status} {result.name}: {result.detail}")
    elif report.check_error:
        click.echo(f"wod check could not run: {report.check_error}", err=True)
    click.echo(f"mail intake: {report.mail}; hub service snippet: {report.hub_snippet}")
    click.echo("next:")
    for n, step in enumerate(report.next_steps, 1):
        click.echo(f"  {n}. {step}")
