"""The pipe channel: one RFC 822 message on stdin (``wod intake``).

A drop-in for upstream's procmail recipe or a Postfix ``mailbox_command``.  The message is
parsed, then persisted (or its rejection recorded) before the command exits, so the exit
status tells the MTA the truth:

- 0 (``EX_OK``): accepted; the job id is printed;
- 65 (``EX_DATAERR``): rejected for good (the reason is printed on stderr and recorded);
- 75 (``EX_TEMPFAIL``): could not be persisted (database locked, disk full, settings
  unreadable…): the MTA keeps the message and retries later.

The envelope sender comes from ``-f``, else ``$SENDER`` (set by procmail and Postfix's
local delivery), else the parser falls back on the ``Return-Path`` / ``From`` headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from wod.errors import Rejected, Transient
from wod.queue import JobQueue
from wod.requests import parse_message
from wod.settings import Settings

log = logging.getLogger(__name__)

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75


def intake_message(
    raw: bytes,
    settings: Settings,
    open_queue: Callable[[], JobQueue],
    *,
    sender: str | None = None,
) -> int:
    """Parse and persist one message; return the job id.

    ``open_queue`` builds the :class:`wod.queue.JobQueue` (called once; opening it may
    fail like a write).  Raises :class:`Rejected` (after recording it when possible) or
    :class:`Transient` when nothing could be persisted.
    """
    if len(raw) > settings.max_message_bytes:
        # Do not keep a huge message around: record the reason only.
        reason = f"message too large: over {settings.max_message_bytes} bytes"
        _record(open_queue, reason, None)
        raise Rejected(reason)
    try:
        request = parse_message(raw, settings, channel="pipe", sender=sender or None)
    except Rejected as exc:
        log.warning("rejected request on stdin: %s", exc.reason)
        _record(open_queue, exc.reason, raw)
        raise
    queue = _open(open_queue)
    job = queue.submit(request, raw)
    log.info("job %s: %s from stdin", job, request.verb.value)
    return job


def _open(open_queue: Callable[[], JobQueue]) -> JobQueue:
    try:
        return open_queue()
    except Transient:
        raise
    except Exception as exc:  # sqlite3/OS errors opening the database
        raise Transient(f"could not open the job database: {exc}") from None


def _record(open_queue: Callable[[], JobQueue], reason: str, raw: bytes | None) -> None:
    """Record a rejection; a failure to record does not change the verdict."""
    try:
        _open(open_queue).reject("pipe", reason, raw)
    except Transient as exc:
        log.error("rejection not recorded: %s", exc)
