"""The SMTP listener against real clients: the api-db's raw byte block, smtplib, a relay."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
import smtplib
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.plugins.intake import logged_jobs
from tests.plugins.paths import get_free_port
from tests.plugins.system import LocalUser
from wod.intake.smtp import IntakeThread, SmtpIntake
from wod.queue import JobQueue
from wod.requests import Verb
from wod.services.mail import api_db_block
from wod.settings import Settings

API_DB = "wod-api@api.example.com"
COMMANDS = "wodadmin@backend.example.com"


@dataclass
class Listener:
    settings: Settings
    queue: JobQueue
    thread: IntakeThread

    @property
    def port(self) -> int:
        return self.thread.port


def start(tmp_path: Path, **overrides: object) -> Listener:
    values: dict[str, object] = {
        "state_dir": tmp_path,
        "smtp_port": 0,
        "senders": [API_DB],
        "user_max": 120,
    }
    values.update(overrides)
    settings = Settings(**values)
    queue = JobQueue(settings.db_path)
    return Listener(settings, queue, SmtpIntake(settings, queue).run_in_thread())


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    running = start(tmp_path)
    try:
        yield running
    finally:
        running.thread.stop()


def wait_for(what: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def raw_send(port: int, block: bytes, *, reset: bool = False) -> bytes:
    """Act like the api-db: write everything at once, hang up on the first byte received."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(block)
        first = sock.recv(1)
        if reset:  # close with RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return first
    finally:
        sock.close()


def block(
    subject: str, body: str = "WKSHP-API101", sender: str = API_DB, rcpt: str = COMMANDS
) -> bytes:
    return api_db_block(subject, body, helo="api-db.example.com", sender=sender, recipient=rcpt)


# -- the real api-db ---------------------------------------------------------------------------


def test_spec_bytes_exactly() -> None:
    assert block("CREATE 1 1 alice@example.com") == (
        b"HELO api-db.example.com\nMAIL FROM: wod-api@api.example.com\n"
        b"RCPT TO: wodadmin@backend.example.com\nDATA\n"
        b"Subject: CREATE 1 1 alice@example.com\nWKSHP-API101\n.\n"
    )


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_api_db_raw_block_is_queued(listener: Listener, reset: bool) -> None:
    assert raw_send(listener.port, block("CREATE 1 825 alice@example.com"), reset=reset) == b"2"
    jobs = wait_for(listener.queue.jobs)
    assert len(jobs) == 1
    req = jobs[0].request
    assert (req.verb, req.stdid, req.customer, req.email, req.workshop, req.channel) == (
        Verb.CREATE,
        1,
        825,
        "alice@example.com",
        "WKSHP-API101",
        "smtp",
    )
    assert jobs[0].status == "queued"


def test_eof_after_complete_header_ends_data(listener: Listener) -> None:
    data = block("CLEANUP 4 9").removesuffix(b".\n")
    raw_send(listener.port, data)
    job = wait_for(listener.queue.jobs)[0]
    assert (job.request.verb, job.request.stdid) == (Verb.CLEANUP, 4)


def test_eof_in_the_middle_is_not_acted_on(listener: Listener) -> None:
    data = block("CLEANUP 4 9").split(b"WKSHP")[0] + b"WKSH"  # cut inside the workshop line
    raw_send(listener.port, data)
    rejection = wait_for(listener.queue.rejections)[0]
    assert "before the message was complete" in rejection.reason
    assert listener.queue.jobs() == []


def test_object_promise_purge_is_queued_for_recovery(listener: Listener) -> None:
    raw_send(listener.port, block("PURGE [object Promise] 3"))
    req = wait_for(listener.queue.jobs)[0].request
    assert req.verb is Verb.PURGE and req.stdid is None and req.recover_stdid
    assert req.customer == 3


def test_crlf_and_brackets_in_raw_mode(listener: Listener) -> None:
    data = (
        b"HELO x\r\nMAIL FROM:<wod-api@api.example.com>\r\nRCPT TO:<WODADMIN@other>\r\n"
        b"DATA\r\nSubject: RESET 2,4 7\r\n\r\nWKSHP-API101\r\n.\r\nQUIT\r\n"
    )
    raw_send(listener.port, data)
    req = wait_for(listener.queue.jobs)[0].request
    assert (req.verb, req.stdids) == (Verb.RESET, [2, 3, 4])


def test_hundred_concurrent_api_db_clients_all_persisted_once(listener: Listener) -> None:
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            raw_send(listener.port, block(f"CREATE {n} {1000 + n} s{n}@example.com"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(1, 101)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    wait_for(lambda: len(listener.queue.jobs(limit=500)) >= 100, timeout=20)
    time.sleep(0.2)  # nothing more arrives
    jobs = listener.queue.jobs(limit=500)
    assert sorted(j.request.stdid for j in jobs) == list(range(1, 101))
    assert all(j.request.customer == 1000 + j.request.stdid for j in jobs)


def test_jobs_of_one_seat_are_persisted_in_arrival_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages finished while the database is busy are stored, and acknowledged, in the
    order they arrived.  Persisting on worker threads stored them in whatever order the
    threads got the database, so the seat's jobs ran against the order the api-db sent."""
    caplog.set_level(logging.DEBUG, logger="wod.intake.smtp")
    settings = Settings(state_dir=tmp_path, smtp_port=0, senders=[API_DB], user_max=20)
    JobQueue(settings.db_path)  # create the schema
    queue = JobQueue(settings.db_path)
    intake = SmtpIntake(settings, queue).run_in_thread()
    blocker = sqlite3.connect(settings.db_path, isolation_level=None)
    count = 12

    def parsed() -> int:
        return sum("parsed; persisting" in r.getMessage() for r in caplog.records)

    async def send_all() -> dict[int, int]:
        conns = []
        for n in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", intake.port)
            assert (await reader.readline()).startswith(b"220")
            writer.write(block(f"CLEANUP 7 {n + 1}").removesuffix(b".\n"))
            for _ in range(4):  # HELO, MAIL, RCPT, DATA
                await reader.readline()
            conns.append((reader, writer))
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        acked: dict[int, int] = {}  # customer -> the job its 250 named

        async def final(reader: asyncio.StreamReader, customer: int) -> None:
            line = await reader.readline()
            assert line.startswith(b"250"), line
            acked[customer] = int(line.split()[-1])

        waiting = []
        for n, (reader, writer) in enumerate(conns):  # customer n+1 arrives n-th
            writer.write(b".\r\n")
            waiting.append(asyncio.create_task(final(reader, n + 1)))
            while parsed() < n + 1:
                await asyncio.sleep(0.005)  # until the listener has it
        blocker.execute("ROLLBACK")
        await asyncio.gather(*waiting)
        for _reader, writer in conns:
            writer.close()
        return acked

    try:
        acked = asyncio.run(send_all())
    finally:
        blocker.close()
        intake.stop()
    jobs = sorted(queue.jobs(limit=100), key=lambda j: j.id)
    assert [j.request.customer for j in jobs] == list(range(1, count + 1))
    assert acked == {j.request.customer: j.id for j in jobs}  # each 250 names its own job
    # The listener answered in the same order (the order in which the client's event loop
    # reads answers arriving together on 12 connections is its own business).
    assert logged_jobs(caplog.records, r"job (\d+): CLEANUP") == [j.id for j in jobs]


# -- well-behaved clients ------------------------------------------------------------------------


def test_smtplib_ehlo_dot_stuffing_quit(listener: Listener) -> None:
    body = (
        b"Subject: CLEANUP 5 6\r\nFrom: API <wod-api@api.example.com>\r\n\r\nWKSHP-API101\r\n"
        b".hidden line\r\n"
    )
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        code, _ = client.ehlo("relay.example.com")
        assert code == 250
        assert client.has_extn("size") and client.has_extn("8bitmime")
        assert client.has_extn("pipelining")
        assert client.esmtp_features["size"] == str(listener.settings.max_message_bytes)
        client.mail(API_DB)
        client.rcpt(COMMANDS)
        code, text = client.data(body)  # smtplib dot-stuffs '.hidden'
        assert code == 250 and b"queued as job" in text
        assert client.noop()[0] == 250
        assert client.rset()[0] == 250
    job = listener.queue.jobs()[0]
    assert job.id == int(text.split()[-1])
    assert (job.request.verb, job.request.stdid, job.request.customer) == (Verb.CLEANUP, 5, 6)
    stored = listener.queue._conn().execute("SELECT raw FROM jobs WHERE id=?", (job.id,))
    assert b"\r\n.hidden line" in stored.fetchone()[0]  # unstuffed


def test_bad_sequences_get_5xx(listener: Listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        assert client.docmd("MAIL FROM:<a@b.c>")[0] == 503  # before HELO
        client.ehlo()
        assert client.docmd("RCPT TO:<x@y>")[0] == 503  # before MAIL
        assert client.docmd("DATA")[0] == 503
        assert client.docmd("MAIL FROM a@b.c")[0] == 501
        assert client.docmd("BOGUS")[0] == 502
        assert client.docmd("MAIL FROM:<a@b.c>")[0] == 250
        assert client.docmd("MAIL FROM:<a@b.c>")[0] == 503
        assert client.docmd("DATA")[0] == 503  # no recipient yet


@pytest.mark.parametrize("command", [b"NOOP ", b"HELO ", b"MAIL FROM:<a@"])
def test_a_command_line_over_64_kib_gets_500_and_the_session_goes_on(
    listener: Listener, command: bytes
) -> None:
    """A 100 kB command line arriving in one piece used to be answered 250."""
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    with sock, sock.makefile("rb") as replies:
        assert replies.readline().startswith(b"220")
        sock.sendall(command + b"x" * 100_000 + b"\r\nEHLO ok.example\r\n")
        assert replies.readline() == b"500 5.5.2 line too long\r\n"
        lines = [replies.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(replies.readline())
        assert lines[-1].startswith(b"250 ")  # the next command is read as one
        sock.sendall(block("CLEANUP 4 9").split(b"\n", 1)[1] + b"QUIT\r\n")
        assert replies.readline().startswith(b"250")  # MAIL
        assert replies.readline().startswith(b"250")  # RCPT
        assert replies.readline().startswith(b"354")
        assert b"queued as job" in replies.readline()
    assert [j.request.stdid for j in listener.queue.jobs()] == [4]


def test_wrong_sender_is_refused_and_recorded(listener: Listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail(
                "mallory@evil.example",
                [COMMANDS],
                b"Subject: CREATE 1 2 a@b.c\r\n\r\nWKSHP-API101\r\n",
            )
    assert info.value.smtp_code == 550
    assert b"sender 'mallory@evil.example' is not allowed" in info.value.smtp_error
    raw_send(listener.port, block("PURGE 1 2", sender="other@api.example.com"))
    reasons = [
        r.reason
        for r in wait_for(
            lambda: len(listener.queue.rejections()) >= 2 and listener.queue.rejections()
        )
    ]
    assert any("other@api.example.com" in r for r in reasons)
    assert listener.queue.jobs() == []


def test_client_address_not_allowed(tmp_path: Path) -> None:
    running = start(tmp_path, allowed_clients=["10.0.0.0/8"])
    try:
        with pytest.raises(smtplib.SMTPConnectError) as info:
            smtplib.SMTP("127.0.0.1", running.port, timeout=5)
        assert info.value.smtp_code == 554
        raw_send(running.port, block("CREATE 1 1 a@b.c"))
        rejections = wait_for(
            lambda: len(running.queue.rejections()) >= 2 and running.queue.rejections()
        )
        assert "client address 127.0.0.1 is not allowed" in rejections[0].reason
        assert running.queue.jobs() == []
    finally:
        running.thread.stop()


BAD = [
    ("FOO 1 2", "WKSHP-API101", "unknown verb"),
    ("CREATE 1 2", "WKSHP-API101", "missing arguments"),
    ("CLEANUP 1 2 3", "WKSHP-API101", "extra arguments"),
    ("PURGE x 2", "WKSHP-API101", "student id 'x' is not a number"),
    ("CLEANUP 500 2", "WKSHP-API101", "outside this backend's range"),
    ("CREATE 1 2 not-an-address", "WKSHP-API101", "malformed e-mail"),
    # The api-db does not dot-stuff, so SMTP unstuffing turns '../../etc' into './../etc'.
    ("CREATE 1 2 a@b.c", "../../etc", "malformed workshop name './../etc'"),
    ("CREATE 1 2 a@b.c", "WKSHP-$(id)", "malformed workshop name 'WKSHP-$(id)'"),
    ("CREATE 1 2 a@b.c", "", "no workshop name"),
]


@pytest.mark.parametrize(("subject", "body", "expected"), BAD, ids=[b[2] for b in BAD])
def test_bad_input_over_raw_smtp_is_recorded(
    listener: Listener, subject: str, body: str, expected: str
) -> None:
    raw_send(listener.port, block(subject, body))
    rejection = wait_for(listener.queue.rejections)[0]
    assert expected in rejection.reason and rejection.channel == "smtp"
    assert rejection.raw and subject.encode() in rejection.raw
    assert listener.queue.jobs() == []


def test_non_utf8_over_smtplib(listener: Listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail(API_DB, [COMMANDS], b"Subject: CREATE 1 2 a@b.c\r\n\r\nWKSHP-\xff\r\n")
    assert b"not valid UTF-8" in info.value.smtp_error
    assert "not valid UTF-8" in listener.queue.rejections()[0].reason


def test_ten_megabyte_body(listener: Listener) -> None:
    huge = block("CREATE 1 2 a@b.c", "WKSHP-API101\n" + "x" * 80 + "\n").replace(
        b"\n.\n", b"\n" + (b"y" * 999 + b"\n") * 10_500 + b".\n"
    )
    raw_send(listener.port, huge)
    rejection = wait_for(listener.queue.rejections, timeout=10)[0]
    assert "message too large" in rejection.reason
    # A client that announces the size is refused at MAIL FROM.
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail(API_DB, [COMMANDS], b"Subject: x\r\n\r\n" + b"z" * 10_485_760)
    assert info.value.smtp_code == 552
    assert listener.queue.jobs() == []


# -- participant mail: relay or outbox ------------------------------------------------------------


class Collect:
    """aiosmtpd handler acting as the smarthost: keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        self.received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


WELCOME = (
    "Subject: Welcome to the Workshops-on-Demand\nFrom: wod-api@api.example.com\n\n"
    "Your credentials follow.\n.starts with a dot\n"
)


def test_participant_mail_is_relayed_not_parsed(tmp_path: Path) -> None:
    handler = Collect()
    smarthost = Controller(handler, hostname="127.0.0.1", port=get_free_port())
    smarthost.start()
    running = start(tmp_path, smarthost=f"127.0.0.1:{smarthost.port}")
    try:
        data = (
            b"HELO api\nMAIL FROM: wod-api@api.example.com\nRCPT TO: bob@example.org\n"
            b"DATA\n" + WELCOME.replace("\n.starts", "\n..starts").encode() + b".\n"
        )
        raw_send(running.port, data)
        wait_for(lambda: handler.received)
        sender, rcpts, content = handler.received[0]
        assert (sender, rcpts) == (API_DB, ["bob@example.org"])
        assert b"Your credentials follow." in content and b"\r\n.starts with a dot" in content
        assert running.queue.jobs() == [] and running.queue.rejections() == []
    finally:
        running.thread.stop()
        smarthost.stop()


def test_participant_mail_goes_to_outbox_without_smarthost(listener: Listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        client.sendmail(API_DB, ["bob@example.org", "carol@example.org"], WELCOME.encode())
    box = mailbox.Maildir(listener.settings.outbox_dir, create=False)
    messages = list(box)
    assert len(messages) == 1
    msg = messages[0]
    assert msg["Return-Path"] == f"<{API_DB}>"
    assert msg.get_all("X-Original-To") == ["bob@example.org", "carol@example.org"]
    assert msg["Subject"] == "Welcome to the Workshops-on-Demand"
    assert listener.queue.jobs() == []


def test_unreachable_smarthost_falls_back_to_outbox(tmp_path: Path) -> None:
    running = start(tmp_path, smarthost=f"127.0.0.1:{get_free_port()}")
    try:
        with smtplib.SMTP("127.0.0.1", running.port, timeout=5) as client:
            client.sendmail(API_DB, ["bob@example.org"], WELCOME.encode())
        assert len(mailbox.Maildir(running.settings.outbox_dir, create=False)) == 1
    finally:
        running.thread.stop()


def test_alias_mailbox_is_a_command_mailbox(tmp_path: Path) -> None:
    running = start(tmp_path, command_mailbox="wod", mailbox_aliases=["requests"])
    try:
        raw_send(running.port, block("CLEANUP 3 4", rcpt="Requests@backend"))
        assert wait_for(running.queue.jobs)[0].request.stdid == 3
    finally:
        running.thread.stop()


def test_database_locked_answers_451_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, smtp_port=0, senders=[API_DB])
    JobQueue(settings.db_path)  # create the schema
    blocker = sqlite3.connect(settings.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    queue = JobQueue(settings.db_path, timeout=0.2)
    intake = SmtpIntake(settings, queue).run_in_thread()
    try:
        with smtplib.SMTP("127.0.0.1", intake.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail(API_DB, [COMMANDS], b"Subject: CLEANUP 1 2\r\n\r\nWKSHP-API101\r\n")
        assert info.value.smtp_code == 451
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        intake.stop()
    assert queue.jobs() == []


def test_stop_drops_an_unfinished_message_and_returns(tmp_path: Path) -> None:
    running = start(tmp_path)
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
    try:
        sock.sendall(
            b"HELO x\r\nMAIL FROM:<wod-api@api.example.com>\r\nRCPT TO:<wodadmin@b>\r\n"
            b"DATA\r\nSubject: CLEANUP 1 2\r\n\r\nWKSHP-API101\r\n"
        )
        received = b""
        while b"354" not in received:
            received += sock.recv(1024)
        started = time.monotonic()
        running.thread.stop()
        assert time.monotonic() - started < 5
        assert running.queue.jobs() == []  # never acknowledged, never acted on
    finally:
        sock.close()


def test_client_idle_in_the_middle_of_data_gets_421_and_nothing_is_queued(tmp_path: Path) -> None:
    """A client stalling inside DATA is told 421 (so it sends the message again): the part
    it had sent is not acted on, even with a complete header and workshop line."""
    settings = Settings(state_dir=tmp_path, smtp_port=0, senders=[API_DB], user_max=120)
    queue = JobQueue(settings.db_path)
    intake = SmtpIntake(settings, queue, idle_timeout=0.5).run_in_thread()
    sock = socket.create_connection(("127.0.0.1", intake.port), timeout=5)
    try:
        sock.sendall(
            b"HELO x\r\nMAIL FROM:<wod-api@api.example.com>\r\nRCPT TO:<wodadmin@b>\r\n"
            b"DATA\r\nSubject: CLEANUP 1 2\r\n\r\nWKSHP-API101\r\n"
        )
        received = b""
        while b"421" not in received:
            chunk = sock.recv(1024)
            if not chunk:
                break
            received += chunk
        assert b"354" in received and b"421 4.4.2" in received
        assert b"250 2.0.0 queued" not in received
    finally:
        sock.close()
        intake.stop()
    assert queue.jobs() == []


# -- local users on loopback ---------------------------------------------------------------------

IS_ROOT = os.geteuid() == 0

CLIENT = """
import smtplib, socket, sys
port, kind = int(sys.argv[1]), sys.argv[2]
mail = b"Subject: CLEANUP 3 9\\r\\n\\r\\nWKSHP-API101\\r\\n"
if kind == "smtplib":
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        try:
            client.sendmail(sys.argv[3], ["wodadmin@localhost"], mail)
            print(250)
        except smtplib.SMTPDataError as exc:
            print(exc.smtp_code, exc.smtp_error.decode())
else:  # the api-db's way: all at once, hang up on the greeting
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(sys.argv[3].encode().decode("unicode_escape").encode())
    print(sock.recv(3).decode())
"""


def run_as(user: LocalUser, *args: str) -> str:
    """The client above run as ``user`` (the system Python: it needs only the stdlib)."""
    proc = user.run("/usr/bin/python3", "-c", CLIENT, *args, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (a second local account)")
def test_an_unprivileged_local_user_cannot_send_commands(
    listener: Listener, local_user: LocalUser
) -> None:
    """Over loopback any local user could forge the api-db's sender; now only root,
    admin_user and smtp_local_users may send command mail from this host."""
    answer = run_as(local_user, str(listener.port), "smtplib", API_DB)
    assert answer.startswith("554 ") and f"local user '{local_user.name}'" in answer
    raw = block("PURGE 3 9").decode().encode("unicode_escape").decode()
    assert run_as(local_user, str(listener.port), "raw", raw) == "220"
    rejections = wait_for(
        lambda: len(listener.queue.rejections()) >= 2 and listener.queue.rejections()
    )
    assert all(f"local user '{local_user.name}'" in r.reason for r in rejections)
    assert listener.queue.jobs() == []
    # Root's own mail (this test process) is accepted.
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        client.sendmail(API_DB, [COMMANDS], b"Subject: CLEANUP 3 9\r\n\r\nWKSHP-API101\r\n")
    assert [j.request.stdid for j in listener.queue.jobs()] == [3]


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (a second local account)")
def test_a_local_user_listed_in_smtp_local_users_may_send_commands(
    tmp_path: Path, local_user: LocalUser
) -> None:
    running = start(tmp_path, smtp_local_users=[local_user.name])
    try:
        assert run_as(local_user, str(running.port), "smtplib", API_DB) == "250"
        assert [j.request.stdid for j in running.queue.jobs()] == [3]
    finally:
        running.thread.stop()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (a second local account)")
@pytest.mark.parametrize("how", ["_ask_kernel", "_read_tables"])
def test_the_peer_of_a_local_connection_is_its_owner(local_user: LocalUser, how: str) -> None:
    """Both ways of asking the kernel (sock_diag, /proc/net/tcp*) name the client's uid."""
    from wod.intake import peer

    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as server:
            server.bind((host, 0))
            server.listen()
            port = server.getsockname()[1]
            client = subprocess.Popen(
                [
                    "runuser",
                    "-u",
                    local_user.name,
                    "--",
                    "/usr/bin/python3",
                    "-c",
                    "import socket, sys; s = socket.create_connection((sys.argv[1], "
                    "int(sys.argv[2]))); s.recv(1)",
                    host,
                    str(port),
                ],
            )
            try:
                conn, address = server.accept()
                with conn:
                    found = getattr(peer, how)(address[:2], conn.getsockname()[:2])
                    assert found == peer.LocalPeer(local_user.uid)
                    conn.sendall(b"x")
            finally:
                client.wait(10)
    assert getattr(peer, how)(("192.0.2.1", 4000), ("127.0.0.1", 25)) is None  # not local
