"""Passwords in a shadow file set by several workers at once (root: the password-file lock
is real): one rewrite carries every change waiting for it, each caller returns with its
own hash on disk or the error that kept it out, and hashing runs in parallel."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wod.errors import Permanent
from wod.services import accounts
from wod.services.accounts import crypt_matches, set_shadow_hash, sha512_crypt

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the password-file lock needs root"),
]

# Holds the password-file lock (lckpwdf) until a line arrives on stdin.
HOLD_LOCK = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None)\n"
    "assert libc.lckpwdf() == 0\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
    "libc.ulckpwdf()\n"
)


@pytest.fixture
def shadow(tmp_path: Path) -> Path:
    path = tmp_path / "shadow"
    path.write_bytes(
        b"root:*:19000:0:99999:7:::\n"
        + b"".join(b"student%d:!:19000:0:99999:7:::\n" % n for n in range(1, 9))
        + b"last:!:19000::::::"  # no final newline: kept as it is
    )
    os.chown(path, 0, 42)
    os.chmod(path, 0o640)
    return path


@pytest.fixture
def rewrites(monkeypatch: pytest.MonkeyPatch, shadow: Path) -> list[int]:
    """How many times ``shadow`` was replaced (renamed over)."""
    count = [0]
    real = os.replace

    def counting(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(dst) == shadow:
            count[0] += 1
        real(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    return count


@pytest.fixture
def lock_held() -> Iterator[Callable[[], None]]:
    """Another process holds the password-file lock until the returned function is
    called (as useradd would while it edits the files)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"

    def release() -> None:
        if holder.poll() is None:
            holder.communicate("\n", timeout=10)

    try:
        yield release
    finally:
        release()


def set_all_at_once(
    shadow: Path, changes: dict[str, str], release: Callable[[], None]
) -> dict[str, BaseException | None]:
    """Set every ``name: hash`` in its own thread while the lock is held elsewhere, then
    let go of the lock once all of them wait for it; returns each caller's error."""
    outcome: dict[str, BaseException | None] = {}

    def one(name: str, hashed: str) -> None:
        try:
            set_shadow_hash(name, hashed, shadow)
            outcome[name] = None
        except BaseException as exc:  # noqa: BLE001 - compared by the caller
            outcome[name] = exc

    threads = [threading.Thread(target=one, args=item) for item in changes.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(accounts._waiting.get(shadow, ())) < len(changes):  # all queued for the lock
        assert time.monotonic() < deadline, "the changes never all waited for the lock"
        time.sleep(0.005)
    release()
    for thread in threads:
        thread.join(30)
    return outcome


def entries(shadow: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in shadow.read_text().splitlines()}


def test_changes_made_at_once_are_written_in_one_rewrite_each_with_its_own_hash(
    shadow, rewrites, lock_held
):
    before = shadow.read_bytes().split(b"\n")
    info = shadow.stat()
    passwords = {f"student{n}": f"Pass{n}word{n}x" for n in range(1, 8)}
    outcome = set_all_at_once(
        shadow, {name: sha512_crypt(pw) for name, pw in passwords.items()}, lock_held
    )
    assert outcome == dict.fromkeys(passwords)
    assert rewrites[0] == 1
    after = shadow.read_bytes().split(b"\n")
    found = entries(shadow)
    today = str(int(time.time() // 86400))
    for name, password in passwords.items():
        assert crypt_matches(password, found[name][1])
        assert found[name][2] == today and found[name][3:] == ["0", "99999", "7", "", "", ""]
    untouched = [
        i
        for i, line in enumerate(before)
        if not line.startswith(tuple(b"%s:" % n.encode() for n in passwords))
    ]
    assert [after[i] for i in untouched] == [before[i] for i in untouched]
    assert len(after) == len(before) and after[-1] == b"last:!:19000::::::"
    now = shadow.stat()
    assert (now.st_uid, now.st_gid, stat.S_IMODE(now.st_mode)) == (0, 42, 0o640)
    assert now.st_ino != info.st_ino and not shadow.with_name("shadow+").exists()


def test_an_account_missing_from_the_file_fails_alone(shadow, rewrites, lock_held):
    changes = {
        "student1": sha512_crypt("First1pass"),
        "nobody9": sha512_crypt("x"),
        "student2": sha512_crypt("Second2pass"),
    }
    outcome = set_all_at_once(shadow, changes, lock_held)
    assert isinstance(outcome["nobody9"], Permanent)
    assert "nobody9 has no entry" in outcome["nobody9"].reason
    assert outcome["student1"] is None and outcome["student2"] is None
    assert rewrites[0] == 1
    found = entries(shadow)
    assert crypt_matches("First1pass", found["student1"][1])
    assert crypt_matches("Second2pass", found["student2"][1])
    assert "nobody9" not in found


def test_a_rewrite_that_fails_fails_every_change_it_carried(shadow, lock_held):
    shadow.with_name("shadow+").mkdir()  # the new file cannot be created
    before = shadow.read_bytes()
    changes = {f"student{n}": sha512_crypt(f"Pass{n}x") for n in (1, 2, 3)}
    outcome = set_all_at_once(shadow, changes, lock_held)
    assert all(isinstance(err, IsADirectoryError) for err in outcome.values()), outcome
    assert shadow.read_bytes() == before


def test_a_password_is_hashed_while_another_thread_hashes_a_slow_one():
    """crypt_r with a buffer per thread: no lock around the hash, no GIL held during it."""
    slow = threading.Thread(target=lambda: sha512_crypt_rounds("slow", 5_000_000))
    slow.start()
    try:
        hashed = sha512_crypt("Quick1pass")
        assert slow.is_alive(), "the quick hash waited for the slow one"
    finally:
        slow.join(60)
    assert crypt_matches("Quick1pass", hashed) and not crypt_matches("Quick1pasS", hashed)


def sha512_crypt_rounds(password: str, rounds: int) -> bytes | None:
    return accounts._crypt(password, f"$6$rounds={rounds}$saltsaltsaltsalt$")
