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

:func:`hand_to_daemon` is the client of the local-socket intake (``wod intake --socket``,
:mod:`wod.intake.socket`): for a mailbox user who may read neither the settings nor the
state, the running daemon persists the message and answers with the same exit codes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

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


#: Largest message the socket client reads from stdin (the daemon applies
#: ``max_message_bytes``; this only bounds what is read without the settings).
SOCKET_READ_LIMIT = 64 * 1024 * 1024 + 1


def hand_to_daemon(
    path: Path | str, raw: bytes, *, sender: str | None = None, timeout: float = 120.0
) -> tuple[int, str]:
    """Hand one message to the running daemon over its intake socket.

    Returns ``(exit status, text)``: ``(0, job id)``, ``(65, reason)`` or ``(75, reason)``;
    75 whenever the daemon is not there or did not answer (the MTA keeps the mail)."""
    clean_sender = "".join(c for c in (sender or "") if c.isprintable() and not c.isspace())
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        try:
            conn.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return EX_TEMPFAIL, f"the backend is not running (nothing listens on {path})"
        except PermissionError:
            return EX_TEMPFAIL, f"not allowed to use {path}: add this user to intake_group"
        try:
            conn.sendall(b"SENDER " + clean_sender.encode("utf-8") + b"\n" + raw)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        except OSError as exc:
            return EX_TEMPFAIL, f"the backend did not answer: {exc}"
    finally:
        conn.close()
    code, _, text = answer.decode("utf-8", "replace").strip().partition(" ")
    if code not in (str(EX_OK), str(EX_DATAERR), str(EX_TEMPFAIL)):
        return EX_TEMPFAIL, "the backend closed the connection without an answer"
    return int(code), text
