"""``wod intake`` (one message on stdin) and ``wod send`` (send requests like the api-db)."""

from __future__ import annotations

import os
import sys

import click

from wod.cli import Context, echo_json, json_option, pass_ctx, reported
from wod.errors import Rejected, Transient
from wod.intake.pipe import EX_DATAERR, EX_OK, EX_TEMPFAIL, intake_message
from wod.ops import send as send_ops

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
    from wod.ops.jobs import queue_opener

    try:
        job = intake_message(
            raw, settings, queue_opener(settings, timeout=lock_timeout), sender=sender
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
    "students",
    metavar="N|A-B|A,B",
    help="One request per student A..B (RESET: one for the range; PURGE refuses a range);"
    " ARGS then omit the student id.",
)
@click.option("--host", help="SMTP host (default: smtp_host).")
@click.option("--port", type=int, help="SMTP port (default: smtp_port).")
@click.option("--sender", help="Envelope sender (default: the first of 'senders').")
@click.option("--to", "recipient", help="Recipient (default: <command_mailbox>@<this host>).")
@click.option(
    "--raw",
    "how",
    flag_value="raw",
    default=True,
    help="(default) the api-db's exact byte block, hanging up on the greeting.",
)
@click.option(
    "--smtplib", "how", flag_value="smtp", help="A well-behaved SMTP session (shows the answer)."
)
@click.option("--http", "how", flag_value="http", help="POST /api/requests (http_token).")
@click.option("--url", help="Backend URL for --http (default: http_host:http_port).")
@click.option("--wait", is_flag=True, help="Wait for the jobs and print each outcome.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="For --wait (s).")
@click.option(
    "--no-check",
    "unchecked",
    is_flag=True,
    help="Send even what the server will refuse (to test its answer).",
)
@json_option
@pass_ctx
def send(
    ctx: Context,
    verb: str,
    args: tuple[str, ...],
    workshop: str,
    students: str | None,
    host: str | None,
    port: int | None,
    sender: str | None,
    recipient: str | None,
    how: str,
    url: str | None,
    wait: bool,
    timeout: float,
    unchecked: bool,
    as_json: bool,
) -> None:
    """Send VERB ARGS… for WORKSHOP the way the api-db does (upstream's test-action).

    \b
    wod send CREATE 1 825 alice@example.com -w WKSHP-API101
    wod send RESET 825 --range 1-5 -w WKSHP-API101
    wod send CLEANUP 825 --range 1-5 -w WKSHP-API101 --wait

    Each request is checked first as the server checks it (--no-check sends it anyway).
    --wait needs a job id, so it sends with --smtplib unless --http is given."""
    settings = ctx.settings
    if wait and how == "raw":
        how = "smtp"
    with reported():
        planned = send_ops.plan(
            settings, verb, args, workshop, students=students, check=not unchecked
        )
    target = send_ops.Target.from_settings(
        settings, host=host, port=port, sender=sender, recipient=recipient, url=url
    )

    def said(result: send_ops.Sent) -> None:
        if not as_json:
            click.echo(f"'{result.subject}': {result.answer}", err=not result.ok)

    sent = send_ops.send(planned, target, how=how, progress=said)
    outcomes: list[send_ops.Outcome] = []
    if wait:

        def ended(o: send_ops.Outcome) -> None:
            if not as_json:
                took = f" in {o.seconds:.1f} s" if o.seconds is not None else ""
                reason = f": {o.reason}" if o.reason else ""
                click.echo(f"job {o.job} '{o.subject}' {o.status}{took}{reason}")

        with reported():
            outcomes = send_ops.wait(settings, sent, timeout=timeout, progress=ended)
    if as_json:
        echo_json({"sent": sent, "outcomes": outcomes})
    if not all(s.ok for s in sent) or any(o.status != "done" for o in outcomes):
        sys.exit(1)
