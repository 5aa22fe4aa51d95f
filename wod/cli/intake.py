"""``wod intake`` (one message on stdin) and ``wod send`` (send requests like the api-db)."""

from __future__ import annotations

import os
import socket
import sys

import click

from wod.cli import Context, pass_ctx
from wod.errors import Rejected, Transient
from wod.intake import mail
from wod.intake.pipe import EX_DATAERR, EX_OK, EX_TEMPFAIL, intake_message

COMMANDS = ["intake", "send"]


@click.command("intake")
@click.option(
    "-f",
    "--from",
    "sender",
    help="Envelope sender (default: $SENDER, then the Return-Path/From header).",
)
@click.option(
    "--lock-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for a busy job database before exiting 75.",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False),
    help="Hand the mail to the running daemon over this socket (its intake_socket); the "
    "settings and state are then not read, so any user in intake_group can run it.",
)
@pass_ctx
def intake(ctx: Context, sender: str | None, lock_timeout: float, socket_path: str | None) -> None:
    """Read one mail on stdin and queue it (procmail / Postfix mailbox_command).

    Exit 0 = accepted (job id on stdout), 65 = rejected (reason on stderr),
    75 = could not be persisted (the MTA retries later)."""
    if sender is None:
        sender = os.environ.get("SENDER") or None
    if socket_path is not None:
        from wod.intake.pipe import SOCKET_READ_LIMIT, hand_to_daemon

        code, text = hand_to_daemon(
            socket_path, sys.stdin.buffer.read(SOCKET_READ_LIMIT), sender=sender
        )
        if code == EX_OK:
            click.echo(text)
        elif code == EX_DATAERR:
            click.echo(f"rejected: {text}", err=True)
        else:
            click.echo(f"not queued, try again later: {text}", err=True)
        sys.exit(code)
    try:
        settings = ctx.settings
    except click.ClickException as exc:  # broken settings: the MTA keeps the mail, not bounce
        click.echo(f"not queued, try again later: {exc.message}", err=True)
        sys.exit(EX_TEMPFAIL)
    raw = sys.stdin.buffer.read(settings.max_message_bytes + 1)
    from wod.queue import JobQueue

    try:
        job = intake_message(
            raw, settings, lambda: JobQueue(settings.db_path, timeout=lock_timeout), sender=sender
        )
    except Rejected as exc:
        click.echo(f"rejected: {exc.reason}", err=True)
        sys.exit(EX_DATAERR)
    except Transient as exc:
        click.echo(f"not queued, try again later: {exc.reason}", err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(job)
    sys.exit(EX_OK)


@click.command("send", context_settings={"ignore_unknown_options": True})
@click.argument("verb")
@click.argument("args", nargs=-1)
@click.option("-w", "--workshop", required=True, help="Workshop name (body of the mail).")
@click.option(
    "--range",
    "stdids",
    metavar="A-B",
    help="Send one request per student A..B; ARGS then omit the student id.",
)
@click.option("--host", help="SMTP host (default: smtp_host).")
@click.option("--port", type=int, help="SMTP port (default: smtp_port).")
@click.option("--sender", help="Envelope sender (default: the first of 'senders').")
@click.option("--to", "recipient", help="Recipient (default: <command_mailbox>@<this host>).")
@click.option(
    "--raw/--smtplib",
    "raw",
    default=True,
    help="--raw (default): the api-db's exact byte block, hanging up on the greeting;"
    " --smtplib: a well-behaved SMTP session that shows the server's answer.",
)
@pass_ctx
def send(
    ctx: Context,
    verb: str,
    args: tuple[str, ...],
    workshop: str,
    stdids: str | None,
    host: str | None,
    port: int | None,
    sender: str | None,
    recipient: str | None,
    raw: bool,
) -> None:
    """Send VERB ARGS… for WORKSHOP the way the api-db does (upstream's test-action).

    \b
    wod send CREATE 1 825 alice@example.com -w WKSHP-API101
    wod send RESET 1,5 825 -w WKSHP-API101
    wod send CLEANUP 825 --range 1-5 -w WKSHP-API101

    Nothing is checked here, so bad requests can be sent on purpose."""
    settings = ctx.settings
    host = host or settings.smtp_host
    port = port or settings.smtp_port
    me = socket.gethostname()
    sender = sender or (settings.senders[0] if settings.senders else f"wod-send@{me}")
    recipient = recipient or f"{settings.command_mailbox}@{me}"
    if stdids:
        try:
            subjects = [" ".join((verb, str(n), *args)) for n in mail.parse_range(stdids)]
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--range") from None
    else:
        subjects = [" ".join((verb, *args))]
    failed = False
    for subject in subjects:
        try:
            if raw:
                block = mail.api_db_block(
                    subject, workshop, helo=me, sender=sender, recipient=recipient
                )
                greeting = mail.send_raw(host, port, block)
                first = greeting.split(b"\r\n", 1)[0].decode("utf-8", "replace")
                click.echo(f"sent '{subject}' to {host}:{port} (server said: {first or '-'})")
            else:
                code, text = mail.send_smtplib(
                    host,
                    port,
                    sender=sender,
                    recipient=recipient,
                    subject=subject,
                    workshop=workshop,
                )
                click.echo(f"'{subject}': {code} {text}")
                failed = failed or code >= 400
        except OSError as exc:
            click.echo(f"'{subject}': cannot reach {host}:{port}: {exc}", err=True)
            failed = True
        except Exception as exc:  # smtplib errors: show them, continue with the next
            click.echo(f"'{subject}': {exc}", err=True)
            failed = True
    if failed:
        sys.exit(1)
