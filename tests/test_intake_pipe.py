"""``wod intake``: the real command, one message on stdin, exit codes for the MTA."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from wod.queue import JobQueue
from wod.requests import Verb

API_DB = "wod-api@api.example.com"
WOD = [sys.executable, "-c", "from wod.cli import main; main()"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "wod.yml"
    path.write_text(
        f"state_dir: {tmp_path / 'state'}\nsenders: [{API_DB}]\nuser_max: 40\n"
        "max_message_bytes: 100000\n"
    )
    return path


def wod_intake(
    config: Path, message: bytes, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WOD_", "SENDER"))}
    environ.update(env or {})
    return subprocess.run(
        [*WOD, "-c", str(config), "intake", *args],
        input=message,
        capture_output=True,
        timeout=30,
        env=environ,
    )


def queue(config: Path) -> JobQueue:
    return JobQueue(config.parent / "state" / "wod.db")


MESSAGE = (
    b"Return-Path: <wod-api@api.example.com>\nTo: wodadmin@backend\n"
    b"Subject: CREATE 3 77 carol@example.com\n\nWKSHP-API101\n"
)


def test_accepted_prints_job_id(config: Path) -> None:
    done = wod_intake(config, MESSAGE)
    assert done.returncode == 0, done.stderr
    job = queue(config).job(int(done.stdout))
    assert (
        job.request.verb,
        job.request.stdid,
        job.request.customer,
        job.request.email,
        job.request.channel,
    ) == (Verb.CREATE, 3, 77, "carol@example.com", "pipe")


def test_api_db_layout_with_envelope_sender_option(config: Path) -> None:
    done = wod_intake(
        config,
        b"Subject: PURGE [object Promise] 5\nWKSHP-API101\n",
        "-f",
        "WOD-API@api.example.com",
    )
    assert done.returncode == 0, done.stderr
    job = queue(config).job(int(done.stdout))
    assert job.request.recover_stdid and job.request.customer == 5


def test_sender_from_environment(config: Path) -> None:
    message = b"Subject: CLEANUP 2 3\n\nWKSHP-API101\n"
    assert wod_intake(config, message, env={"SENDER": API_DB}).returncode == 0
    refused = wod_intake(config, message, env={"SENDER": "mallory@evil.example"})
    assert refused.returncode == 65
    assert b"sender 'mallory@evil.example' is not allowed" in refused.stderr


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (MESSAGE.replace(b"CREATE", b"DEPLOY"), "unknown verb 'DEPLOY'"),
        (MESSAGE.replace(b"CREATE 3", b"CREATE 99"), "outside this backend's range 1-40"),
        (MESSAGE.replace(b"WKSHP-API101", b"../../etc"), "malformed workshop name '../../etc'"),
        (MESSAGE.replace(b"WKSHP-API101", b"WKSHP-$(id)"), "malformed workshop name"),
        (MESSAGE.replace(b"WKSHP-API101\n", b""), "no workshop name"),
        (MESSAGE.replace(b"WKSHP-API101", b"WKSHP-\xe9t\xe9"), "not valid UTF-8"),
        (MESSAGE.replace(b"carol@example.com", b"carol"), "malformed e-mail address 'carol'"),
        (MESSAGE + b"x" * 200_000, "message too large"),
    ],
)
def test_rejected_exit_65_reason_recorded(config: Path, message: bytes, reason: str) -> None:
    done = wod_intake(config, message)
    assert done.returncode == 65
    assert reason in done.stderr.decode()
    q = queue(config)
    assert reason in q.rejections()[0].reason and q.rejections()[0].channel == "pipe"
    assert q.jobs() == []


def test_locked_database_exit_75(config: Path) -> None:
    q = queue(config)  # creates the schema
    blocker = sqlite3.connect(q.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        env = {"WOD_CONFIG": str(config)}
        done = subprocess.run(
            [*WOD, "intake", "--lock-timeout", "0.3"],
            input=MESSAGE,
            capture_output=True,
            timeout=60,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("WOD_")}, **env},
            cwd=config.parent,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert done.returncode == 75, done.stderr
    assert b"try again later" in done.stderr
    assert q.jobs() == []


def test_unwritable_state_dir_exit_75(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    config = tmp_path / "wod.yml"
    config.write_text(f"state_dir: {blocked / 'state'}\n")
    done = wod_intake(config, MESSAGE)
    assert done.returncode == 75, done.stderr


def test_broken_settings_exit_75_so_the_mta_keeps_the_mail(tmp_path: Path) -> None:
    config = tmp_path / "wod.yml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nsenderz: [{API_DB}]\n")
    done = wod_intake(config, MESSAGE)
    assert done.returncode == 75, done.stderr
    assert b"try again later" in done.stderr and b"senderz" in done.stderr
