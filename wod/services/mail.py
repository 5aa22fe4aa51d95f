"""The mail service: mail the backend sends (relayed participant mail, alerts to
``monitor``) and request mails sent the way the api-db sends them (``wod send``, the demo).

Both are "speak SMTP as a client":

- :class:`Outgoing` handles mail the backend sends on: mail that reached the SMTP
  listener but is *not* addressed to the command mailbox (the api-db's welcome,
  credentials and expiry mails to participants, SPEC 2.3), and alerts to ``monitor``
  (:mod:`wod.ops.monitor`).  Such mail is never parsed: it is relayed through
  ``settings.smarthost`` or, when none is configured (or the smarthost fails), stored in
  the Maildir outbox ``settings.outbox_dir`` with its envelope in
  ``Return-Path``/``X-Original-To`` headers.
- :func:`api_db_block`, :func:`send_raw` and :func:`send_smtplib` send a request mail the
  way the api-db does (upstream's test-action): by default the exact SPEC 2.2 byte block
  written before the greeting, hanging up on the first byte received.
"""

from __future__ import annotations

import logging
import mailbox
import re
import smtplib
import socket
from dataclasses import dataclass
from pathlib import Path

from wod.errors import Transient

log = logging.getLogger(__name__)

RELAY_TIMEOUT = 30.0


def split_hostport(value: str, default_port: int = 25) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``host``) -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, default_port


@dataclass(frozen=True)
class Delivery:
    """What happened to one relayed message: ``relayed`` or ``stored`` (in the outbox)."""

    how: str
    where: str


class Outgoing:
    """Relay non-command mail to the smarthost, else keep it in the Maildir outbox."""

    def __init__(
        self, smarthost: str | None, outbox_dir: Path, *, timeout: float = RELAY_TIMEOUT
    ) -> None:
        self.smarthost = smarthost
        self.outbox_dir = Path(outbox_dir)
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings) -> Outgoing:  # noqa: ANN001 - Settings, kept light
        return cls(settings.smarthost, settings.outbox_dir)

    def deliver(self, sender: str, recipients: list[str], raw: bytes) -> Delivery:
        """Relay ``raw`` to ``recipients``; on no smarthost or a relay failure, store it.

        Raises :class:`Transient` only if the outbox cannot be written either.
        """
        if self.smarthost:
            try:
                self.relay(sender, recipients, raw)
                log.info(
                    "relayed mail from %s to %s via %s",
                    sender or "<>",
                    ", ".join(recipients),
                    self.smarthost,
                )
                return Delivery("relayed", self.smarthost)
            except (OSError, smtplib.SMTPException, ValueError) as exc:
                log.warning(
                    "relay via %s failed (%s); keeping the mail in the outbox", self.smarthost, exc
                )
        key = self.store(sender, recipients, raw)
        log.info(
            "stored mail from %s to %s in outbox %s as %s",
            sender or "<>",
            ", ".join(recipients),
            self.outbox_dir,
            key,
        )
        return Delivery("stored", key)

    def relay(self, sender: str, recipients: list[str], raw: bytes) -> None:
        """Hand the message to the smarthost with smtplib (EHLO, CRLF, dot-stuffing)."""
        host, port = split_hostport(self.smarthost or "")
        # The api-db writes bare LF; smtplib fixes line endings only for str messages.
        data = re.sub(rb"\r?\n", b"\r\n", raw)
        with smtplib.SMTP(host, port, timeout=self.timeout) as smtp:
            refused = smtp.sendmail(sender, recipients, data)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def store(self, sender: str, recipients: list[str], raw: bytes) -> str:
        """Add the message to the Maildir outbox, envelope in front; return its key."""
        envelope = [f"Return-Path: <{sender}>"] + [f"X-Original-To: {r}" for r in recipients]
        data = ("\n".join(envelope) + "\n").encode() + raw.replace(b"\r\n", b"\n")
        try:
            box = mailbox.Maildir(self.outbox_dir, create=True)
            return box.add(data)
        except OSError as exc:
            raise Transient(f"could not store the mail in the outbox: {exc}") from None


# -- sending requests like the api-db (wod send) ----------------------------------------------


def api_db_block(subject: str, workshop: str, *, helo: str, sender: str, recipient: str) -> bytes:
    """The exact byte block the api-db writes on connect (SPEC 2.2): LF only, HELO, no angle
    brackets, no blank line between Subject and body, no QUIT."""
    return (
        f"HELO {helo}\nMAIL FROM: {sender}\nRCPT TO: {recipient}\nDATA\n"
        f"Subject: {subject}\n{workshop}\n.\n"
    ).encode()


def send_raw(host: str, port: int, block: bytes, *, timeout: float = 10.0) -> bytes:
    """Write ``block`` at once, then hang up on the first bytes received (the api-db's way).
    Returns what was received (the greeting)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(block)
        try:
            return sock.recv(512)
        except TimeoutError:
            return b""


def send_smtplib(
    host: str,
    port: int,
    *,
    sender: str,
    recipient: str,
    subject: str,
    workshop: str,
    timeout: float = 10.0,
) -> tuple[int, str]:
    """Send a well-behaved request mail; return the server's reply to DATA (code, text)."""
    message = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\n{workshop}\r\n"
    ).encode()
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.ehlo_or_helo_if_needed()
        code, text = smtp.mail(sender)
        if code != 250:
            return code, text.decode("utf-8", "replace")
        code, text = smtp.rcpt(recipient)
        if code not in (250, 251):
            return code, text.decode("utf-8", "replace")
        code, text = smtp.data(message)
        return code, text.decode("utf-8", "replace")
