"""Fixture plugin: throwaway local Linux accounts (root only), removed afterwards.

``local_user``  a real unprivileged account (own group, no home, test-only name and uid),
                with :meth:`LocalUser.run` to run a command as it (``runuser``).
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class LocalUser:
    name: str
    uid: int
    gid: int

    def run(
        self,
        *argv: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` as this user (no shell), output captured."""
        return subprocess.run(
            ["runuser", "-u", self.name, "--", *argv],
            input=input,
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )


def _taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        try:
            grp.getgrgid(uid)
            return True
        except KeyError:
            return False


@pytest.fixture
def local_user_factory() -> Iterator[Callable[..., LocalUser]]:
    """``make(home=None)``: a throwaway account; with ``home``, that folder is created
    and owned by it (Postfix delivers from the home folder)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a real local account")
    made: list[str] = []

    def make(home: Path | None = None) -> LocalUser:
        name = f"wodt{secrets.token_hex(3)}"
        uid = 65400 + secrets.randbelow(100)  # apart from the install fixture's ids
        while _taken(uid):
            uid = 65400 + secrets.randbelow(100)
        argv = ["useradd", "-U", "-u", str(uid), "-s", "/bin/sh"]
        argv += ["-m", "-d", str(home)] if home is not None else ["-M"]
        subprocess.run([*argv, name], check=True, capture_output=True)
        made.append(name)
        return LocalUser(name, uid, pwd.getpwnam(name).pw_gid)

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["userdel", name], check=False, capture_output=True)
            subprocess.run(["groupdel", name], check=False, capture_output=True)  # if kept


@pytest.fixture
def local_user(local_user_factory: Callable[..., LocalUser]) -> LocalUser:
    """A throwaway unprivileged account without a home."""
    return local_user_factory()


def open_path_to(path: Path) -> list[tuple[Path, int]]:
    """Make every folder above ``path`` traversable by others (pytest's tmp folders are
    0700); returns the modes to put back with :func:`restore_modes`."""
    changed = []
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode & 0o7777
        if not mode & 0o001:
            changed.append((parent, mode))
            parent.chmod(mode | 0o011)
    return changed


def restore_modes(changed: list[tuple[Path, int]]) -> None:
    for path, mode in reversed(changed):
        path.chmod(mode)
