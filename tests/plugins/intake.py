"""Fixture plugin: ``wod serve``'s intake (SMTP + HTTP on real ports) for bad-input tests.

``intake_server``  one :class:`wod.server.Server` per test module, with the SMTP listener,
                   the HTTP app (header limit included) and one worker whose runner only
                   records that it ran (the corpus is about what the intake takes, not the
                   lifecycle); helpers to send a raw SMTP session, an HTTP request, and a
                   known-good request of each kind.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wod.queue import Job, JobQueue
from wod.server import Server
from wod.services.mail import api_db_block
from wod.settings import Settings

API_DB = "wod-api@api.example.com"
COMMANDS = "wodadmin@backend.example.com"
TOKEN = "corpus-t0ken"
MAX_MESSAGE = 64 * 1024


def _record_only(settings: Settings, queue: JobQueue):
    def run(job: Job, ctx: object) -> None:
        return None

    return run


@dataclass
class IntakeServer:
    server: Server
    queue: JobQueue
    settings: Settings

    @property
    def smtp_port(self) -> int:
        assert self.server.smtp_port is not None
        return self.server.smtp_port

    @property
    def http_port(self) -> int:
        assert self.server.http_port is not None
        return self.server.http_port

    def session(self, data: bytes, *, eof: bool = False, timeout: float = 10.0) -> bytes:
        """Send an SMTP session after the greeting and return the replies: then QUIT, or
        with ``eof`` hang up (the server then records what it got, without replies)."""
        with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=timeout) as sock:
            greeting = sock.recv(512)
            assert greeting.startswith(b"220"), greeting
            if eof:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.sendall(data + b"\r\nQUIT\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def http(self, raw: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
        """Send raw HTTP bytes; return the status code and the whole answer."""
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout) as sock:
            sock.sendall(raw)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                        break
            except ConnectionResetError:
                pass
        answer = b"".join(chunks)
        if not answer.startswith(b"HTTP/1."):
            return 0, answer
        return int(answer.split(b" ", 2)[1]), answer

    def counts(self) -> tuple[int, int]:
        """(jobs, rejections) recorded so far."""
        return len(self.queue.jobs(limit=100_000)), len(self.queue.rejections(limit=100_000))

    def good_mail(self) -> bytes:
        return self.session(
            api_db_block(
                "CLEANUP 2 77",
                "WKSHP-API101",
                helo="api.example.com",
                sender=API_DB,
                recipient=COMMANDS,
            )
        )


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def http_post(path: str, body: bytes, *, headers: dict[str, str] | None = None) -> bytes:
    """A raw HTTP/1.1 POST with the corpus token unless ``headers`` says otherwise."""
    fields = {
        "Host": "wod",
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    fields.update(headers or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body


@pytest.fixture(scope="module")
def intake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    state: Path = tmp_path_factory.mktemp("intake")
    settings = Settings(
        state_dir=state,
        smtp_port=0,
        http_port=0,
        senders=[API_DB],
        http_token=TOKEN,
        user_min=1,
        user_max=20,
        max_message_bytes=MAX_MESSAGE,
        workers=1,
        hub_url="",
    )
    queue = JobQueue(settings.db_path)
    server = Server(
        settings,
        queue=queue,
        runner_factory=_record_only,
        poll_interval=0.1,
        intake_socket=False,
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.ready.wait(0.05):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("intake server did not start")
    try:
        yield IntakeServer(server, queue, settings)
    finally:
        server.request_stop()
        thread.join(30)


def logged_jobs(records: list, pattern: str) -> list[int]:
    """The job ids of the log ``records`` matching ``pattern`` (its group 1), in the order
    they were logged: the order a server answered in (``caplog.records``)."""
    return [
        int(m.group(1)) for r in records if (m := re.match(pattern, r.getMessage())) is not None
    ]
