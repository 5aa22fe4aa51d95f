"""The local-socket intake: ``wod intake --socket`` hands one mail to the running daemon.

Postfix runs its ``mailbox_command`` as the mailbox user, who can read neither the 0600
settings nor the 0700 state: so that command does not touch them.  It connects to this
Unix socket (``intake_socket``, mode 0660, group ``intake_group`` — the mail user's group;
0600 root only without a group), sends the envelope sender and the message, and waits for
one answer line.  The daemon stays the only writer of the job database and answers only
once the job (or the rejection) is on disk:

- ``0 <job id>``   accepted;
- ``65 <reason>``  rejected for good (recorded; Postfix bounces);
- ``75 <reason>``  not persisted (Postfix keeps the mail and retries).

Wire format, client to daemon: one line ``SENDER <address>`` (empty address allowed), then
the raw message until the client shuts its side down.  The client is
:func:`wod.intake.pipe.hand_to_daemon`; when nothing listens it exits 75, so mail waits in
Postfix's queue while the daemon is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import stat
import struct
from pathlib import Path

from wod.errors import Rejected, Transient
from wod.intake.ordered import OrderedWriter
from wod.intake.pipe import EX_DATAERR, EX_OK, EX_TEMPFAIL, intake_message
from wod.queue import JobQueue
from wod.settings import Settings

log = logging.getLogger(__name__)

#: Seconds a client may take to send its message.
READ_TIMEOUT = 60.0


class SocketIntake:
    """The daemon side: an asyncio Unix-socket server over the server's job queue."""

    def __init__(
        self,
        settings: Settings,
        queue: JobQueue,
        *,
        path: Path | None = None,
        group: str | None = None,
    ) -> None:
        chosen = path or settings.intake_socket
        if chosen is None:
            raise ValueError("no intake_socket configured")
        self.settings = settings
        self.queue = queue
        self.path = Path(chosen)
        self.group = group if group is not None else settings.intake_group
        self._server: asyncio.AbstractServer | None = None
        self._writer = OrderedWriter("socket-persist")

    async def start(self) -> None:
        gid = -1
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise OSError(
                    f"intake_group {self.group!r} does not exist: create it or change the setting"
                ) from None
        missing = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            folder.chmod(0o711)  # reachable by the mail user, not listable
        self._remove_stale()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        os.chmod(self.path, 0o660 if gid >= 0 else 0o600)
        if gid >= 0:
            os.chown(self.path, -1, gid)
        log.info("intake socket listening on %s (group %s)", self.path, self.group or "root only")

    def _remove_stale(self) -> None:
        """Remove a socket left by a daemon that died; refuse if one still answers."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(
                f"{self.path} exists and is not a socket: remove it or change intake_socket"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()
            return
        finally:
            probe.close()
        raise OSError(f"another wod serve answers on {self.path}")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None
        await asyncio.to_thread(self._writer.close, 10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = _peer_uid(writer)
        try:
            got = await asyncio.wait_for(self._read(reader), READ_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.warning("intake socket: client uid %s gave up or was too slow: %s", uid, exc)
            writer.close()
            return
        if isinstance(got, str):
            code, text = EX_DATAERR, got
        else:
            # Not under the read timeout: a write still waiting its turn when the answer
            # was given up would be stored after the client was told 75 (a second job
            # once the mail is retried).
            code, text = await self._writer.call(self._take, *got, uid)
        with contextlib.suppress(ConnectionError):
            writer.write(f"{code} {text}\n".encode())
            await writer.drain()
        writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> tuple[bytes, str | None] | str:
        """The message and its sender, or a protocol error's reason."""
        header = await reader.readline()
        if not header.startswith(b"SENDER"):
            return "protocol error: expected 'SENDER <address>'"
        sender = header[len(b"SENDER") :].strip().decode("utf-8", "replace") or None
        limit = self.settings.max_message_bytes + 1
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await reader.read(min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
        # Read what is left of an oversized message (discarded): closing with unread data
        # would reset the connection and the client would never see its 65.
        while await reader.read(65536):
            pass
        return raw, sender

    def _take(self, raw: bytes, sender: str | None, uid: int | None) -> tuple[int, str]:
        try:
            job = intake_message(raw, self.settings, lambda: self.queue, sender=sender)
        except Rejected as exc:
            log.info("request rejected from the intake socket (uid %s): %s", uid, exc.reason)
            return EX_DATAERR, exc.reason
        except Transient as exc:
            log.error("request from the intake socket not persisted: %s", exc.reason)
            return EX_TEMPFAIL, exc.reason
        log.info("request accepted from the intake socket (uid %s): job %s", uid, job)
        return EX_OK, str(job)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid
