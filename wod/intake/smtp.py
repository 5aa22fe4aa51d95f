"""The built-in SMTP listener: a small, tolerant receiver for the api-db's request mails.

Why not plain aiosmtpd: the real api-db writes its whole session (HELO … DATA … body
``.``) *before* the greeting, with bare LF line endings, and hangs up as soon as it receives
the 220 (SPEC 2.2).  aiosmtpd reads line by line through a ``StreamReader`` that raises the
connection-reset error before handing out data it already buffered, and it ends DATA only
on CRLF.CRLF, so it never delivered such a mail.  This receiver therefore:

- greets at once and reads greedily: every byte the loop receives lands in a per-session
  buffer, and a peer that goes away (FIN or reset) only marks the end of that buffer — the
  session goes on processing what was received; replies to a gone peer are skipped;
- accepts LF or CRLF; ends DATA at a lone ``.`` line, or at EOF once the header is complete
  (a trailing line without its LF is dropped: it may be truncated); a client silent for
  ``idle_timeout`` seconds gets 421 and its unfinished DATA is dropped (it will resend);
- is otherwise a normal SMTP server for ``smtplib`` or a Postfix relay: EHLO (SIZE,
  8BITMIME, PIPELINING), HELO, MAIL FROM / RCPT TO with or without angle brackets, DATA with
  dot-unstuffing, RSET, NOOP, QUIT, one reply per command, 5xx for a bad sequence.

Per message: recipients that are the command mailbox (``settings.command_mailbox`` or a
``mailbox_aliases`` entry, any domain) make the message a request: parsed, then
``queue.submit`` (250 only once persisted) or ``queue.reject`` (550 with the reason).
Every queue write goes through one writer thread in the order the messages ended, so the
job order (per seat: the order jobs run) is the order of the ``250`` replies.  Any
other recipient (participant mail, SPEC 2.3) is never parsed: :class:`Outgoing` relays it
or stores it in the outbox.  Clients outside ``settings.allowed_clients`` get 554, are
logged and recorded as rejections.  A client on this host must also run as root,
``admin_user`` or one of ``smtp_local_users`` to send command mail (its socket's uid,
asked of the kernel: :mod:`wod.intake.peer`); otherwise its command mail gets 554 and is
recorded.

Limit: a client that both sends more than a few MB before reading and resets the connection
may lose the part the kernel still held when the reset arrived (the api-db sends ~200 bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import pwd
import re
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from wod.errors import Rejected, Transient
from wod.intake.ordered import OrderedWriter
from wod.intake.peer import is_loopback, local_peer
from wod.requests import Request, parse_message
from wod.services.mail import Outgoing
from wod.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_LINE = 64 * 1024
HIGH_WATER = 4 * 1024 * 1024
IDLE_TIMEOUT = 300.0
MAX_RECIPIENTS = 100
MAX_ERRORS = 20
HEADER_LINE = re.compile(rb"^[!-9;-~]+:")


class Queue(Protocol):
    """What the listener needs of :class:`wod.queue.JobQueue`."""

    def submit(self, request: Request, raw: bytes | None = None) -> int: ...
    def reject(self, channel: str, reason: str, raw: bytes | None = None) -> int: ...


def _address(arg: str, keyword: str) -> tuple[str, str] | None:
    """``FROM:<a@b> SIZE=1`` / ``FROM: a@b`` -> (address, parameters); None if malformed."""
    if not arg[: len(keyword)].upper() == keyword:
        return None
    rest = arg[len(keyword) :].strip()
    if rest.startswith("<"):
        addr, bracket, params = rest[1:].partition(">")
        if not bracket:
            return None
        return addr.strip(), params.strip()
    addr, _, params = rest.partition(" ")
    return addr.strip(), params.strip()


def _header_complete(raw: bytes) -> bool:
    """True when ``raw`` has at least one header and a line after the header block."""
    lines = raw.splitlines()
    if not lines or not HEADER_LINE.match(lines[0]):
        return False
    for line in lines[1:]:
        if not line.strip() or not (HEADER_LINE.match(line) or line[:1] in (b" ", b"\t")):
            return True
    return False


class SmtpIntake:
    """The SMTP listener.  ``await start()`` binds (``.port`` is the real port when 0 was
    asked), ``await stop()`` closes and lets sessions finish what they received."""

    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        *,
        host: str | None = None,
        port: int | None = None,
        outgoing: Outgoing | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.idle_timeout = idle_timeout
        self.queue = queue
        self.host = settings.smtp_host if host is None else host
        self.port = settings.smtp_port if port is None else port
        self.outgoing = outgoing or Outgoing.from_settings(settings)
        self.hostname = socket.gethostname()
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_clients]
        mailboxes = [settings.command_mailbox, *settings.mailbox_aliases]
        self.mailboxes = {m.strip().lower() for m in mailboxes if m.strip()}
        self.local_uids = _uids(["root", settings.admin_user, *settings.smtp_local_users])
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[_Session] = set()
        self._pending: set[asyncio.Task[str]] = set()
        self._writer: OrderedWriter | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = OrderedWriter("smtp-persist")
        self._server = await loop.create_server(
            lambda: _Session(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("SMTP intake listening on %s:%s", self.host, self.port)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting; cut open sessions (an unfinished DATA is dropped, unacknowledged)
        and wait up to ``timeout`` s for messages already received to be persisted."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        sessions = list(self._sessions)
        for session in sessions:
            session.shutdown()
        tasks = [s.task for s in sessions if s.task is not None] + list(self._pending)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close, timeout)
            self._writer = None

    def run_in_thread(self) -> IntakeThread:
        """Start the listener on its own event loop in a thread (tests, simple embedding)."""
        thread = IntakeThread(self)
        thread.start()
        return thread

    def _persist(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a queue write on the one writer thread, in the order asked."""
        if self._writer is None:  # not started: used directly (tests of the policy)
            return asyncio.ensure_future(asyncio.to_thread(fn, *args))
        return self._writer.call(fn, *args)

    # -- policy ---------------------------------------------------------------------------
    def client_allowed(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)

    def is_command_mailbox(self, recipient: str) -> bool:
        local = recipient.rsplit("@", 1)[0] if "@" in recipient else recipient
        return local.strip().strip('"').lower() in self.mailboxes

    def command_refusal(self, peer: tuple[str, int], ours: tuple[str, int]) -> str | None:
        """Why a client of this host may not send command mail (None: it may).

        A client on this host (its socket is in our socket table, or its address is a
        loopback one) must run as root, ``admin_user`` or one of ``smtp_local_users``:
        otherwise any local user could forge the api-db's sender.  A remote client is
        judged by ``allowed_clients`` and ``senders`` alone."""
        found = local_peer(peer, ours)
        if found is None and not is_loopback(peer[0]):
            return None
        uid = found.uid if found is not None else None
        if uid is not None and uid in self.local_uids:
            return None
        who = "an unknown local user" if uid is None else f"local user {_user_name(uid)}"
        return f"{who} may not send commands (allowed: root, admin_user, smtp_local_users)"

    async def deliver(
        self,
        peer: str,
        sender: str,
        recipients: list[str],
        raw: bytes,
        refusal: str | None = None,
    ) -> str:
        """Act on one received message; return the reply line for the client.
        ``refusal``: why this client may not send command mail (see :meth:`command_refusal`).
        """
        commands = [r for r in recipients if self.is_command_mailbox(r)]
        others = [r for r in recipients if not self.is_command_mailbox(r)]
        reply = "250 2.0.0 OK"
        if others:
            try:
                delivery = await asyncio.to_thread(self.outgoing.deliver, sender, others, raw)
                reply = f"250 2.0.0 {delivery.how}"
            except Transient as exc:
                log.error("mail from %s to %s lost for now: %s", peer, others, exc)
                reply = "451 4.3.0 could not relay or store the message; try again later"
        if commands and refusal is not None:
            log.warning("command mail from %s refused: %s", peer, refusal)
            reply = await self.record_rejection(refusal, raw, "554 5.7.1")
        elif commands:
            reply = await self.submit(peer, sender, raw)
        return reply

    async def submit(self, peer: str, sender: str, raw: bytes) -> str:
        """Parse and persist one request mail; the reply says what happened."""
        try:
            request = parse_message(raw, self.settings, channel="smtp", sender=sender)
        except Rejected as exc:
            log.warning("rejected request from %s (sender %r): %s", peer, sender, exc.reason)
            return await self.record_rejection(exc.reason, raw)
        log.debug("request from %s (customer %s) parsed; persisting", peer, request.customer)
        try:
            job = await self._persist(self.queue.submit, request, raw)
        except Transient as exc:
            log.error("request from %s not persisted: %s", peer, exc)
            return "451 4.3.0 could not persist the request; try again later"
        ids = request.stdid if not request.is_range else f"{request.stdid},{request.stdid_max}"
        log.info(
            "job %s: %s %s customer %s %s (from %s)",
            job,
            request.verb.value,
            ids,
            request.customer,
            request.workshop,
            peer,
        )
        return f"250 2.0.0 queued as job {job}"

    async def record_rejection(
        self, reason: str, raw: bytes | None, code: str = "550 5.6.0"
    ) -> str:
        try:
            await self._persist(self.queue.reject, "smtp", reason, raw)
        except Transient as exc:
            log.error("rejection not recorded: %s", exc)
        return f"{code} rejected: {reason}"


class _Session(asyncio.Protocol):
    """One SMTP connection: a greedy receive buffer and a conversation task reading it."""

    def __init__(self, intake: SmtpIntake) -> None:
        self.intake = intake
        self.settings = intake.settings
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer = "?"
        self.refusal: str | None = None
        self._buf = bytearray()
        self._wake = asyncio.Event()
        self._eof = False
        self._gone = False
        self._paused = False
        self._stopping = False
        self._timed_out = False

    # -- transport side: collect everything -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = str(peer[0])
        if not self.intake.client_allowed(self.peer):
            self._refuse()
            return
        self.intake._sessions.add(self)
        # Now, while a local client still waits for the greeting, its socket is listed.
        ours = transport.get_extra_info("sockname") or ("?", 0)
        self.refusal = self.intake.command_refusal((self.peer, peer[1]), (ours[0], ours[1]))
        self.reply(f"220 {self.intake.hostname} ESMTP wod intake ready")
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._wake.set()
        if len(self._buf) > HIGH_WATER and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = self._gone = True
        self._wake.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._gone = True
        self._wake.set()

    def shutdown(self) -> None:
        """Server stop: end the input here; an unfinished DATA is not acted on."""
        self._stopping = True
        self._eof = True
        self._wake.set()
        if self.transport is not None:
            self.transport.close()

    def _refuse(self) -> None:
        reason = f"client address {self.peer} is not allowed"
        log.warning("SMTP connection refused: %s", reason)
        assert self.transport is not None
        self.transport.write(f"554 5.7.1 {reason}\r\n".encode())
        self.transport.close()
        task = asyncio.get_running_loop().create_task(self.intake.record_rejection(reason, None))
        self.intake._pending.add(task)  # keep a reference until it is done
        task.add_done_callback(self.intake._pending.discard)

    def reply(self, line: str) -> None:
        if self._gone or self.transport is None or self.transport.is_closing():
            return
        self.transport.write(line.encode("ascii", "backslashreplace") + b"\r\n")

    async def readline(self) -> tuple[bytes, bool] | None:
        """Next line with its ending, and whether it is complete; None at the end."""
        while True:
            # Look for the end only within MAX_LINE: a longer line (even if its end already
            # arrived) comes out in pieces marked incomplete.
            end = self._buf.find(b"\n", 0, MAX_LINE)
            if end >= 0 or len(self._buf) >= MAX_LINE or (self._eof and self._buf):
                size = end + 1 if end >= 0 else min(len(self._buf), MAX_LINE)
                line = bytes(self._buf[:size])
                del self._buf[:size]
                if self._paused and len(self._buf) < HIGH_WATER // 2 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                return line, line.endswith(b"\n")
            if self._eof:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.intake.idle_timeout)
            except TimeoutError:
                self._timed_out = True
                self.reply("421 4.4.2 idle too long, closing")
                return None

    # -- the conversation ---------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._converse()
        except Exception:  # a bug must not take the listener down with it
            log.exception("SMTP session with %s failed", self.peer)
            self.reply("421 4.3.0 internal error")
        finally:
            self.intake._sessions.discard(self)
            if self.transport is not None:
                self.transport.close()

    async def _converse(self) -> None:
        helo: str | None = None
        sender: str | None = None
        recipients: list[str] = []
        errors = 0
        while errors < MAX_ERRORS:
            got = await self.readline()
            if got is None:
                return
            line, complete = got
            if not complete:
                await self._skip_rest_of_line(line)
                self.reply("500 5.5.2 line too long")
                errors += 1
                continue
            text = line.decode("latin-1").strip()
            verb, _, arg = text.partition(" ")
            verb, arg = verb.upper(), arg.strip()
            if verb in ("HELO", "EHLO"):
                if not arg:
                    self.reply(f"501 5.5.4 {verb} needs a host name")
                    errors += 1
                    continue
                helo, sender, recipients = arg, None, []
                if verb == "HELO":
                    self.reply(f"250 {self.intake.hostname}")
                else:
                    for ext in (
                        self.intake.hostname,
                        f"SIZE {self.settings.max_message_bytes}",
                        "8BITMIME",
                    ):
                        self.reply(f"250-{ext}")
                    self.reply("250 PIPELINING")
            elif verb == "MAIL":
                parsed = _address(arg, "FROM:")
                if helo is None:
                    self.reply("503 5.5.1 send HELO or EHLO first")
                elif sender is not None:
                    self.reply("503 5.5.1 sender already given")
                elif parsed is None:
                    self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
                elif (size := self._size_param(parsed[1])) is not None and (
                    size > self.settings.max_message_bytes
                ):
                    reason = (
                        f"message too large: {size} bytes announced (limit "
                        f"{self.settings.max_message_bytes})"
                    )
                    log.warning("refused mail from %s: %s", self.peer, reason)
                    self.reply(await self.intake.record_rejection(reason, None, "552 5.3.4"))
                else:
                    sender = parsed[0]
                    self.reply("250 2.1.0 OK")
                    continue
                errors += 1
            elif verb == "RCPT":
                parsed = _address(arg, "TO:")
                if sender is None:
                    self.reply("503 5.5.1 send MAIL FROM first")
                elif parsed is None or not parsed[0]:
                    self.reply("501 5.5.4 syntax: RCPT TO:<address>")
                elif len(recipients) >= MAX_RECIPIENTS:
                    self.reply("452 4.5.3 too many recipients")
                else:
                    recipients.append(parsed[0])
                    self.reply("250 2.1.5 OK")
                    continue
                errors += 1
            elif verb == "DATA":
                if arg:
                    self.reply("501 5.5.4 DATA takes no argument")
                    errors += 1
                elif sender is None or not recipients:
                    self.reply("503 5.5.1 send MAIL FROM and RCPT TO first")
                    errors += 1
                else:
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    await self._data(sender, recipients)
                    sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self.reply("250 2.0.0 OK")
            elif verb == "NOOP":
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            elif verb == "VRFY":
                self.reply("252 2.5.2 cannot verify, send some mail")
            elif verb == "HELP":
                self.reply("214 2.0.0 HELO EHLO MAIL RCPT DATA RSET NOOP QUIT")
            elif not verb:
                self.reply("500 5.5.2 empty command")
                errors += 1
            else:
                self.reply(f"502 5.5.2 command {verb[:20]!r} not implemented")
                errors += 1
        self.reply("421 4.7.0 too many errors, closing")

    @staticmethod
    def _size_param(params: str) -> int | None:
        for param in params.split():
            key, _, value = param.partition("=")
            if key.upper() == "SIZE" and value.isdigit():
                return int(value)
        return None

    async def _skip_rest_of_line(self, line: bytes) -> None:
        while not line.endswith(b"\n"):
            got = await self.readline()
            if got is None:
                return
            line = got[0]

    async def _data(self, sender: str, recipients: list[str]) -> None:
        """Receive one message body and act on it."""
        limit = self.settings.max_message_bytes
        chunks: list[bytes] = []
        size = 0
        at_line_start = True
        ended = False
        while True:
            got = await self.readline()
            if got is None:
                break
            line, complete = got
            if at_line_start and complete and line.rstrip(b"\r\n") == b".":
                ended = True
                break
            if at_line_start and line.startswith(b"."):
                line = line[1:]
            at_line_start = complete
            size += len(line)
            if size <= limit:
                chunks.append(line)
            else:
                chunks = []
        if self._stopping and not ended:
            log.warning("listener stopping: unfinished message from %s dropped", self.peer)
            return
        if self._timed_out and not ended:
            # The peer is still there and was told 421: it will send the message again.
            log.warning("unfinished message from %s dropped: client idle too long", self.peer)
            return
        if size > limit:
            reason = f"message too large: over {limit} bytes"
            log.warning("rejected mail from %s: %s", self.peer, reason)
            self.reply(await self.intake.record_rejection(reason, None, "552 5.3.4"))
            return
        raw = b"".join(chunks)
        if not ended:
            if chunks and not chunks[-1].endswith(b"\n"):
                raw = raw[: len(raw) - len(chunks[-1])]
            if not _header_complete(raw):
                reason = "connection closed before the message was complete"
                log.warning("mail from %s dropped: %s", self.peer, reason)
                await self.intake.record_rejection(reason, raw or None)
                return
            log.debug("message from %s ended by end of input", self.peer)
        self.reply(await self.intake.deliver(self.peer, sender, recipients, raw, self.refusal))


def _uids(names: list[str]) -> frozenset[int]:
    """uids of the accounts that exist among ``names`` (0 always)."""
    uids = {0}
    for name in names:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            log.debug("no local account %r: not allowed to send commands", name)
    return frozenset(uids)


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class IntakeThread:
    """A :class:`SmtpIntake` running on its own event loop in a daemon thread."""

    def __init__(self, intake: SmtpIntake) -> None:
        self.intake = intake
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="smtp-intake", daemon=True)

    @property
    def port(self) -> int:
        return self.intake.port

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.intake.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self.intake.stop())
        finally:
            self._loop.close()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("SMTP intake did not start")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 15.0) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> IntakeThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
