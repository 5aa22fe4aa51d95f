"""The local-socket intake against a real server: answers only after the job (or the
rejection) is persisted, 65 for a bad request, 75 with nobody listening, private socket
modes, a stale socket replaced and a live one never stolen."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.paths import ROOT
from tests.test_serve import recording_runner
from wod.intake.pipe import EX_DATAERR, EX_OK, EX_TEMPFAIL, hand_to_daemon
from wod.server import Server
from wod.settings import Settings

MAIL = b"Subject: CREATE 4 8 bo@example.com\r\n\r\nWKSHP-API101\r\n"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (a Unix socket path is limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="wod-sock-", dir="/tmp") as tmp:
        yield Path(tmp)


def serve(settings: Settings) -> tuple[Server, threading.Thread]:
    server = Server(settings, runner_factory=recording_runner, poll_interval=0.1, http=False)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    assert server.ready.wait(10), "server did not start"
    return server, thread


def settings_for(tmp: Path, **values) -> Settings:
    return Settings(
        state_dir=tmp / "state",
        smtp_listener=False,
        intake_socket=tmp / "intake.sock",
        senders=["api@example.com"],
        demo=True,
        **values,
    )


def test_socket_intake_persists_before_answering(short_dir: Path):
    settings = settings_for(short_dir)
    server, thread = serve(settings)
    try:
        sock = settings.intake_socket
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # no intake_group: root only
        code, text = hand_to_daemon(sock, MAIL, sender="api@example.com")
        assert code == EX_OK
        job = server.queue.job(int(text))  # on disk when the answer came
        assert (job.verb, job.request.stdid, job.request.channel) == ("CREATE", 4, "pipe")

        code, reason = hand_to_daemon(sock, MAIL, sender="intruder@example.com")
        assert code == EX_DATAERR and "sender" in reason
        assert server.queue.rejections(limit=5)[0].reason == reason  # recorded

        code, reason = hand_to_daemon(sock, b"x" * (settings.max_message_bytes + 10))
        assert code == EX_DATAERR and "too large" in reason
        # Far over the limit (more than the socket buffers hold): still a clean 65.
        code, reason = hand_to_daemon(sock, b"x" * (8 * settings.max_message_bytes))
        assert code == EX_DATAERR and "too large" in reason
    finally:
        server.request_stop()
        thread.join(15)
    assert not settings.intake_socket.exists()  # removed at stop
    code, reason = hand_to_daemon(settings.intake_socket, MAIL)
    assert code == EX_TEMPFAIL and "not running" in reason


def test_wod_intake_socket_command_exit_codes(short_dir: Path):
    settings = settings_for(short_dir)
    command = [sys.executable, "-c", "from wod.cli import main; main()", "intake"]
    sock = str(settings.intake_socket)
    down = subprocess.run(
        [*command, "--socket", sock], input=MAIL, capture_output=True, cwd=ROOT, timeout=30
    )
    assert down.returncode == EX_TEMPFAIL
    assert b"not running" in down.stderr
    server, thread = serve(settings)
    try:
        env = {**os.environ, "SENDER": "api@example.com"}
        ok = subprocess.run(
            [*command, "--socket", sock],
            input=MAIL,
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=30,
        )
        assert ok.returncode == EX_OK, ok.stderr
        assert server.queue.job(int(ok.stdout)).verb == "CREATE"
    finally:
        server.request_stop()
        thread.join(15)


def test_stale_socket_is_replaced_and_a_live_one_is_not_stolen(short_dir: Path):
    settings = settings_for(short_dir)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(settings.intake_socket))
    stale.close()  # a socket file nobody answers on: a daemon that died
    server, thread = serve(settings)
    try:
        assert hand_to_daemon(settings.intake_socket, MAIL, sender="api@example.com")[0] == 0
        other = Server(
            settings_for(short_dir).model_copy(update={"state_dir": short_dir / "other"}),
            runner_factory=recording_runner,
            http=False,
        )
        with pytest.raises(OSError, match="another wod serve answers"):
            asyncio.run(other.serve())
        assert hand_to_daemon(settings.intake_socket, MAIL, sender="api@example.com")[0] == 0
    finally:
        server.request_stop()
        thread.join(15)


def test_a_stalled_client_is_cut_after_the_read_timeout_and_blocks_nobody(
    short_dir: Path, monkeypatch, caplog
):
    import wod.intake.socket as intake_socket

    monkeypatch.setattr(intake_socket, "READ_TIMEOUT", 0.5)
    settings = settings_for(short_dir)
    server, thread = serve(settings)
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stalled.connect(str(settings.intake_socket))
        stalled.sendall(b"SENDER api@example.com\n" + MAIL[:20])  # then nothing, no EOF
        before = server.queue.counts()

        code, text = hand_to_daemon(settings.intake_socket, MAIL, sender="api@example.com")
        assert code == EX_OK  # served while the other client stalls
        assert server.queue.job(int(text)).verb == "CREATE"

        stalled.settimeout(10)
        assert stalled.recv(100) == b""  # closed without an answer: Postfix retries the mail
        assert sum(server.queue.counts().values()) == sum(before.values()) + 1  # only the good one
        assert any("gave up or was too slow" in r.getMessage() for r in caplog.records)
    finally:
        stalled.close()
        server.request_stop()
        thread.join(15)
