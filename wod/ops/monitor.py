"""Alerts to the ``monitor`` address (upstream ``WODMONITOR``): failed checks, the abuse
watcher's notices.

Sent through the backend's outgoing mail service: the ``smarthost`` when one is set, else
the Maildir outbox under ``state_dir`` (where an admin or a mail client picks it up).
"""

from __future__ import annotations

import logging
import socket
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from wod.errors import WodError
from wod.services.mail import Outgoing
from wod.settings import Settings

log = logging.getLogger(__name__)


def _outgoing(settings: Settings) -> Outgoing:
    return Outgoing.from_settings(settings)


def mail_monitor(settings: Settings, subject: str, body: str) -> str | None:
    """Mail ``monitor``; returns how it went ("relayed via …", "stored as …"), or None
    when no monitor address is set.  Never raises: an alert must not break its sender."""
    if not settings.monitor:
        log.warning("no monitor address set: not mailed: %s", subject)
        return None
    host = socket.getfqdn() or "localhost"
    sender = f"{settings.command_mailbox}@{host}"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = settings.monitor
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=host)
    message.set_content(body)
    try:
        done = _outgoing(settings).deliver(sender, [settings.monitor], message.as_bytes())
    except (WodError, OSError) as exc:
        log.error("could not mail %s to %s: %s", subject, settings.monitor, exc)
        return None
    log.info("mailed %r to %s (%s)", subject, settings.monitor, done.how)
    return f"{done.how} {done.where}"
