"""Fixture plugin: a real Postfix instance (Debian's package) with its own configuration.

``postfix``  a factory ``postfix(mailbox_command, config_dir=None)``: a private instance
             (``postfix -c DIR``)
             listening on a free loopback port, delivering ``localhost`` mail to local
             accounts through ``mailbox_command`` (run by Postfix as the mailbox user),
             relaying nothing; stopped at the end.  Its queue is its own folder:
             :meth:`Postfix.queue` is ``postqueue -c DIR -p``, :meth:`Postfix.flush` is
             ``postqueue -c DIR -f``.  Skips without root or without Postfix (installed by
             ``scripts/install-test-deps.sh``).
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.paths import get_free_port

POSTCONF = "/usr/sbin/postconf"


@dataclass
class Postfix:
    config_dir: Path
    port: int

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)

    def start(self) -> None:
        done = self._run("/usr/sbin/postfix", "-c", str(self.config_dir), "start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix did not start: {done.stderr}{self.log()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as smtp:
                    smtp.noop()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix does not answer on port {self.port}: {self.log()}")

    def stop(self) -> None:
        self._run("/usr/sbin/postfix", "-c", str(self.config_dir), "stop")

    def reload(self) -> None:
        """``postfix reload``: re-read main.cf (after ``postconf -e``)."""
        self._run("/usr/sbin/postfix", "-c", str(self.config_dir), "reload")

    def send(self, sender: str, recipient: str, subject: str, body: str) -> None:
        message = f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            smtp.sendmail(sender, [recipient], message.encode())

    def queue(self) -> str:
        """``postqueue -p``: the mail Postfix still holds ("Mail queue is empty" else)."""
        return self._run("/usr/sbin/postqueue", "-c", str(self.config_dir), "-p").stdout

    def flush(self) -> None:
        """``postqueue -f``: try every deferred mail again now."""
        self._run("/usr/sbin/postqueue", "-c", str(self.config_dir), "-f")

    def log(self) -> str:
        path = self.config_dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (log := self.log()):
                return log
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the Postfix log after {timeout} s:\n{self.log()}")


def write_instance(base: Path, port: int, mailbox_command: str, config: Path | None = None) -> Path:
    """A complete, private Postfix configuration under ``base`` (its configuration files
    in ``config``, default ``base/etc``)."""
    config = config or base / "etc"
    config.mkdir(parents=True)
    (base / "queue").mkdir()  # root's; `postfix start` creates its subfolders
    (base / "data").mkdir()
    shutil.chown(base / "data", "postfix")
    shutil.copy("/etc/postfix/master.cf", config / "master.cf")
    (config / "main.cf").write_text("")
    values = {
        "compatibility_level": "3.6",
        "queue_directory": str(base / "queue"),
        "data_directory": str(base / "data"),
        "maillog_file": str(config / "maillog"),
        "maillog_file_prefixes": f"{base} {config}",
        "myhostname": "wodtest.localdomain",
        "mydomain": "localdomain",
        "mydestination": "localhost, $myhostname",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "alias_maps": "",
        "alias_database": "",
        "mailbox_command": mailbox_command,
        "default_transport": "error:no mail leaves this test instance",
        "relayhost": "",
        "biff": "no",
        # Deferred mail waits for an explicit `postqueue -f` in the tests.
        "queue_run_delay": "1h",
        "minimal_backoff_time": "1h",
        "maximal_backoff_time": "2h",
        "smtpd_banner": "$myhostname ESMTP wod-test",
    }
    subprocess.run(
        [POSTCONF, "-c", str(config), "-e", *(f"{k}={v}" for k, v in values.items())],
        check=True,
        capture_output=True,
    )
    # Our own port instead of 25, nothing chrooted (the queue is a plain tmp folder).
    subprocess.run([POSTCONF, "-c", str(config), "-MX", "smtp/inet"], check=True)
    subprocess.run(
        [
            POSTCONF,
            "-c",
            str(config),
            "-M",
            f"127.0.0.1:{port}/inet=127.0.0.1:{port} inet n - n - - smtpd",
        ],
        check=True,
    )
    subprocess.run([POSTCONF, "-c", str(config), "-F", "*/*/chroot=n"], check=True)
    return config


@pytest.fixture
def postfix() -> Iterator[Callable[[str], Postfix]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a Postfix instance")
    if not Path("/usr/sbin/postfix").exists():
        pytest.skip("Postfix is not installed (scripts/install-test-deps.sh installs it)")
    made: list[tuple[Postfix, Path]] = []

    def make(mailbox_command: str, config_dir: Path | None = None) -> Postfix:
        base = Path(tempfile.mkdtemp(prefix="wod-postfix-", dir="/tmp"))
        base.chmod(0o755)
        port = get_free_port()
        instance = Postfix(write_instance(base, port, mailbox_command, config_dir), port)
        made.append((instance, base))
        instance.start()
        return instance

    try:
        yield make
    finally:
        for instance, base in made:
            instance.stop()
            shutil.rmtree(base, ignore_errors=True)
